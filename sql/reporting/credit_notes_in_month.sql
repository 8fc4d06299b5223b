-- The credit notes of the month's invoices (corrections and manual ones): number once issued,
-- the invoice credited, why, how much, where it stands and who made it. Parameter: $month.
SELECT n.credit_note_id, n.credit_note_number, n.invoice_id, i.invoice_number, n.customer_id,
       n.currency, n.total, n.status, n.kind, n.reason, n.app, n.created_by, n.created_at,
       n.issued_at
FROM billing.credit_notes n
LEFT JOIN billing.invoices i ON i.invoice_id = n.invoice_id
WHERE n.billing_month = $month
ORDER BY n.currency, n.credit_note_number NULLS LAST, n.created_at, n.credit_note_id;
