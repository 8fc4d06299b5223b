-- The invoice lines and credit note lines written without their tax (adjustment, discount,
-- correction and credit-balance lines, the lines of supplementary invoices and credit notes),
-- each with the rate of the invoice it belongs to or credits: pipelines/invoicing/document_tax.py
-- computes their tax by the pure rule and writes it back by id.
SELECT 'invoice_line' AS kind, l.line_id AS id, l.amount, i.currency, i.tax_rate_key,
       i.tax_rate_percent, coalesce(i.tax_inclusive, false) AS tax_inclusive
FROM billing.invoice_lines l
JOIN billing.invoices i USING (invoice_id)
WHERE l.tax_amount IS NULL
UNION ALL
SELECT 'credit_note_line', cl.credit_note_line_id, cl.amount, i.currency, i.tax_rate_key,
       i.tax_rate_percent, coalesce(i.tax_inclusive, false)
FROM billing.credit_note_lines cl
JOIN billing.credit_notes c USING (credit_note_id)
JOIN billing.invoices i ON i.invoice_id = c.invoice_id
WHERE cl.tax_amount IS NULL
