-- Export finance_invoice_reconciliation.csv / .parquet: the whole table, in a stable order.
SELECT * FROM finance.invoice_reconciliation
ORDER BY billing_month NULLS LAST, invoice_id NULLS LAST, provider, external_id
