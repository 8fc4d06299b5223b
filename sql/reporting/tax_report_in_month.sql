-- The tax report of the report month ($month = finance.tax_report.period, the UTC month the
-- documents were issued or voided in): per jurisdiction, rate and currency, the taxable amount
-- (net of tax) and the tax of issued invoices less credit notes. Never summed across currencies.
SELECT country, region, tax_rate_key, tax_rate_percent, tax_inclusive, currency,
       taxable_amount, tax_amount, invoices, credit_notes
FROM finance.tax_report
WHERE period = $month
ORDER BY currency, country NULLS LAST, region NULLS FIRST, tax_rate_key NULLS LAST
