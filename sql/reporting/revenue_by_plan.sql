-- Revenue of the billing month by currency and plan: the totals of the month's issued invoices
-- (see invoice_is_issued), exact DECIMAL sums, one currency at a time.
-- Parameter: $month.
SELECT
    i.currency,
    i.plan_key,
    p.name AS plan_name,
    count(*) AS invoices,
    sum(i.total) AS revenue
FROM billing.invoices i
LEFT JOIN billing.plans p ON p.plan_key = i.plan_key
WHERE i.billing_month = $month AND invoice_is_issued(i.status)
GROUP BY ALL
ORDER BY i.currency, revenue DESC, i.plan_key;
