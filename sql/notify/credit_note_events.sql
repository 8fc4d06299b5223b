-- Credit note events (contract section 9) from billing.credit_note_status_history, for credit
-- notes of every app: credit_note.created (a credit note made, still a draft),
-- credit_note.draft_sync_requested / credit_note.issuing_sync_requested (custom invoicing: the
-- integration is asked to take the credit note through its hooks), credit_note.issued,
-- credit_note.voided. The payload carries the credit note with its lines (each naming the line it
-- corrects) and the invoice it credits (as it is now), frozen when enqueued; routed by the
-- credit note's customer. Idempotent: message_id = 'msg_' + sha256('credit_note'|credit note
-- id|to_status|at in epoch microseconds), skipped when already in notify.events.
-- Parameters: $now, $run_id. Reads the macros of sql/notify/documents.sql.
-- Leaves temp table `notify_new_events` for sql/notify/events_insert.sql and deliveries.sql.

CREATE OR REPLACE TEMP TABLE notify_new_events AS
WITH typed AS (
    SELECT h.credit_note_id, n.invoice_id, n.customer_id, h.from_status, h.to_status,
           h.changed_at, h.cause, h.actor,
           CASE
               WHEN h.to_status = 'draft' AND h.from_status IS NULL THEN 'credit_note.created'
               WHEN h.to_status = 'draft.syncing' THEN 'credit_note.draft_sync_requested'
               WHEN h.to_status = 'issuing.syncing' THEN 'credit_note.issuing_sync_requested'
               WHEN h.to_status = 'issued' THEN 'credit_note.issued'
               WHEN h.to_status = 'voided' THEN 'credit_note.voided'
           END AS event_type,
           'msg_' || left(sha256('credit_note|' || h.credit_note_id || '|' || h.to_status || '|'
                                 || CAST(epoch_us(h.changed_at) AS VARCHAR)), 32) AS message_id
    FROM billing.credit_note_status_history h
    JOIN billing.credit_notes n USING (credit_note_id)
),
fresh AS (
    SELECT * FROM typed
    WHERE event_type IS NOT NULL
      AND message_id NOT IN (SELECT message_id FROM notify.events)
    QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY from_status NULLS FIRST) = 1
)
SELECT f.message_id, f.event_type, f.invoice_id, f.credit_note_id, f.customer_id,
       f.from_status, f.to_status, f.changed_at AS occurred_at,
       CAST(json_object(
           'type', f.event_type,
           'timestamp', notify_instant(f.changed_at),
           'data', json_object(
               'document_type', 'credit_note',
               'credit_note', notify_credit_note(f.credit_note_id, f.to_status),
               'invoice', notify_invoice(f.invoice_id, i.status),
               'transition', json_object('from_status', f.from_status,
                                         'to_status', f.to_status,
                                         'at', notify_instant(f.changed_at),
                                         'cause', f.cause, 'actor', f.actor)))
           AS VARCHAR) AS payload
FROM fresh f
JOIN billing.invoices i ON i.invoice_id = f.invoice_id;
