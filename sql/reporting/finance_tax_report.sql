-- Export finance_tax_report.csv / .parquet: the whole table (every period), in a stable order.
SELECT * FROM finance.tax_report
ORDER BY period, currency, country NULLS LAST, region NULLS FIRST, tax_rate_key NULLS LAST
