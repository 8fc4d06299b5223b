-- The month's invoices per currency (never summed across currencies): how many there are, how
-- many are issued and their total, what still waits to be issued (drafts and invoices being
-- issued) and how many were voided. Parameter: $month (YYYY-MM, the billing month).
SELECT
    currency,
    count(*) AS invoices,
    count(*) FILTER (WHERE invoice_is_issued(status)) AS issued,
    coalesce(sum(total) FILTER (WHERE invoice_is_issued(status)), 0) AS issued_total,
    count(*) FILTER (WHERE NOT invoice_is_issued(status)
                       AND status NOT IN ('voided', 'discarded')) AS awaiting_issue,
    coalesce(sum(total) FILTER (WHERE NOT invoice_is_issued(status)
                                  AND status NOT IN ('voided', 'discarded')), 0) AS awaiting_total,
    count(*) FILTER (WHERE status = 'voided') AS voided
FROM billing.invoices
WHERE billing_month = $month AND status <> 'discarded'
GROUP BY currency
ORDER BY currency;
