-- The lines of the invoices being synced (temp table sync_candidates), in invoice order, with
-- the tax the ledger computed for each (sent to Stripe as its tax_amounts; docs/tax.md).
SELECT l.invoice_id, l.line_id, l.line_type, l.description, l.amount,
       l.period_start, l.period_end, l.corrects_line_id,
       l.tax_rate_key, l.tax_rate_percent, coalesce(l.tax_inclusive, false) AS tax_inclusive,
       coalesce(l.tax_amount, 0) AS tax_amount
FROM billing.invoice_lines l
JOIN sync_candidates c ON c.invoice_id = l.invoice_id
ORDER BY l.invoice_id, l.position, l.line_id
