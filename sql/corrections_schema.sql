-- Corrections of invoices (contract section 9). Idempotent: run at every connect.
-- An issued invoice never changes; what changes after it is corrected by documents that point at
-- it: credit notes (decreases) and supplementary invoices (increases, ordinary invoices with
-- corrects_invoice_id). Each line of a document references the line it corrects.

ALTER TABLE billing.invoices ADD COLUMN IF NOT EXISTS corrects_invoice_id VARCHAR;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS corrects_line_id VARCHAR;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS corrects_invoice_id VARCHAR;
ALTER TABLE billing.invoice_lines ADD COLUMN IF NOT EXISTS correction_id VARCHAR;

-- The billing profile's correction settings (catalog: billing_profiles[]).
ALTER TABLE billing.billing_profiles ADD COLUMN IF NOT EXISTS corrections VARCHAR;
ALTER TABLE billing.billing_profiles
    ADD COLUMN IF NOT EXISTS auto_approve_corrections_up_to DECIMAL(38, 12);
ALTER TABLE billing.billing_profiles ADD COLUMN IF NOT EXISTS credit_note_refunds BOOLEAN;

-- One row per detected delta of one line of an issued invoice: rated - (issued + corrections
-- not rejected). correction_id is derived from the invoice, the line, how many corrections the
-- line already had and both amounts, so re-running the same rating proposes nothing twice.
CREATE TABLE IF NOT EXISTS billing.corrections (
    correction_id   VARCHAR PRIMARY KEY,
    invoice_id      VARCHAR NOT NULL,          -- the corrected (issued) invoice
    line_id         VARCHAR NOT NULL,          -- the corrected line (or the line a later rating added)
    customer_id     VARCHAR NOT NULL,
    billing_month   VARCHAR NOT NULL,
    currency        VARCHAR NOT NULL,
    description     VARCHAR NOT NULL,
    issued_amount   DECIMAL(38, 12) NOT NULL,  -- on the issued invoice (0 for an added line)
    covered_amount  DECIMAL(38, 12) NOT NULL,  -- issued + corrections before this one
    rated_amount    DECIMAL(38, 12) NOT NULL,  -- the latest rating
    delta           DECIMAL(38, 12) NOT NULL,  -- rated - covered, never 0
    revision        INTEGER NOT NULL,          -- corrections of the line before this one
    document_type   VARCHAR NOT NULL,          -- credit_note | supplementary_invoice | next_invoice
    document_id     VARCHAR,                   -- set once the delta is on a document
    status          VARCHAR NOT NULL,          -- pending_approval | approved | rejected
    reason          VARCHAR,                   -- why it was rejected
    decided_by      VARCHAR,                   -- who approved or rejected (auto_approve: the rule)
    decided_at      TIMESTAMPTZ,
    detected_at     TIMESTAMPTZ NOT NULL,
    run_id          VARCHAR
);

-- Every decision on a correction, with its actor (approval, rejection, automatic approval).
CREATE TABLE IF NOT EXISTS billing.correction_history (
    correction_id VARCHAR NOT NULL,
    from_status   VARCHAR,
    to_status     VARCHAR NOT NULL,
    changed_at    TIMESTAMPTZ NOT NULL,
    actor         VARCHAR NOT NULL,
    reason        VARCHAR
);

-- Credit notes: a credit against an issued invoice. total is the amount credited (positive);
-- lines carry the negative delta of the line they correct.
CREATE TABLE IF NOT EXISTS billing.credit_notes (
    credit_note_id     VARCHAR PRIMARY KEY,
    credit_note_number VARCHAR,                -- CN-YYYYMM-NNNNN, gap-free per month, at issue
    invoice_id         VARCHAR NOT NULL,
    customer_id        VARCHAR NOT NULL,
    billing_month      VARCHAR NOT NULL,       -- the corrected invoice's billing month
    currency           VARCHAR NOT NULL,
    total              DECIMAL(38, 12) NOT NULL,
    status             VARCHAR NOT NULL,       -- draft | issued | voided (custom_invoicing:
                                               -- also draft.syncing, issuing, issuing.syncing)
    reason             VARCHAR NOT NULL,       -- correction | goodwill text given by a person
    kind               VARCHAR NOT NULL,       -- correction | manual
    billing_profile    VARCHAR NOT NULL,
    app                VARCHAR NOT NULL,
    issue_after        TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    created_by         VARCHAR NOT NULL,
    issued_at          TIMESTAMPTZ,
    status_changed_at  TIMESTAMPTZ
);

CREATE TABLE IF NOT EXISTS billing.credit_note_lines (
    credit_note_line_id VARCHAR PRIMARY KEY,
    credit_note_id      VARCHAR NOT NULL,
    corrects_line_id    VARCHAR,               -- NULL for a manual credit of the whole invoice
    correction_id       VARCHAR,
    amount              DECIMAL(38, 12) NOT NULL,  -- negative
    description         VARCHAR NOT NULL,
    position            INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS billing.credit_note_status_history (
    credit_note_id VARCHAR NOT NULL,
    from_status    VARCHAR,
    to_status      VARCHAR NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL,
    cause          VARCHAR NOT NULL,
    actor          VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS billing.credit_note_number_sequences (
    billing_month VARCHAR PRIMARY KEY,
    last_number   BIGINT NOT NULL
);

-- Tax of credit notes (docs/tax.md): each line the tax of its (negative) amount at the rate of
-- the credited invoice; tax_total and total_including_tax positive like total.
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS tax_total DECIMAL(38, 12);
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS total_including_tax DECIMAL(38, 12);
ALTER TABLE billing.credit_note_lines ADD COLUMN IF NOT EXISTS tax_rate_key VARCHAR;
ALTER TABLE billing.credit_note_lines ADD COLUMN IF NOT EXISTS tax_rate_percent DECIMAL(38, 12);
ALTER TABLE billing.credit_note_lines ADD COLUMN IF NOT EXISTS tax_inclusive BOOLEAN;
ALTER TABLE billing.credit_note_lines ADD COLUMN IF NOT EXISTS tax_amount DECIMAL(38, 12);

-- What the corrected line is, so a document made later (after an approval) needs no rating.
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS subscription_id VARCHAR;
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS line_type VARCHAR;
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS price_key VARCHAR;
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS meter_key VARCHAR;
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS period_start DATE;
ALTER TABLE billing.corrections ADD COLUMN IF NOT EXISTS period_end DATE;

-- The latest rating of every line of an invoice past draft (one row per line, replaced at each
-- re-run), so that "issued + corrections = latest rating" can be checked at any time.
CREATE TABLE IF NOT EXISTS billing.issued_line_ratings (
    invoice_id    VARCHAR NOT NULL,
    line_id       VARCHAR NOT NULL,
    rated_amount  DECIMAL(38, 12) NOT NULL,   -- 0 when the rating no longer produces the line
    rated_at      TIMESTAMPTZ NOT NULL,
    run_id        VARCHAR,
    PRIMARY KEY (invoice_id, line_id)
);

-- Credit notes as each provider holds them (Stripe's credit notes, the custom invoicing
-- integration's statement), refreshed by the sync and the inbox, for reconciliation.
CREATE TABLE IF NOT EXISTS sync.provider_credit_notes (
    provider            VARCHAR NOT NULL,       -- stripe | custom_invoicing
    external_id         VARCHAR NOT NULL,
    credit_note_id      VARCHAR,                -- ours, from the provider object's metadata
    external_invoice_id VARCHAR,
    invoice_id          VARCHAR,                -- ours: the credited invoice, if known
    number              VARCHAR,
    status              VARCHAR,                -- the provider's own status word
    currency            VARCHAR,
    total               DECIMAL(38, 12),        -- in major units, positive
    line_count          INTEGER,
    lines               JSON,                   -- [{external_id, credit_note_line_id, amount}]
    snapshot_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, external_id)
);

-- A customer's credit balance (corrections: next_invoice): credits larger than the invoice they
-- went on carry over and are used up by the following invoices. One row per movement.
CREATE TABLE IF NOT EXISTS billing.customer_credit_movements (
    movement_id  VARCHAR PRIMARY KEY,
    customer_id  VARCHAR NOT NULL,
    currency     VARCHAR NOT NULL,
    amount       DECIMAL(38, 12) NOT NULL,      -- + credit granted, - credit used
    invoice_id   VARCHAR,                       -- the invoice that granted or used it
    correction_id VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL,
    description  VARCHAR NOT NULL
);

-- Custom invoicing credit notes go through the integration's hooks like invoices (statuses
-- draft.syncing, issuing, issuing.syncing before issued): when the integration sent it.
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS sent_to_customer_at TIMESTAMPTZ;

-- Stripe credit notes (app stripe, pipelines/providers/stripe_sync): Stripe's own number beside
-- ours, when the sync first called Stripe for the note (a later run then looks at Stripe before
-- creating anything) and why its last sync failed (retried by the next run).
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS external_credit_note_number VARCHAR;
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS sync_started_at TIMESTAMPTZ;
ALTER TABLE billing.credit_notes ADD COLUMN IF NOT EXISTS sync_error VARCHAR;

-- Each customer's credit balance per currency, as finance reads it (corrections: next_invoice,
-- pipelines/invoicing/next_invoice.py). Movements are netted per invoice first, so a voided
-- invoice (whose movements are reversed) counts for nothing. granted / used / balance count
-- invoices past draft; a draft's movements are provisional until it is issued: what drafts are
-- about to use and to carry over is shown beside, and `available` is what a further draft can
-- still use (the balance less what drafts already use).
CREATE OR REPLACE VIEW billing.customer_credit_balances AS
WITH per_invoice AS (
    SELECT m.customer_id, m.currency, coalesce(m.invoice_id, m.movement_id) AS source,
           coalesce(any_value(i.status) = 'draft', false) AS on_draft,
           sum(m.amount) AS amount, count(*) AS movements, max(m.created_at) AS last_at
    FROM billing.customer_credit_movements m
    LEFT JOIN billing.invoices i ON i.invoice_id = m.invoice_id
    GROUP BY m.customer_id, m.currency, coalesce(m.invoice_id, m.movement_id)
)
SELECT
    customer_id,
    currency,
    coalesce(sum(amount) FILTER (WHERE NOT on_draft AND amount > 0), 0)::DECIMAL(38, 12)
        AS granted,
    coalesce(-sum(amount) FILTER (WHERE NOT on_draft AND amount < 0), 0)::DECIMAL(38, 12)
        AS used,
    coalesce(sum(amount) FILTER (WHERE NOT on_draft), 0)::DECIMAL(38, 12) AS balance,
    coalesce(-sum(amount) FILTER (WHERE on_draft AND amount < 0), 0)::DECIMAL(38, 12)
        AS used_by_drafts,
    coalesce(sum(amount) FILTER (WHERE on_draft AND amount > 0), 0)::DECIMAL(38, 12)
        AS carried_over_by_drafts,
    coalesce(sum(amount) FILTER (WHERE NOT on_draft OR amount < 0), 0)::DECIMAL(38, 12)
        AS available,
    sum(movements) AS movements,
    max(last_at) AS last_movement_at
FROM per_invoice
GROUP BY customer_id, currency;

-- What each correction stands for now: the one definition of which corrections count, read by
-- sql/billing/correction_line_accounts.sql (the next deltas), sql/billing/correction_coverage.sql
-- (the blocking check) and sql/finance/usage_billing_state.sql (usage billed by corrections).
--   document_voided  its credit note or supplementary invoice was voided (`billing invoice void`,
--                    a credit note voided at Stripe, ...): it bills or credits nothing any more.
--                    Such a correction is withdrawn (sql/billing/void_withdraws_corrections.sql)
--   covers           it counts in what the line is covered by (issued + these = what the customer
--                    is, or is about to be, billed): waiting for approval or approved, and not on
--                    a voided document. A next_invoice correction whose carrying invoice was
--                    voided still covers: it goes back to wait for the next draft
--                    (sql/billing/next_invoice_corrections.sql)
--   declined         rejected by a decision on its delta (a person, or the void of the invoice it
--                    corrects): not proposed again at the same covered and rated amounts. One
--                    withdrawn because its document was voided is not declined: the next re-run
--                    proposes the difference again
CREATE OR REPLACE VIEW billing.correction_standing AS
SELECT *,
       status <> 'rejected' AND NOT document_voided AS covers,
       status = 'rejected' AND NOT document_voided AS declined
FROM (
    SELECT c.*,
           coalesce(n.status = 'voided' OR s.status = 'voided', false) AS document_voided
    FROM billing.corrections c
    LEFT JOIN billing.credit_notes n
      ON c.document_type = 'credit_note' AND n.credit_note_id = c.document_id
    LEFT JOIN billing.invoices s
      ON c.document_type = 'supplementary_invoice' AND s.invoice_id = c.document_id
);

-- What remains creditable on each invoice: its total less its credit notes not voided (drafts
-- included, correction and manual alike) and less the credits its corrections put on a next
-- invoice not voided (policy next_invoice); never below zero. The one limit of a manual credit
-- note (pipelines/invoicing/manual_documents.py) and of a correction credit note, whose credit
-- beyond it goes to the customer's credit balance (pipelines/invoicing/corrections.py).
-- `remaining_including_tax` is the same in totals including tax (docs/tax.md): the invoice's
-- total_including_tax less its credit notes' total_including_tax and the next-invoice credits
-- with the exclusive tax their correction lines carry (none until those lines are written). A
-- manual credit note is also held to it, so credits rounded one by one never credit more tax
-- than the invoice charged.
CREATE OR REPLACE VIEW billing.remaining_creditable AS
SELECT i.invoice_id, i.currency, i.total,
       coalesce(n.credited, 0)::DECIMAL(38, 12) AS credited_by_credit_notes,
       coalesce(x.credited, 0)::DECIMAL(38, 12) AS credited_on_next_invoices,
       greatest(i.total - coalesce(n.credited, 0) - coalesce(x.credited, 0), 0)
           ::DECIMAL(38, 12) AS remaining,
       greatest(coalesce(i.total_including_tax, i.total) - coalesce(n.credited_including_tax, 0)
                - coalesce(x.credited, 0) - coalesce(t.credited_tax, 0), 0)
           ::DECIMAL(38, 12) AS remaining_including_tax
FROM billing.invoices i
LEFT JOIN (
    SELECT invoice_id, sum(total) AS credited,
           sum(coalesce(total_including_tax, total)) AS credited_including_tax
    FROM billing.credit_notes WHERE status <> 'voided' GROUP BY invoice_id
) n USING (invoice_id)
LEFT JOIN (
    -- the exclusive tax of the credits correction lines put on a next invoice not voided
    SELECT l.corrects_invoice_id AS invoice_id, -sum(l.tax_amount) AS credited_tax
    FROM billing.invoice_lines l JOIN billing.invoices d ON d.invoice_id = l.invoice_id
    WHERE l.line_type = 'correction' AND l.amount < 0 AND NOT coalesce(l.tax_inclusive, false)
      AND l.tax_amount IS NOT NULL AND d.status <> 'voided'
      AND d.invoice_id <> l.corrects_invoice_id
      AND d.corrects_invoice_id IS DISTINCT FROM l.corrects_invoice_id
    GROUP BY l.corrects_invoice_id
) t USING (invoice_id)
LEFT JOIN (
    SELECT c.invoice_id, -sum(c.delta) AS credited
    FROM billing.corrections c JOIN billing.invoices d ON d.invoice_id = c.document_id
    WHERE c.document_type = 'next_invoice' AND c.status = 'approved' AND c.delta < 0
      AND d.status <> 'voided'
    GROUP BY c.invoice_id
) x USING (invoice_id);
