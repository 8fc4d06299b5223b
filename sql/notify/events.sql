-- Invoice events (contract section 6) from billing.invoice_status_history: one per transition
-- that users are told about, with the invoice and its lines frozen into the payload now.
-- Idempotent: message_id = 'msg_' + sha256(invoice_id|to_status|at in epoch microseconds), and
-- transitions whose message is already in notify.events are skipped.
-- Parameters: $now, $run_id. Reads the macros of sql/notify/documents.sql.
-- Leaves temp table `notify_new_events` for sql/notify/events_insert.sql and deliveries.sql.

CREATE OR REPLACE TEMP TABLE notify_new_events AS
WITH typed AS (
    SELECT h.invoice_id, h.from_status, h.to_status, h.changed_at, h.cause, h.actor,
           i.customer_id,
           CASE
               WHEN h.to_status = 'draft' AND h.from_status IS NULL THEN 'invoice.created'
               WHEN h.to_status = 'draft.syncing' THEN 'invoice.draft_sync_requested'
               -- Stripe's issuing.syncing is internal: only custom invoicing asks an integration
               WHEN h.to_status = 'issuing.syncing' AND i.app = 'custom_invoicing'
                   THEN 'invoice.issuing_sync_requested'
               WHEN h.to_status = 'issued' THEN 'invoice.issued'
               WHEN h.to_status = 'paid' THEN 'invoice.paid'
               WHEN h.to_status = 'payment_processing.failed' THEN 'invoice.payment_failed'
               WHEN h.to_status = 'payment_processing.action_required'
                   THEN 'invoice.payment_action_required'
               WHEN h.to_status = 'overdue' THEN 'invoice.overdue'
               WHEN h.to_status = 'voided' THEN 'invoice.voided'
               WHEN h.to_status = 'uncollectible' THEN 'invoice.marked_uncollectible'
               WHEN h.to_status IN ('refunded', 'partially_refunded') THEN 'invoice.refunded'
               WHEN h.to_status LIKE '%.sync_failed' THEN 'sync.failed'
           END AS event_type,
           'msg_' || left(sha256(h.invoice_id || '|' || h.to_status || '|'
                                 || CAST(epoch_us(h.changed_at) AS VARCHAR)), 32) AS message_id
    FROM billing.invoice_status_history h
    JOIN billing.invoices i USING (invoice_id)
),
fresh AS (
    SELECT * FROM typed
    WHERE event_type IS NOT NULL
      AND message_id NOT IN (SELECT message_id FROM notify.events)
    QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY from_status NULLS FIRST) = 1
),
data AS (
    SELECT f.*,
           json_object('document_type', 'invoice',
                       'invoice', notify_invoice(f.invoice_id, f.to_status),
                       'transition', json_object('from_status', f.from_status,
                                                 'to_status', f.to_status,
                                                 'at', notify_instant(f.changed_at),
                                                 'cause', f.cause, 'actor', f.actor)) AS common
    FROM fresh f
)
SELECT message_id, event_type, invoice_id, CAST(NULL AS VARCHAR) AS credit_note_id, customer_id,
       from_status, to_status, changed_at AS occurred_at,
       CAST(json_object(
           'type', event_type,
           'timestamp', notify_instant(changed_at),
           'data', CASE WHEN event_type = 'invoice.refunded'
               THEN json_merge_patch(common, json_object('refund', json_object(
                   'kind', CASE WHEN to_status = 'refunded' THEN 'full' ELSE 'partial' END)))
               ELSE common END)
           AS VARCHAR) AS payload
FROM data;
