-- Export finance_receivables_aging.csv / .parquet: the whole table, in a stable order.
SELECT * FROM finance.receivables_aging
ORDER BY currency, days_past_due DESC, invoice_id
