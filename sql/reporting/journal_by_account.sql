-- The journal per currency and account for the report month (entries whose posted_at falls in
-- $month, YYYY-MM, UTC): what they debited and credited and the net (debit - credit); and the
-- account's balance at the month's end (every entry posted up to then, reversals included).
-- Per currency the nets sum to zero and so do the balances (the trial balance): every entry
-- balances by itself (blocking check journal_entries_balance). Never summed across currencies.
WITH lines AS (
    SELECT l.currency, l.account, l.debit, l.credit,
           strftime(e.posted_at, '%Y-%m') = $month AS in_month
    FROM finance.journal_lines l
    JOIN finance.journal_entries e USING (entry_id)
    WHERE strftime(e.posted_at, '%Y-%m') <= $month
)
SELECT currency, account,
       count(*) FILTER (WHERE in_month) AS lines,
       coalesce(sum(debit) FILTER (WHERE in_month), 0)::DECIMAL(38, 12) AS debits,
       coalesce(sum(credit) FILTER (WHERE in_month), 0)::DECIMAL(38, 12) AS credits,
       coalesce(sum(debit - credit) FILTER (WHERE in_month), 0)::DECIMAL(38, 12) AS net,
       sum(debit - credit)::DECIMAL(38, 12) AS balance
FROM lines
GROUP BY currency, account
ORDER BY currency, account
