-- Export finance_deferred_revenue_balance.csv / .parquet: the whole view (every month).
SELECT * FROM finance.deferred_revenue_balance ORDER BY currency, account, month
