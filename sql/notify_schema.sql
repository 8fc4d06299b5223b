-- Outbound notifications (contract section 6). Idempotent: run at every connect.
CREATE SCHEMA IF NOT EXISTS notify;

-- The catalog's notification channels as configured (rebuilt at every notification run; the
-- secret itself is never stored, only the name of the variable that holds it).
CREATE TABLE IF NOT EXISTS notify.channels (
    channel     VARCHAR PRIMARY KEY,
    url         VARCHAR NOT NULL,
    secret_env  VARCHAR,
    event_types VARCHAR[] NOT NULL,
    customers   VARCHAR[] NOT NULL          -- empty: every customer
);

-- One row per event, its payload frozen when it was enqueued. message_id is the webhook-id,
-- deterministic ('msg_' + hash of invoice_id|to_status|at) so a re-run never makes it twice.
CREATE TABLE IF NOT EXISTS notify.events (
    message_id  VARCHAR PRIMARY KEY,
    event_type  VARCHAR NOT NULL,           -- invoice.created, invoice.paid, sync.failed, ...
    invoice_id  VARCHAR,                    -- NULL for webhook.test
    customer_id VARCHAR,
    from_status VARCHAR,
    to_status   VARCHAR,
    occurred_at TIMESTAMPTZ NOT NULL,       -- the transition's time
    created_at  TIMESTAMPTZ NOT NULL,       -- when it was enqueued
    payload     VARCHAR NOT NULL,           -- the exact JSON body every attempt sends
    run_id      VARCHAR
);
-- credit_note.* events: the credit note (invoice_id is then the credited invoice); for
-- invoice.corrected issued by a credit note, that credit note.
ALTER TABLE notify.events ADD COLUMN IF NOT EXISTS credit_note_id VARCHAR;

-- One row per event x subscribed channel: where its delivery stands.
CREATE TABLE IF NOT EXISTS notify.deliveries (
    message_id      VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,
    status          VARCHAR NOT NULL,       -- pending | delivered | failed | skipped
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ,            -- when pending: the earliest run that sends it
    last_attempt_at TIMESTAMPTZ,
    last_http_status INTEGER,
    last_error      VARCHAR,
    created_at      TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ,
    PRIMARY KEY (message_id, channel)
);
-- The delivery pass sending it now (pipelines/notifications/delivery.py): set when a pass claims
-- it, cleared when the pass records; a claim whose claimed_until (wall clock) has passed lapses.
ALTER TABLE notify.deliveries ADD COLUMN IF NOT EXISTS claimed_by VARCHAR;
ALTER TABLE notify.deliveries ADD COLUMN IF NOT EXISTS claimed_until TIMESTAMPTZ;

-- Every delivery attempt, whatever its outcome.
CREATE TABLE IF NOT EXISTS notify.delivery_attempts (
    message_id      VARCHAR NOT NULL,
    channel         VARCHAR NOT NULL,
    attempt         INTEGER NOT NULL,       -- 1 for the first send; skipped rows count too
    "at"            TIMESTAMPTZ NOT NULL,   -- the run's "now"
    sent_at         TIMESTAMPTZ,            -- the wall clock of the request (webhook-timestamp)
    http_status     INTEGER,                -- NULL when no response came back or nothing was sent
    outcome         VARCHAR NOT NULL,       -- delivered | retrying | failed | disabled | skipped
                                            -- (a deferred attempt: sent_at NULL, error 'deferred, ...')
    latency_ms      DOUBLE,
    error           VARCHAR,                -- at most 200 characters, secrets blanked
    next_attempt_at TIMESTAMPTZ,            -- set when outcome = retrying
    run_id          VARCHAR
);

-- Channels the pipeline stopped sending to (the receiver answered 410 Gone).
CREATE TABLE IF NOT EXISTS notify.channel_state (
    channel     VARCHAR PRIMARY KEY,
    disabled_at TIMESTAMPTZ,                -- NULL: enabled again (`billing notify enable`)
    reason      VARCHAR,
    updated_at  TIMESTAMPTZ NOT NULL
);
