-- The warehouse's schemas and tables (contract section 7). Idempotent: run at every connect.
-- Columns may be added over time; the contract's names and meanings hold.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS billing;
CREATE SCHEMA IF NOT EXISTS sync;
CREATE SCHEMA IF NOT EXISTS finance;
CREATE SCHEMA IF NOT EXISTS health;

CREATE TABLE IF NOT EXISTS raw.events (
    source          VARCHAR NOT NULL,
    event_id        VARCHAR NOT NULL,
    event_name      VARCHAR NOT NULL,
    customer_id     VARCHAR NOT NULL,
    subscription_id VARCHAR,
    "timestamp"     TIMESTAMPTZ NOT NULL,
    properties      JSON NOT NULL,
    file_id         VARCHAR NOT NULL,
    line_number     BIGINT NOT NULL,     -- line (JSON Lines) or record/row number (CSV, Parquet)
    ingested_at     TIMESTAMPTZ NOT NULL,
    payload_hash    UHUGEINT NOT NULL,   -- digest of everything but the identity (sql/raw/payload_digest.sql): tells duplicate from conflict
    origin          VARCHAR NOT NULL DEFAULT 'file'  -- file | reprocessed (accepted on a later pass)
);

CREATE TABLE IF NOT EXISTS raw.rejected_events (
    file_id         VARCHAR NOT NULL,
    line_number     BIGINT NOT NULL,
    reason          VARCHAR NOT NULL,   -- a stable code: malformed_line, missing_field, conflict, ...
    detail          VARCHAR NOT NULL,   -- what is wrong, naming the field
    raw             VARCHAR,            -- the line (or the record, for CSV and Parquet) as received
    source          VARCHAR,
    event_id        VARCHAR,
    customer_id     VARCHAR,
    rejected_at     TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,        -- set when a re-processing accepted or deduplicated the line
    resolution      VARCHAR,
    origin          VARCHAR NOT NULL DEFAULT 'file'  -- file | reprocessed (found on a later pass)
);

-- The digest of a fixed probe payload when raw.events.payload_hash was last computed
-- (sql/raw/payload_digest.sql): a DuckDB release that digests differently is noticed, and every
-- stored event re-digested, before the next dedup compares digests.
CREATE TABLE IF NOT EXISTS raw.payload_digest_scheme (
    probe_digest    UHUGEINT NOT NULL,
    digested_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.ingestion_log (
    file_id         VARCHAR PRIMARY KEY, -- sha256 of the file's bytes: the same file lands once
    path            VARCHAR NOT NULL,
    format          VARCHAR NOT NULL,
    bytes           BIGINT NOT NULL,
    received        BIGINT NOT NULL,
    accepted        BIGINT NOT NULL,
    duplicates      BIGINT NOT NULL,
    rejected        BIGINT NOT NULL,
    conflicts       BIGINT NOT NULL,     -- part of rejected
    ingested_at     TIMESTAMPTZ NOT NULL,
    run_id          VARCHAR,
    mtime_ns        BIGINT               -- the file's mtime: an unchanged path is not hashed again
);
ALTER TABLE raw.ingestion_log ADD COLUMN IF NOT EXISTS mtime_ns BIGINT;

CREATE TABLE IF NOT EXISTS raw.reprocessing_log (
    reprocessed_at  TIMESTAMPTZ NOT NULL,
    candidates      BIGINT NOT NULL,
    accepted        BIGINT NOT NULL,
    duplicates      BIGINT NOT NULL,
    conflicts       BIGINT NOT NULL,
    still_rejected  BIGINT NOT NULL,
    run_id          VARCHAR
);

-- The catalog as users configured it, for SQL users (rebuilt from catalog/ at every run).
CREATE TABLE IF NOT EXISTS billing.meters (
    meter_key VARCHAR PRIMARY KEY, event_name VARCHAR NOT NULL, aggregation VARCHAR NOT NULL,
    value_property VARCHAR, unique_property VARCHAR, filters JSON NOT NULL, source_file VARCHAR
);
CREATE TABLE IF NOT EXISTS billing.plans (
    plan_key VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, currency VARCHAR NOT NULL,
    billing_period VARCHAR NOT NULL, minimum_commitment DECIMAL(38, 12), source_file VARCHAR
);
CREATE TABLE IF NOT EXISTS billing.prices (
    plan_key VARCHAR NOT NULL, price_key VARCHAR NOT NULL, price_type VARCHAR NOT NULL,
    meter_key VARCHAR, cadence VARCHAR, amount DECIMAL(38, 12), unit_price DECIMAL(38, 12),
    included_units DECIMAL(38, 12), package_size DECIMAL(38, 12), package_price DECIMAL(38, 12),
    tier_mode VARCHAR, tiers JSON, description VARCHAR, PRIMARY KEY (plan_key, price_key)
);
CREATE TABLE IF NOT EXISTS billing.customers (
    customer_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR,
    billing_profile VARCHAR, metadata JSON NOT NULL, source_file VARCHAR
);
CREATE TABLE IF NOT EXISTS billing.subscriptions (
    subscription_id VARCHAR PRIMARY KEY, customer_id VARCHAR NOT NULL, plan_key VARCHAR NOT NULL,
    start_date DATE NOT NULL, end_date DATE, billing_anchor INTEGER NOT NULL,
    collection_method VARCHAR NOT NULL, days_until_due INTEGER, discounts JSON NOT NULL,
    source_file VARCHAR
);
CREATE TABLE IF NOT EXISTS billing.billing_profiles (
    profile_key VARCHAR PRIMARY KEY, app VARCHAR NOT NULL, is_default BOOLEAN NOT NULL,
    grace_period_seconds BIGINT NOT NULL, draft_sync_hook BOOLEAN NOT NULL,
    issuing_sync_hook BOOLEAN NOT NULL, source_file VARCHAR
);

-- Usage per subscription × meter × service period, as rated (one row per billed meter and
-- closed period, zero usage included), kept per billing month for finance to explain lines.
CREATE TABLE IF NOT EXISTS billing.usage_quantities (
    billing_month   VARCHAR NOT NULL,    -- YYYY-MM of the invoice boundary closing the period
    subscription_id VARCHAR NOT NULL,
    customer_id     VARCHAR NOT NULL,
    meter_key       VARCHAR NOT NULL,
    period_start    DATE NOT NULL,
    period_end      DATE NOT NULL,
    quantity        DECIMAL(38, 12) NOT NULL,
    events_counted  BIGINT NOT NULL,
    rated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (subscription_id, meter_key, period_start)
);

CREATE TABLE IF NOT EXISTS billing.invoices (
    invoice_id        VARCHAR PRIMARY KEY,  -- inv_ + sha256(subscription|boundary): same on re-runs
    invoice_number    VARCHAR,              -- INV-YYYYMM-NNNNN, given at issue (gap-free per month)
    customer_id       VARCHAR NOT NULL,
    subscription_id   VARCHAR NOT NULL,
    plan_key          VARCHAR NOT NULL,
    billing_month     VARCHAR NOT NULL,     -- YYYY-MM (UTC) of the boundary: the partition
    boundary          DATE NOT NULL,
    period_start      DATE NOT NULL,
    period_end        DATE NOT NULL,
    currency          VARCHAR NOT NULL,
    subtotal          DECIMAL(38, 12) NOT NULL,
    discount_total    DECIMAL(38, 12) NOT NULL,
    total             DECIMAL(38, 12) NOT NULL,
    status            VARCHAR NOT NULL,
    collection_method VARCHAR NOT NULL,
    due_date          DATE NOT NULL,
    billing_profile   VARCHAR NOT NULL,
    app               VARCHAR NOT NULL,     -- stripe | custom_invoicing | none
    issue_after       TIMESTAMPTZ NOT NULL, -- boundary + the profile's grace period
    issued_at         TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    rated_at          TIMESTAMPTZ NOT NULL   -- one invoice per (subscription, boundary): its id
);

CREATE TABLE IF NOT EXISTS billing.invoice_lines (
    line_id       VARCHAR PRIMARY KEY,
    invoice_id    VARCHAR NOT NULL,
    line_type     VARCHAR NOT NULL,         -- usage | flat | minimum_commitment | discount | adjustment
    price_key     VARCHAR NOT NULL,
    meter_key     VARCHAR,
    description   VARCHAR NOT NULL,
    quantity      DECIMAL(38, 12),
    unit_price    DECIMAL(38, 12),
    amount        DECIMAL(38, 12) NOT NULL, -- rounded once to the currency's minor units
    period_start  DATE NOT NULL,
    period_end    DATE NOT NULL,
    tiers         JSON,                     -- per-tier units, unit price, flat fee and amount
    position      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS billing.invoice_status_history (
    invoice_id  VARCHAR NOT NULL,
    from_status VARCHAR,
    to_status   VARCHAR NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL,   -- v1 called it "at" (renamed on connect, warehouse.py)
    cause       VARCHAR NOT NULL,
    actor       VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS billing.invoice_number_sequences (
    billing_month VARCHAR PRIMARY KEY,
    last_number   BIGINT NOT NULL
);

-- A re-run whose result differs from an issued invoice: the issued invoice never changes; the
-- difference waits here to become an adjustment document.
CREATE TABLE IF NOT EXISTS billing.invoice_differences (
    invoice_id     VARCHAR NOT NULL,
    line_id        VARCHAR,                 -- NULL for the invoice total
    item           VARCHAR NOT NULL,        -- total | line amount | line added | line removed
    issued_amount  DECIMAL(38, 12),
    rerated_amount DECIMAL(38, 12),
    first_seen     TIMESTAMPTZ NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL,
    run_id         VARCHAR
);

-- Provider-side facts about an invoice, filled in by the Stripe sync and the custom invoicing
-- callbacks.
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS status_changed_at TIMESTAMPTZ;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS external_invoice_number VARCHAR;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS hosted_invoice_url VARCHAR;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS sent_to_customer_at TIMESTAMPTZ;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS sync_error VARCHAR;
-- Tax (contract section 10, docs/tax.md): the rate the customer's address calls for, on the
-- invoice and on each line, and each line's tax (rounded once, half away from zero). `total`
-- keeps its meaning (sum of the lines: after discounts, before an exclusive tax);
-- total_including_tax = total + the exclusive tax: what the customer owes. A warehouse written
-- before gets the columns here; its invoices then have no rate and a tax of 0
-- (pipelines/invoicing/document_tax.py).
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_rate_key VARCHAR;      -- NULL: no tax
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_rate_percent DECIMAL(38, 12);
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_inclusive BOOLEAN;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_country VARCHAR;       -- jurisdiction
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_region VARCHAR;
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_note VARCHAR;  -- reverse charge, no address
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS tax_total DECIMAL(38, 12);
ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS total_including_tax DECIMAL(38, 12);
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS tax_rate_key VARCHAR;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS tax_rate_percent DECIMAL(38, 12);
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS tax_inclusive BOOLEAN;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS tax_amount DECIMAL(38, 12);
-- the longest wait in a syncing state before an alert (catalog: billing_profiles[].sync_sla)
ALTER TABLE billing.billing_profiles ADD COLUMN IF NOT EXISTS sync_sla_seconds BIGINT;
-- customers and subscriptions put through the integration API (source_file 'api store'): the
-- version the run used, when and by which API token it was put; NULL for the YAML and tables
ALTER TABLE billing.customers ADD COLUMN IF NOT EXISTS source_version INTEGER;
ALTER TABLE billing.customers ADD COLUMN IF NOT EXISTS changed_at TIMESTAMPTZ;
ALTER TABLE billing.customers ADD COLUMN IF NOT EXISTS changed_by VARCHAR;
ALTER TABLE billing.subscriptions ADD COLUMN IF NOT EXISTS source_version INTEGER;
ALTER TABLE billing.subscriptions ADD COLUMN IF NOT EXISTS changed_at TIMESTAMPTZ;
ALTER TABLE billing.subscriptions ADD COLUMN IF NOT EXISTS changed_by VARCHAR;

-- Sync with payment providers and invoicing integrations (contract section 7).
-- Our object -> the provider's object (customer, invoice, line, discount, payment).
CREATE TABLE IF NOT EXISTS sync.external_ids (
    provider     VARCHAR NOT NULL,          -- stripe | custom_invoicing
    object_type  VARCHAR NOT NULL,          -- customer | invoice | line | discount | payment
    internal_id  VARCHAR NOT NULL,
    external_id  VARCHAR NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, object_type, internal_id)
);

-- Every external call, whatever its outcome.
CREATE TABLE IF NOT EXISTS sync.sync_attempts (
    provider        VARCHAR NOT NULL,
    operation       VARCHAR NOT NULL,       -- e.g. customers.create, invoices.finalize_invoice
    internal_id     VARCHAR,                -- our object the call is about
    idempotency_key VARCHAR,
    http_status     INTEGER,                -- NULL when no response came back
    outcome         VARCHAR NOT NULL,       -- ok | retried | failed
    latency_ms      DOUBLE NOT NULL,
    error           VARCHAR,
    "at"            TIMESTAMPTZ NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 1,
    request_id      VARCHAR,                -- the provider's request id, when it sent one
    run_id          VARCHAR
);

-- Inbound provider events (polled, or received by webhook through the integration API),
-- one row per provider event id; applied to invoice statuses per contract section 4.
CREATE TABLE IF NOT EXISTS sync.provider_events (
    provider     VARCHAR NOT NULL,
    event_id     VARCHAR NOT NULL,
    event_type   VARCHAR NOT NULL,
    object_id    VARCHAR,                   -- the provider object the event is about
    invoice_id   VARCHAR,                   -- our invoice, when the event names one
    created_at   TIMESTAMPTZ,               -- when the provider says it happened
    received_at  TIMESTAMPTZ NOT NULL,
    received_via VARCHAR NOT NULL,          -- poll | webhook | api
    payload      JSON NOT NULL,
    applied_at   TIMESTAMPTZ,
    outcome      VARCHAR,                   -- applied | already | ignored | recorded | unknown_invoice | not_billing | not_ours
    detail       VARCHAR,
    PRIMARY KEY (provider, event_id)
);

-- Where each incremental read of a provider stopped (e.g. the newest Stripe event seen).
CREATE TABLE IF NOT EXISTS sync.cursors (
    provider   VARCHAR NOT NULL,
    stream     VARCHAR NOT NULL,
    cursor     VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, stream)
);

-- The provider's view of our invoices, latest snapshot per provider invoice (reconciliation).
CREATE TABLE IF NOT EXISTS sync.provider_invoices (
    provider            VARCHAR NOT NULL,
    external_id         VARCHAR NOT NULL,
    invoice_id          VARCHAR,            -- ours, from the provider object's metadata
    external_customer_id VARCHAR,
    number              VARCHAR,
    status              VARCHAR,            -- the provider's own status word
    currency            VARCHAR,
    total               DECIMAL(38, 12),    -- in major units
    amount_paid         DECIMAL(38, 12),
    amount_remaining    DECIMAL(38, 12),
    amount_refunded     DECIMAL(38, 12),
    line_count          INTEGER,
    lines               JSON,               -- [{external_id, line_id, amount}]
    snapshot_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, external_id)
);

-- Open alerts (contract section 7); closed ones move to health.alert_history.
CREATE TABLE IF NOT EXISTS health.alerts (
    alert_key  VARCHAR PRIMARY KEY,         -- stable per condition, e.g. sync_failed:stripe:inv_...
    severity   VARCHAR NOT NULL,            -- info | warning | critical
    subject    VARCHAR NOT NULL,
    detail     VARCHAR NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    source     VARCHAR NOT NULL             -- the code that raised it: stripe_sync, custom_invoicing...
);
CREATE TABLE IF NOT EXISTS health.alert_history (
    alert_key  VARCHAR NOT NULL,
    severity   VARCHAR NOT NULL,
    subject    VARCHAR NOT NULL,
    detail     VARCHAR NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL,
    closed_at  TIMESTAMPTZ NOT NULL,
    source     VARCHAR NOT NULL
);
