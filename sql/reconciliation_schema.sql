-- Reconciliation and health tables (contract section 7). Idempotent: run at every connect.
-- Each is rebuilt whole by the reconciliation job (sql/finance/*, sql/health/*): a row says
-- how things stood at `reconciled_at`. Columns may be added; these names and meanings hold.

-- Every ledger invoice meant for a provider against that provider's latest snapshot
-- (sync.provider_invoices), and every provider invoice carrying our metadata that the ledger
-- does not know. match_status is the most serious finding; `findings` lists them all.
CREATE TABLE IF NOT EXISTS finance.invoice_reconciliation (
    invoice_id        VARCHAR,                 -- ours; for an orphan, what its metadata claims
    provider          VARCHAR NOT NULL,        -- stripe | custom_invoicing
    external_id       VARCHAR,                 -- the provider's invoice (several: comma-separated)
    customer_id       VARCHAR,
    billing_month     VARCHAR,
    invoice_number    VARCHAR,
    ledger_currency   VARCHAR,
    provider_currency VARCHAR,
    ledger_total      DECIMAL(38, 12),         -- including tax (total_including_tax)
    provider_total    DECIMAL(38, 12),         -- including tax, as the provider bills it
    ledger_status     VARCHAR,
    provider_status   VARCHAR,
    expected_provider_status VARCHAR,          -- the provider status the ledger status implies
    ledger_lines      INTEGER,
    provider_lines    INTEGER,
    line_differences  VARCHAR,                 -- which lines differ and how (line_mismatch)
    match_status      VARCHAR NOT NULL,        -- matched | pending_sync | missing_in_provider |
                                               -- orphan_in_provider | duplicate_in_provider |
                                               -- currency_mismatch | amount_mismatch |
                                               -- line_mismatch | status_mismatch
    findings          VARCHAR[] NOT NULL,      -- every finding, most serious first
    detail            VARCHAR NOT NULL,        -- one sentence finance can read
    since             TIMESTAMPTZ,             -- when the invoice entered its ledger status
    age_hours         DOUBLE,                  -- hours since `since`
    sla_hours         DOUBLE,                  -- the billing profile's sync SLA
    sla_breached      BOOLEAN NOT NULL,        -- not matched, and older than the SLA
    snapshot_at       TIMESTAMPTZ,             -- when the provider's snapshot was taken
    reconciled_at     TIMESTAMPTZ NOT NULL
);

-- Payments and refunds seen at a provider against the ledger, and ledger payments the provider
-- does not show.
CREATE TABLE IF NOT EXISTS finance.payment_reconciliation (
    invoice_id      VARCHAR,
    provider        VARCHAR NOT NULL,
    external_id     VARCHAR,
    kind            VARCHAR NOT NULL,          -- payment | refund
    currency        VARCHAR,
    amount          DECIMAL(38, 12),           -- at the provider (paid, or refunded)
    ledger_amount   DECIMAL(38, 12),           -- what the ledger expects (total due including
                                               -- tax, or refunded)
    ledger_status   VARCHAR,
    provider_status VARCHAR,
    match_status    VARCHAR NOT NULL,          -- matched | paid_at_provider_open_in_ledger |
                                               -- paid_in_ledger_not_at_provider |
                                               -- amount_paid_mismatch | refunded_not_flagged |
                                               -- refund_not_at_provider
    detail          VARCHAR NOT NULL,
    reconciled_at   TIMESTAMPTZ NOT NULL
);

-- Usage per customer × meter × service period: events accepted now, the quantity they
-- aggregate to now, what was measured at rating and what the invoice bills.
CREATE TABLE IF NOT EXISTS finance.usage_reconciliation (
    billing_month       VARCHAR NOT NULL,
    customer_id         VARCHAR NOT NULL,
    subscription_id     VARCHAR NOT NULL,
    meter_key           VARCHAR NOT NULL,
    period_start        DATE NOT NULL,
    period_end          DATE NOT NULL,
    invoice_id          VARCHAR,
    invoice_status      VARCHAR,
    events_accepted     BIGINT NOT NULL,       -- matching the meter in raw.events now
    events_rated        BIGINT NOT NULL,       -- counted when the period was rated
    quantity_aggregated DECIMAL(38, 12) NOT NULL,  -- aggregated from raw.events now
    quantity_rated      DECIMAL(38, 12) NOT NULL,  -- measured when the period was rated
    quantity_billed     DECIMAL(38, 12),       -- on the invoice's usage line(s)
    unbilled_events     BIGINT NOT NULL,       -- accepted after the issued invoice was rated
    match_status        VARCHAR NOT NULL,      -- matched | unbilled_late_events |
                                               -- awaiting_rerating | quantity_mismatch |
                                               -- not_invoiced
    detail              VARCHAR NOT NULL,
    reconciled_at       TIMESTAMPTZ NOT NULL
);

-- Open receivables by how far past due they are.
CREATE TABLE IF NOT EXISTS finance.receivables_aging (
    invoice_id      VARCHAR NOT NULL,
    invoice_number  VARCHAR,
    customer_id     VARCHAR NOT NULL,
    provider        VARCHAR NOT NULL,          -- the invoice's app
    currency        VARCHAR NOT NULL,
    amount_due      DECIMAL(38, 12) NOT NULL,  -- total including tax less what the provider
                                               -- shows paid and the credit notes (incl. tax)
    status          VARCHAR NOT NULL,
    issued_at       TIMESTAMPTZ,
    due_date        DATE NOT NULL,
    days_past_due   INTEGER NOT NULL,          -- negative: not due yet
    aging_bucket    VARCHAR NOT NULL,          -- 0-30 (not yet due included) | 31-60 | 61-90 | 90+
    reconciled_at   TIMESTAMPTZ NOT NULL
);

-- Outbound provider calls per provider and day (sync.sync_attempts), with what waits.
CREATE TABLE IF NOT EXISTS health.sync_health (
    provider             VARCHAR NOT NULL,
    day                  DATE NOT NULL,
    attempts             BIGINT NOT NULL,
    succeeded            BIGINT NOT NULL,
    failed               BIGINT NOT NULL,
    retried              BIGINT NOT NULL,
    rate_limited         BIGINT NOT NULL,      -- answered 429
    p50_ms               DOUBLE,
    p95_ms               DOUBLE,
    oldest_pending_hours DOUBLE,               -- on the reconciliation day: the longest wait in
                                               -- a syncing or sync_failed state
    invoices_pending     BIGINT NOT NULL,      -- on the reconciliation day: how many wait
    reconciled_at        TIMESTAMPTZ NOT NULL
);

-- The pipeline per day: ingestion, late events, stuck invoices, failed deliveries.
CREATE TABLE IF NOT EXISTS health.pipeline_health (
    day               DATE NOT NULL,
    files             BIGINT NOT NULL,
    received          BIGINT NOT NULL,
    accepted          BIGINT NOT NULL,
    duplicates        BIGINT NOT NULL,
    rejected          BIGINT NOT NULL,
    conflicts         BIGINT NOT NULL,
    late_events       BIGINT NOT NULL,         -- ingested after the invoice of their period issued
    stuck_invoices    BIGINT NOT NULL,         -- on the reconciliation day: past their sync SLA
    failed_deliveries BIGINT NOT NULL,         -- notification deliveries given up that day
    payment_errors    BIGINT NOT NULL,         -- invoices that entered a payment failure that day
    reconciled_at     TIMESTAMPTZ NOT NULL
);

-- When each provider's snapshot was last replaced (an empty snapshot still counts: the provider
-- was asked and has none of our invoices, which differs from never having been asked).
CREATE TABLE IF NOT EXISTS sync.provider_snapshots (
    provider     VARCHAR PRIMARY KEY,
    snapshot_at  TIMESTAMPTZ NOT NULL,
    invoices     BIGINT NOT NULL
);

-- Every ledger credit note meant for a provider against that provider's latest view of its
-- credit notes (sync.provider_credit_notes), and every provider credit note the ledger does not
-- know (sql/finance/credit_note_reconciliation.sql). Totals are the amounts credited (positive).
CREATE TABLE IF NOT EXISTS finance.credit_note_reconciliation (
    credit_note_id      VARCHAR,               -- ours; for an orphan, what its metadata claims
    provider            VARCHAR NOT NULL,      -- stripe | custom_invoicing
    external_id         VARCHAR,               -- the provider's credit note (several: comma-separated)
    invoice_id          VARCHAR,               -- the invoice the ledger's credit note credits
    provider_invoice_id VARCHAR,               -- the invoice of ours the provider's credits
    customer_id         VARCHAR,
    billing_month       VARCHAR,               -- the credited invoice's billing month
    credit_note_number  VARCHAR,               -- ours (CN-YYYYMM-NNNNN)
    provider_number     VARCHAR,               -- the provider's own number
    kind                VARCHAR,               -- correction | manual
    ledger_currency     VARCHAR,
    provider_currency   VARCHAR,
    ledger_total        DECIMAL(38, 12),       -- credited including tax
    provider_total      DECIMAL(38, 12),       -- credited including tax, at the provider
    ledger_status       VARCHAR,               -- draft | draft.* | issuing* | issued | voided
    provider_status     VARCHAR,               -- the provider's word (Stripe: issued | void)
    ledger_lines        INTEGER,
    provider_lines      INTEGER,
    match_status        VARCHAR NOT NULL,      -- matched | pending_sync | missing_in_provider |
                                               -- orphan_in_provider | duplicate_in_provider |
                                               -- amount_mismatch | invoice_mismatch |
                                               -- status_mismatch
    findings            VARCHAR[] NOT NULL,    -- every finding, most serious first
    detail              VARCHAR NOT NULL,      -- one sentence finance can read
    since               TIMESTAMPTZ,           -- when the credit note entered its ledger status
    age_hours           DOUBLE,
    sla_hours           DOUBLE,                -- the billing profile's sync SLA
    sla_breached        BOOLEAN NOT NULL,      -- not matched, and older than the SLA
    snapshot_at         TIMESTAMPTZ,           -- when the provider's view was taken
    reconciled_at       TIMESTAMPTZ NOT NULL
);

-- Usage billed by corrections (contract section 9): of the events accepted after the issued
-- invoice was rated, those an issued correction of its usage line bills.
ALTER TABLE finance.usage_reconciliation
    ADD COLUMN IF NOT EXISTS events_billed_by_corrections BIGINT;

-- Tax by period x jurisdiction x rate (contract section 10, docs/tax.md), from issued invoices
-- less issued credit notes; voids take back in the month of the void. Rebuilt whole
-- (sql/finance/tax_report.sql). The lines it sums are kept in finance.tax_report_lines.
CREATE TABLE IF NOT EXISTS finance.tax_report_lines (
    period            VARCHAR NOT NULL,         -- YYYY-MM (UTC) of the issue (or void)
    document_type     VARCHAR NOT NULL,         -- invoice | credit_note | invoice_void | credit_note_void
    document_id       VARCHAR NOT NULL,
    line_id           VARCHAR NOT NULL,
    invoice_id        VARCHAR NOT NULL,         -- the invoice (a credit note: the one it credits)
    customer_id       VARCHAR NOT NULL,
    country           VARCHAR,                  -- jurisdiction; NULL: customer without address
    region            VARCHAR,
    tax_rate_key      VARCHAR,                  -- NULL: no tax; reverse_charge: 0 %
    tax_rate_percent  DECIMAL(38, 12),
    tax_inclusive     BOOLEAN NOT NULL,
    currency          VARCHAR NOT NULL,
    sign              INTEGER NOT NULL,         -- +1 invoice, -1 its void; credit notes carry
                                                -- negative lines (+1), their void -1
    amount            DECIMAL(38, 12) NOT NULL, -- the line's amount as stored (unsigned by sign)
    tax_amount        DECIMAL(38, 12) NOT NULL, -- the line's tax as stored
    taxable_amount    DECIMAL(38, 12) NOT NULL, -- sign x (amount less an inclusive tax)
    tax               DECIMAL(38, 12) NOT NULL  -- sign x tax_amount
);

CREATE TABLE IF NOT EXISTS finance.tax_report (
    period            VARCHAR NOT NULL,
    country           VARCHAR,
    region            VARCHAR,
    tax_rate_key      VARCHAR,
    tax_rate_percent  DECIMAL(38, 12),
    tax_inclusive     BOOLEAN NOT NULL,
    currency          VARCHAR NOT NULL,         -- amounts are never added across currencies
    taxable_amount    DECIMAL(38, 12) NOT NULL, -- net of tax: invoices less credit notes
    tax_amount        DECIMAL(38, 12) NOT NULL,
    invoices          INTEGER NOT NULL,         -- documents behind the row
    credit_notes      INTEGER NOT NULL,
    reported_at       TIMESTAMPTZ NOT NULL
);

-- Totals including tax (docs/tax.md, docs/finance-queries.md): reconciliation compares what the
-- customer owes. finance.invoice_reconciliation.ledger_total and
-- finance.credit_note_reconciliation.ledger_total are the ledger's total_including_tax (what
-- the provider's total, which includes the tax it bills, must equal); these columns say how
-- much of it is tax (0 for an untaxed document).
ALTER TABLE finance.invoice_reconciliation
    ADD COLUMN IF NOT EXISTS ledger_tax_total DECIMAL(38, 12);
ALTER TABLE finance.credit_note_reconciliation
    ADD COLUMN IF NOT EXISTS ledger_tax_total DECIMAL(38, 12);
