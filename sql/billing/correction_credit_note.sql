-- A credit note for approved decreases of one invoice: one line per correction, carrying the
-- negative delta and the line it corrects; total is the amount credited (positive). A draft
-- until issued (app none: numbered after the grace period; provider apps: by their sync).
-- Parameters: $document_id, $invoice_id, $ids (correction ids), $now, $issue_after, $actor.
INSERT INTO billing.credit_notes (
    credit_note_id, credit_note_number, invoice_id, customer_id, billing_month, currency, total,
    status, reason, kind, billing_profile, app, issue_after, created_at, created_by, issued_at,
    status_changed_at
)
SELECT $document_id, NULL, i.invoice_id, i.customer_id, i.billing_month, i.currency,
       -(SELECT sum(delta) FROM billing.corrections WHERE list_contains($ids, correction_id)),
       'draft', 'correction', 'correction', i.billing_profile, i.app, $issue_after, $now,
       $actor, NULL, $now
FROM billing.invoices i
WHERE i.invoice_id = $invoice_id
  AND NOT EXISTS (SELECT 1 FROM billing.credit_notes WHERE credit_note_id = $document_id);

INSERT INTO billing.credit_note_lines (
    credit_note_line_id, credit_note_id, corrects_line_id, correction_id, amount, description,
    position
)
SELECT 'cnl_' || left(sha256($document_id || '|' || c.correction_id), 24), $document_id,
       c.line_id, c.correction_id, c.delta, c.description,
       CAST(row_number() OVER (ORDER BY c.line_id) AS INTEGER) - 1
FROM billing.corrections c
WHERE list_contains($ids, c.correction_id)
  AND NOT EXISTS (SELECT 1 FROM billing.credit_note_lines WHERE credit_note_id = $document_id);

INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
SELECT $document_id, NULL, 'draft', $now, 'correction of ' || $invoice_id, $actor
WHERE NOT EXISTS (SELECT 1 FROM billing.credit_note_status_history
                  WHERE credit_note_id = $document_id);
