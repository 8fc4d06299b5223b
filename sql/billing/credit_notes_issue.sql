-- Issue the draft credit notes (without a number) listed in temp table `numbering`: status
-- issued, history kept. App none after the grace period (billing run), app stripe once Stripe
-- has the note (Stripe sync); billing/credit_note_numbers numbers them next.
-- Parameters: $now, $cause and $actor (of the history row).
INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
SELECT c.credit_note_id, 'draft', 'issued', $now, $cause, $actor
FROM billing.credit_notes c
JOIN numbering n USING (credit_note_id)
WHERE c.credit_note_number IS NULL AND c.status = 'draft';

UPDATE billing.credit_notes AS c
SET status = 'issued', issued_at = $now, status_changed_at = $now
FROM numbering n
WHERE c.credit_note_id = n.credit_note_id
  AND c.credit_note_number IS NULL AND c.status = 'draft';
