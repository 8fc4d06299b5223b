-- The supplementary invoices of the month's invoices: ordinary invoices with corrects_invoice_id
-- that bill approved increases (contract section 9). Parameter: $month.
SELECT s.invoice_id, s.invoice_number, s.corrects_invoice_id, i.invoice_number AS corrects_number,
       s.customer_id, s.currency, s.total, s.status, s.created_at, s.issued_at
FROM billing.invoices s
LEFT JOIN billing.invoices i ON i.invoice_id = s.corrects_invoice_id
WHERE s.billing_month = $month AND s.corrects_invoice_id IS NOT NULL
ORDER BY s.currency, s.invoice_number NULLS LAST, s.created_at, s.invoice_id;
