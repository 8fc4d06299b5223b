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
    payload_hash    UHUGEINT NOT NULL,   -- md5 of everything but the identity: tells duplicate from conflict
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
    run_id          VARCHAR
);

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
