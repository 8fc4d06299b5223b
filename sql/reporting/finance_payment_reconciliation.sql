-- Export finance_payment_reconciliation.csv / .parquet: the whole table, in a stable order.
SELECT * FROM finance.payment_reconciliation
ORDER BY invoice_id NULLS LAST, provider, kind, external_id
