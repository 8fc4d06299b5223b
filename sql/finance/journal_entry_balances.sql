-- Every journal entry's debits and credits per currency (the blocking check
-- journal_entries_balance): they must be equal, each line one-sided and not negative.
SELECT e.entry_id, e.source_type, l.currency,
       sum(l.debit)::DECIMAL(38, 12) AS debits,
       sum(l.credit)::DECIMAL(38, 12) AS credits,
       count(*) FILTER (WHERE l.debit < 0 OR l.credit < 0
                        OR (l.debit <> 0 AND l.credit <> 0)
                        OR (l.debit = 0 AND l.credit = 0)) AS bad_lines,
       count(*) FILTER (WHERE l.currency <> e.currency) AS foreign_lines
FROM finance.journal_entries e
JOIN finance.journal_lines l USING (entry_id)
GROUP BY e.entry_id, e.source_type, l.currency
