-- Every reconciliation finding of the month that is not a match (orphans included), the rows
-- finance works through: which invoice (or credit note), at which provider, what was found and
-- the sentence explaining it. Parameters: $month, $limit (the page shows at most this many;
-- the exports hold them all).
SELECT kind, invoice_id, customer_id, provider, match_status, detail, orphan
FROM reconciliation_in_month($month)
WHERE match_status <> 'matched'
ORDER BY CASE kind WHEN 'invoice' THEN 0 WHEN 'credit_note' THEN 1
                   WHEN 'payment' THEN 2 ELSE 3 END,
         match_status, invoice_id NULLS LAST, provider, customer_id, detail
LIMIT $limit;
