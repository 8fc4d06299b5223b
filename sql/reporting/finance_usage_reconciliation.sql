-- Export finance_usage_reconciliation.csv / .parquet: the whole table, in a stable order.
SELECT * FROM finance.usage_reconciliation
ORDER BY billing_month, customer_id, subscription_id, meter_key, period_start
