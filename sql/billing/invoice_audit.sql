-- The month's invoices beside the sum of their lines (amounts and taxes) and their plan's
-- currency, for the blocking invoice checks. Parameter: $billing_month.
SELECT
    i.invoice_id, i.subscription_id,
    -- one invoice per cut: a supplementary invoice shares its cut with the invoice it corrects
    CASE WHEN i.corrects_invoice_id IS NULL THEN CAST(i.boundary AS VARCHAR)
         ELSE 'corrects ' || i.corrects_invoice_id || ': ' || i.invoice_id END AS boundary,
    i.currency,
    p.currency AS plan_currency, i.subtotal, i.discount_total, i.total,
    coalesce(sum(l.amount), 0)::DECIMAL(38, 12) AS lines_total,
    coalesce(sum(l.amount) FILTER (WHERE l.line_type <> 'discount'), 0)::DECIMAL(38, 12)
        AS lines_subtotal,
    count(l.line_id) AS lines,
    i.tax_total, i.total_including_tax,
    coalesce(sum(l.tax_amount), 0)::DECIMAL(38, 12) AS lines_tax_total,
    coalesce(sum(l.tax_amount) FILTER (WHERE NOT l.tax_inclusive), 0)::DECIMAL(38, 12)
        AS lines_exclusive_tax
FROM billing.invoices i
LEFT JOIN billing.plans p ON p.plan_key = i.plan_key
LEFT JOIN billing.invoice_lines l ON l.invoice_id = i.invoice_id
WHERE i.billing_month = $billing_month
GROUP BY ALL
ORDER BY i.invoice_id
