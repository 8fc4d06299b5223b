-- Draft adjustments (contract section 9). Idempotent: run at every connect.
-- Amounts added by hand to an invoice while it is draft or draft.syncing, by an operator
-- (billing invoice adjust) or a custom invoicing integration (PATCH .../invoices/{id}), and kept
-- by every re-rating of it (pipelines/invoicing/adjustments.py). One row per adjustment, never
-- deleted: a removed one keeps who removed it and when. line_id is the id of its line on the
-- invoice (line_type 'adjustment').
CREATE TABLE IF NOT EXISTS billing.invoice_adjustments (
    line_id      VARCHAR PRIMARY KEY,
    invoice_id   VARCHAR NOT NULL,
    request_key  VARCHAR NOT NULL,          -- what the id derives from: the API call, or the CLI's content
    description  VARCHAR NOT NULL,
    quantity     DECIMAL(38, 12),           -- with unit_price when asked as quantity x unit price
    unit_price   DECIMAL(38, 12),
    amount       DECIMAL(38, 12) NOT NULL,  -- as asked, rounded once (negative: a credit)
    position     INTEGER NOT NULL,          -- order among the invoice's adjustments
    source       VARCHAR NOT NULL,          -- cli | api
    added_by     VARCHAR NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL,
    removed_by   VARCHAR,
    removed_at   TIMESTAMPTZ
);
