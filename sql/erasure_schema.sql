-- Erasure on request (contract section 11, GDPR art. 17). Idempotent: run at every connect.

-- One row per erasure pass that changed something (the first one always): who, when, why, the
-- pseudonym and its salt (the first pass draws the salt; later passes reuse it), and the rows
-- changed per table.column in the warehouse and the API store. Append-only: nothing updates
-- or deletes a row of it.
CREATE TABLE IF NOT EXISTS billing.erasures (
    erasure_id   VARCHAR PRIMARY KEY,       -- era_<customer>_<pass>
    customer_id  VARCHAR NOT NULL,
    pass         INTEGER NOT NULL,          -- 1 for the first erasure, 2.. for re-runs
    erased_at    TIMESTAMPTZ NOT NULL,      -- the command's "now"
    actor        VARCHAR NOT NULL,          -- cli:<login name> or --actor
    reason       VARCHAR NOT NULL,
    pseudonym    VARCHAR NOT NULL,
    salt         VARCHAR NOT NULL,
    changes      JSON NOT NULL,             -- {"warehouse": {"schema.table.column": rows}, "api_store": {...}}
    recorded_at  TIMESTAMPTZ NOT NULL       -- wall clock
);

-- What each provider app was asked to do with its copy, and where that stands.
CREATE TABLE IF NOT EXISTS billing.erasure_requests (
    customer_id  VARCHAR NOT NULL,
    provider     VARCHAR NOT NULL,          -- stripe | custom_invoicing
    external_id  VARCHAR,                   -- Stripe's customer id; the notification's message id
    action       VARCHAR NOT NULL,          -- what is asked: anonymise (Stripe), notify (customer.erased)
    status       VARCHAR NOT NULL,          -- pending | done | failed
    requested_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    attempts     INTEGER NOT NULL DEFAULT 0,
    detail       VARCHAR,
    PRIMARY KEY (customer_id, provider)
);

-- The catalog's personal_properties: event properties whose values an erasure pseudonymises
-- (rebuilt with the other catalog tables; ingestion reads it for erased customers' new events).
CREATE TABLE IF NOT EXISTS billing.personal_properties (
    property_path VARCHAR PRIMARY KEY,
    source_file   VARCHAR
);
