-- Credit notes voided at the provider (temp frame credit_notes_voided_frame: credit_note_id,
-- cause): issued -> voided, with a status history row. Parameters: $now, $actor.
INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
SELECT n.credit_note_id, n.status, 'voided', $now, f.cause, $actor
FROM billing.credit_notes n
JOIN credit_notes_voided_frame f ON f.credit_note_id = n.credit_note_id
WHERE n.status = 'issued';

UPDATE billing.credit_notes AS n
SET status = 'voided', status_changed_at = $now
FROM credit_notes_voided_frame f
WHERE n.credit_note_id = f.credit_note_id AND n.status = 'issued';
