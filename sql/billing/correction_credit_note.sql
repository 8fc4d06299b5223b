-- A credit note for approved decreases of one invoice, crediting at most what remains creditable
-- on it (billing.remaining_creditable): temp table `credit_note_split` (correction_id, credited,
-- beyond; pipelines.rating.corrections.split_credit) says how much of each decrease the note
-- takes. One line per correction it credits, carrying the negative amount credited and the line
-- it corrects; total is the amount credited (positive). A draft until issued (app none:
-- numbered after the grace period; provider apps: by their sync). What does not fit is credited
-- to the customer's credit balance (billing.customer_credit_movements, one movement per
-- correction, against the corrected invoice), used by their next invoices. Each correction's
-- document is the credit note, or, when none of it fitted, its credit balance movement. No
-- credit note is made when nothing remained creditable.
-- Parameters: $document_id, $invoice_id, $now, $issue_after, $actor.
INSERT INTO billing.credit_notes (
    credit_note_id, credit_note_number, invoice_id, customer_id, billing_month, currency, total,
    status, reason, kind, billing_profile, app, issue_after, created_at, created_by, issued_at,
    status_changed_at
)
SELECT $document_id, NULL, i.invoice_id, i.customer_id, i.billing_month, i.currency,
       (SELECT sum(credited) FROM credit_note_split),
       'draft', 'correction', 'correction', i.billing_profile, i.app, $issue_after, $now,
       $actor, NULL, $now
FROM billing.invoices i
WHERE i.invoice_id = $invoice_id
  AND (SELECT sum(credited) FROM credit_note_split) > 0
  AND NOT EXISTS (SELECT 1 FROM billing.credit_notes WHERE credit_note_id = $document_id);

INSERT INTO billing.credit_note_lines (
    credit_note_line_id, credit_note_id, corrects_line_id, correction_id, amount, description,
    position
)
SELECT 'cnl_' || left(sha256($document_id || '|' || c.correction_id), 24), $document_id,
       c.line_id, c.correction_id, -s.credited, c.description,
       CAST(row_number() OVER (ORDER BY c.line_id, c.correction_id) AS INTEGER) - 1
FROM billing.corrections c
JOIN credit_note_split s USING (correction_id)
WHERE s.credited > 0
  AND NOT EXISTS (SELECT 1 FROM billing.credit_note_lines WHERE credit_note_id = $document_id);

INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
SELECT $document_id, NULL, 'draft', $now, 'correction of ' || $invoice_id, $actor
WHERE EXISTS (SELECT 1 FROM billing.credit_notes WHERE credit_note_id = $document_id)
  AND NOT EXISTS (SELECT 1 FROM billing.credit_note_status_history
                  WHERE credit_note_id = $document_id);

INSERT INTO billing.customer_credit_movements
    (movement_id, customer_id, currency, amount, invoice_id, correction_id, created_at,
     description)
SELECT 'ccm_' || left(sha256(c.correction_id || '|beyond_creditable'), 24), c.customer_id,
       c.currency, s.beyond, c.invoice_id, c.correction_id, $now,
       'credited to the balance: the part of a correction of invoice '
           || coalesce(i.invoice_number, i.invoice_id) || ' (' || c.description
           || ') beyond what remains creditable on it'
FROM billing.corrections c
JOIN credit_note_split s USING (correction_id)
JOIN billing.invoices i ON i.invoice_id = c.invoice_id
WHERE s.beyond > 0
  AND NOT EXISTS (SELECT 1 FROM billing.customer_credit_movements
                  WHERE movement_id = 'ccm_' || left(sha256(c.correction_id
                                                           || '|beyond_creditable'), 24));

UPDATE billing.corrections AS c
SET document_id = CASE WHEN s.credited > 0 THEN $document_id
                       ELSE 'ccm_' || left(sha256(c.correction_id || '|beyond_creditable'), 24)
                  END
FROM credit_note_split s
WHERE c.correction_id = s.correction_id;
