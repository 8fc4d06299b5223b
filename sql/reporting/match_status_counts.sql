-- How the month's reconciliation came out: rows per kind (invoice, credit_note, payment, usage)
-- and match status, matched included, with when the reconciliation that wrote them ran.
-- Parameter: $month.
SELECT kind, match_status, count(*) AS rows, max(reconciled_at) AS reconciled_at
FROM reconciliation_in_month($month)
GROUP BY kind, match_status
ORDER BY CASE kind WHEN 'invoice' THEN 0 WHEN 'credit_note' THEN 1
                   WHEN 'payment' THEN 2 ELSE 3 END,
         match_status = 'matched' DESC, match_status;
