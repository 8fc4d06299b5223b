-- Export billing_corrections.csv / .parquet: every correction (all months) with the numbers of
-- the invoice it corrects and of the document that carries it, in a stable order.
SELECT c.*, i.invoice_number,
       coalesce(n.credit_note_number, d.invoice_number) AS document_number,
       coalesce(n.status, d.status) AS document_status
FROM billing.corrections c
LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
LEFT JOIN billing.credit_notes n ON n.credit_note_id = c.document_id
LEFT JOIN billing.invoices d ON d.invoice_id = c.document_id
ORDER BY c.billing_month, c.invoice_id, c.detected_at, c.line_id, c.correction_id
