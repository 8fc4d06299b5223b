-- Export finance_trial_balance.csv / .parquet: the journal per posting month (UTC), currency
-- and account: debits, credits, net (debit - credit) of the month and the balance at the
-- month's end; every month with a move. Per month and currency the nets and balances sum to 0.
WITH moves AS (
    SELECT strftime(e.posted_at, '%Y-%m') AS month, l.currency, l.account,
           sum(l.debit) AS debits, sum(l.credit) AS credits
    FROM finance.journal_lines l
    JOIN finance.journal_entries e USING (entry_id)
    GROUP BY ALL
)
SELECT month, currency, account, debits::DECIMAL(38, 12) AS debits,
       credits::DECIMAL(38, 12) AS credits, (debits - credits)::DECIMAL(38, 12) AS net,
       sum(debits - credits) OVER (PARTITION BY currency, account ORDER BY month)
           ::DECIMAL(38, 12) AS balance
FROM moves
ORDER BY month, currency, account
