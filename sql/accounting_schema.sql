-- Accounting (contract section 10, docs/accounting.md). Idempotent: run at every connect.

-- The chart of accounts (catalog `accounts:`, defaults when absent), rebuilt with the catalog.
CREATE TABLE IF NOT EXISTS billing.accounts (
    role        VARCHAR NOT NULL,   -- receivable | revenue | deferred_revenue | tax_payable |
                                    -- cash | contra_revenue | bad_debt
    plan_key    VARCHAR,            -- revenue of one plan (NULL: every plan)
    price_key   VARCHAR,            -- revenue of one price of that plan
    provider    VARCHAR,            -- cash: stripe | custom_invoicing | none
    account     VARCHAR NOT NULL,   -- the accounting system's account code
    source_file VARCHAR
);

-- The journal: append-only, double entry, one currency per entry. A change is a reversal
-- (entry_kind reversal, reverses_entry_id) plus the next revision of the source's posting.
CREATE TABLE IF NOT EXISTS finance.journal_entries (
    entry_id          VARCHAR PRIMARY KEY,  -- je_ + sha256(source_type|source_id|revision)
    posted_at         TIMESTAMPTZ NOT NULL, -- the accounting date (the fact's, or the run's)
    source_type       VARCHAR NOT NULL,     -- invoice | credit_note | payment | refund | void |
                                            -- write_off | revenue_recognition
    source_id         VARCHAR NOT NULL,     -- the document (recognition: document|YYYY-MM)
    revision          INTEGER NOT NULL,     -- 0, then 1, 2... each time the source is re-posted
    entry_kind        VARCHAR NOT NULL,     -- posting | reversal
    reverses_entry_id VARCHAR,              -- a reversal's (or a void's) reversed entry
    currency          VARCHAR NOT NULL,
    content_digest    VARCHAR NOT NULL,     -- what the entry says: equal facts post nothing
    description       VARCHAR NOT NULL,
    document_id       VARCHAR,              -- the invoice or credit note it comes from
    document_number   VARCHAR,
    recorded_at       TIMESTAMPTZ NOT NULL, -- when the pipeline appended it
    run_id            VARCHAR
);

CREATE TABLE IF NOT EXISTS finance.journal_lines (
    entry_id    VARCHAR NOT NULL,
    line_no     INTEGER NOT NULL,
    account     VARCHAR NOT NULL,
    debit       DECIMAL(38, 12) NOT NULL,   -- one of debit and credit is 0
    credit      DECIMAL(38, 12) NOT NULL,
    customer_id VARCHAR,
    currency    VARCHAR NOT NULL,
    PRIMARY KEY (entry_id, line_no)
);

-- Revenue recognition: one row per document line and calendar month (rebuilt whole; voided
-- documents have none). basis deferred: in the journal through monthly revenue_recognition
-- entries; at_issue: credited to revenue by the issue entry, shown in the month consumed.
CREATE TABLE IF NOT EXISTS finance.revenue_schedule (
    document_type VARCHAR NOT NULL,         -- invoice | credit_note
    document_id   VARCHAR NOT NULL,
    line_id       VARCHAR NOT NULL,         -- invoice line_id or credit_note_line_id
    customer_id   VARCHAR NOT NULL,
    currency      VARCHAR NOT NULL,
    account       VARCHAR NOT NULL,         -- where it is recognized (revenue, contra revenue)
    basis         VARCHAR NOT NULL,         -- deferred | at_issue
    service_start DATE NOT NULL,
    service_end   DATE NOT NULL,            -- exclusive
    month         VARCHAR NOT NULL,         -- YYYY-MM
    days          INTEGER NOT NULL,
    amount        DECIMAL(38, 12) NOT NULL, -- recognized in the month (net of tax)
    line_amount   DECIMAL(38, 12) NOT NULL, -- the line's net amount: the months sum to it
    recognized    BOOLEAN NOT NULL,         -- its month is over (deferred: posted)
    built_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (line_id, month)
);

-- Deferred revenue per month and currency, from the journal: what was deferred, what was
-- recognized, and the balance at the month's end (every month from the first to the last).
CREATE OR REPLACE VIEW finance.deferred_revenue_balance AS
WITH deferred_accounts AS (
    SELECT account FROM billing.accounts WHERE role = 'deferred_revenue'
),
moves AS (
    SELECT strftime(e.posted_at, '%Y-%m') AS month, l.currency, l.account,
           sum(l.credit) FILTER (WHERE e.source_type <> 'revenue_recognition') -
           sum(l.debit) FILTER (WHERE e.source_type <> 'revenue_recognition') AS deferred,
           sum(l.debit) FILTER (WHERE e.source_type = 'revenue_recognition') -
           sum(l.credit) FILTER (WHERE e.source_type = 'revenue_recognition') AS recognized
    FROM finance.journal_lines l
    JOIN finance.journal_entries e USING (entry_id)
    WHERE l.account IN (SELECT account FROM deferred_accounts)
    GROUP BY ALL
),
bounds AS (
    SELECT currency, account, min(month) AS first_month, max(month) AS last_month
    FROM moves GROUP BY ALL
),
calendar AS (
    SELECT b.currency, b.account, strftime(m, '%Y-%m') AS month
    FROM bounds b,
         LATERAL (SELECT unnest(generate_series(strptime(b.first_month, '%Y-%m'),
                                                strptime(b.last_month, '%Y-%m'),
                                                INTERVAL 1 MONTH)) AS m)
)
SELECT c.month, c.currency, c.account,
       coalesce(m.deferred, 0)::DECIMAL(38, 12) AS deferred,
       coalesce(m.recognized, 0)::DECIMAL(38, 12) AS recognized,
       sum(coalesce(m.deferred, 0) - coalesce(m.recognized, 0))
           OVER (PARTITION BY c.currency, c.account ORDER BY c.month)::DECIMAL(38, 12)
           AS balance
FROM calendar c
LEFT JOIN moves m USING (month, currency, account);
