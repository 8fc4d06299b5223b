-- Invoice events (contract section 6) from billing.invoice_status_history: one per transition
-- that users are told about, with the invoice and its lines frozen into the payload now.
-- Idempotent: message_id = 'msg_' + sha256(invoice_id|to_status|at in epoch microseconds), and
-- transitions whose message is already in notify.events are skipped.
-- Parameters: $now, $run_id. Reads temp table `currency_digits` and macro `money_text`
-- (pipelines.warehouse.register_currency_digits).
-- Leaves temp table `notify_new_events` for sql/notify/events_insert.sql and deliveries.sql.

CREATE OR REPLACE TEMP MACRO notify_instant(t) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%fZ');

CREATE OR REPLACE TEMP TABLE notify_new_events AS
WITH typed AS (
    SELECT h.invoice_id, h.from_status, h.to_status, h.changed_at, h.cause, h.actor,
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
external AS (
    SELECT internal_id,
           -- the invoicing system's id of the invoice: the custom integration's, else Stripe's
           min(external_id) FILTER (WHERE object_type = 'invoice'
                                    AND provider = 'custom_invoicing') AS custom_invoice,
           min(external_id) FILTER (WHERE object_type = 'invoice') AS any_invoice,
           min(external_id) FILTER (WHERE object_type = 'payment') AS payment,
           min(external_id) FILTER (WHERE object_type IN ('line', 'discount')) AS line
    FROM sync.external_ids GROUP BY internal_id
),
lines AS (
    SELECT l.invoice_id,
           CAST(list(json_object(
               'line_id', l.line_id, 'line_type', l.line_type, 'price_key', l.price_key,
               'meter_key', l.meter_key, 'description', l.description,
               'quantity', decimal_text(l.quantity), 'unit_price', decimal_text(l.unit_price),
               'amount', money_text(l.amount, d.digits),
               'period', json_object('start', CAST(l.period_start AS VARCHAR),
                                     'end', CAST(l.period_end AS VARCHAR)),
               'external_id', x.line) ORDER BY l.position) AS JSON) AS lines
    FROM billing.invoice_lines l
    JOIN billing.invoices i USING (invoice_id)
    JOIN currency_digits d USING (currency)
    LEFT JOIN external x ON x.internal_id = l.line_id
    WHERE l.invoice_id IN (SELECT invoice_id FROM fresh)
    GROUP BY l.invoice_id
),
invoice_json AS (
    SELECT f.message_id, i.customer_id, json_object(
               'invoice_id', i.invoice_id,
               'number', i.invoice_number,
               'status', f.to_status,
               'customer', json_object('id', i.customer_id, 'name', c.name, 'email', c.email),
               'subscription_id', i.subscription_id,
               'plan_key', i.plan_key,
               'billing_month', i.billing_month,
               'period', json_object('start', CAST(i.period_start AS VARCHAR),
                                     'end', CAST(i.period_end AS VARCHAR)),
               'currency', i.currency,
               'subtotal', money_text(i.subtotal, d.digits),
               'discount_total', money_text(i.discount_total, d.digits),
               'total', money_text(i.total, d.digits),
               'collection_method', i.collection_method,
               'due_date', CAST(i.due_date AS VARCHAR),
               'billing_profile', i.billing_profile,
               'app', i.app,
               'issued_at', notify_instant(i.issued_at),
               'sent_to_customer_at', notify_instant(i.sent_to_customer_at),
               'hosted_invoice_url', i.hosted_invoice_url,
               'external_ids', json_object('invoicing', coalesce(x.custom_invoice, x.any_invoice),
                                           'payment', x.payment),
               'lines', coalesce(l.lines, CAST('[]' AS JSON))) AS invoice
    FROM fresh f
    JOIN billing.invoices i USING (invoice_id)
    JOIN currency_digits d USING (currency)
    LEFT JOIN billing.customers c USING (customer_id)
    LEFT JOIN external x ON x.internal_id = i.invoice_id
    LEFT JOIN lines l ON l.invoice_id = i.invoice_id
)
SELECT f.message_id, f.event_type, f.invoice_id, j.customer_id, f.from_status, f.to_status,
       f.changed_at AS occurred_at,
       CAST(json_object(
           'type', f.event_type,
           'timestamp', notify_instant(f.changed_at),
           'data', CASE WHEN f.event_type = 'invoice.refunded'
               THEN json_object(
                   'invoice', j.invoice,
                   'transition', json_object('from_status', f.from_status,
                                             'to_status', f.to_status,
                                             'at', notify_instant(f.changed_at),
                                             'cause', f.cause, 'actor', f.actor),
                   'refund', json_object('kind', CASE WHEN f.to_status = 'refunded'
                                                      THEN 'full' ELSE 'partial' END))
               ELSE json_object(
                   'invoice', j.invoice,
                   'transition', json_object('from_status', f.from_status,
                                             'to_status', f.to_status,
                                             'at', notify_instant(f.changed_at),
                                             'cause', f.cause, 'actor', f.actor)) END)
           AS VARCHAR) AS payload
FROM fresh f JOIN invoice_json j USING (message_id);
