-- Export finance_credit_note_reconciliation.csv / .parquet: the whole table, in a stable order.
SELECT * FROM finance.credit_note_reconciliation
ORDER BY billing_month NULLS LAST, credit_note_id NULLS LAST, provider, external_id
