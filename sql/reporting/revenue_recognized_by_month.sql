-- Revenue recognized per service month and currency (finance.revenue_schedule, net of tax),
-- for the twelve months up to the report month ($month): at issue (usage and in-arrears fees,
-- in the month consumed), moved out of deferred revenue (in-advance fees, by day), and the
-- credit notes (negative, contra revenue); `recognized` their sum. `month_over` is false for a
-- month not over yet when the schedule was built (its deferred part is not posted yet).
SELECT month, currency,
       coalesce(sum(amount) FILTER (WHERE document_type = 'invoice' AND basis = 'at_issue'),
                0)::DECIMAL(38, 12) AS at_issue,
       coalesce(sum(amount) FILTER (WHERE document_type = 'invoice' AND basis = 'deferred'),
                0)::DECIMAL(38, 12) AS from_deferred,
       coalesce(sum(amount) FILTER (WHERE document_type = 'credit_note'),
                0)::DECIMAL(38, 12) AS credit_notes,
       sum(amount)::DECIMAL(38, 12) AS recognized,
       bool_and(recognized) AS month_over
FROM finance.revenue_schedule
WHERE month <= $month AND month > strftime($first_day - INTERVAL 12 MONTH, '%Y-%m')
GROUP BY month, currency
ORDER BY currency, month
