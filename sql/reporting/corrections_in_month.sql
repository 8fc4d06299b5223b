-- What was corrected in the month's invoices: every correction (contract section 9) of an
-- invoice of the billing month, with the invoice and line it corrects, the amounts behind it
-- (issued, covered = issued + earlier corrections, rated = the latest rating; delta = rated -
-- covered), the document that carries it (credit note, supplementary invoice or the next
-- invoice's correction line) with its number and status, and the decision: who approved or
-- rejected it, when and why. The ledger does not record the cause (late usage or a price fix):
-- the line's description and the move from covered to rated say what changed.
-- Parameter: $month.
SELECT c.correction_id, c.detected_at, c.invoice_id,
       i.invoice_number, c.customer_id, c.currency, c.line_id, c.description, c.line_type,
       c.issued_amount, c.covered_amount, c.rated_amount, c.delta, c.revision,
       c.document_type, c.document_id,
       coalesce(n.credit_note_number, d.invoice_number) AS document_number,
       coalesce(n.status, d.status) AS document_status,
       c.status, c.decided_by, c.decided_at, c.reason
FROM billing.corrections c
LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
LEFT JOIN billing.credit_notes n ON n.credit_note_id = c.document_id
LEFT JOIN billing.invoices d ON d.invoice_id = c.document_id
WHERE c.billing_month = $month
ORDER BY c.currency, c.invoice_id, c.detected_at, c.line_id, c.correction_id;
