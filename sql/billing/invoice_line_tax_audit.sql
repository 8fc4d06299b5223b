-- Every line of the month's invoices with its tax and the rate it was taxed at, beside its
-- invoice's rate, for the blocking check that computes each tax again
-- (pipelines/invoicing/audit.py). Parameter: $billing_month.
SELECT
    l.line_id, l.invoice_id, i.currency, l.amount, l.tax_amount,
    l.tax_rate_key, l.tax_rate_percent, coalesce(l.tax_inclusive, false) AS tax_inclusive,
    (l.tax_rate_key IS NOT DISTINCT FROM i.tax_rate_key
     AND l.tax_rate_percent IS NOT DISTINCT FROM i.tax_rate_percent
     AND coalesce(l.tax_inclusive, false) = coalesce(i.tax_inclusive, false)) AS invoice_rate
FROM billing.invoice_lines l
JOIN billing.invoices i USING (invoice_id)
WHERE i.billing_month = $billing_month
ORDER BY l.line_id
