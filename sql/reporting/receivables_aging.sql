-- Open receivables as of the latest reconciliation, per currency and aging bucket (0-30, not
-- yet due included; 31-60; 61-90; 90+): how many invoices and how much is due, exact DECIMAL
-- sums, never across currencies.
SELECT currency, aging_bucket, count(*) AS invoices, sum(amount_due) AS amount_due,
       max(reconciled_at) AS reconciled_at
FROM finance.receivables_aging
GROUP BY currency, aging_bucket
ORDER BY currency, CASE aging_bucket WHEN '0-30' THEN 0 WHEN '31-60' THEN 1
                                     WHEN '61-90' THEN 2 WHEN '90+' THEN 3 ELSE 4 END,
         aging_bucket;
