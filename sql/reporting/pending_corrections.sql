-- Corrections waiting for a person now, whatever their month (like open alerts): above their
-- profile's auto_approve_corrections_up_to, to be decided with `billing corrections approve ID`
-- or `reject ID --reason ...`. Oldest first.
SELECT c.correction_id, c.billing_month, c.detected_at, c.invoice_id, i.invoice_number,
       c.customer_id, c.currency, c.description, c.covered_amount, c.rated_amount, c.delta,
       c.document_type
FROM billing.corrections c
LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
WHERE c.status = 'pending_approval'
ORDER BY c.detected_at, c.correction_id;
