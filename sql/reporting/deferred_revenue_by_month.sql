-- Deferred revenue per month, currency and account (finance.deferred_revenue_balance, from the
-- journal), for the twelve months up to the report month ($month): deferred by the month's
-- invoices less credit notes, recognized by its revenue_recognition entries, and the balance
-- at the month's end.
SELECT month, currency, account, deferred, recognized, balance
FROM finance.deferred_revenue_balance
WHERE month <= $month AND month > strftime($first_day - INTERVAL 12 MONTH, '%Y-%m')
ORDER BY currency, account, month
