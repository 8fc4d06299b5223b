-- invoice.corrected (contract section 9): one event for the corrected invoice each time a
-- document correcting it is issued: one of its credit notes, or an invoice with lines correcting
-- it (a supplementary invoice, or a next invoice carrying `correction` lines). The payload
-- carries the corrected invoice (as it is now), the document just issued, every correcting
-- document issued by then (with their lines, each naming the line it corrects) and what the
-- invoice comes to with them. Routed by the invoice's customer. Idempotent: message_id = 'msg_' +
-- sha256('invoice.corrected'|invoice id|document id), skipped when already in notify.events.
-- Parameters: $now, $run_id. Reads the macros of sql/notify/documents.sql.
-- Leaves temp table `notify_new_events` for sql/notify/events_insert.sql and deliveries.sql.

CREATE OR REPLACE TEMP TABLE notify_new_events AS
WITH issued_documents AS (
    SELECT n.invoice_id, 'credit_note' AS document_type, n.credit_note_id AS document_id,
           n.credit_note_id, h.changed_at, h.cause, h.actor
    FROM billing.credit_note_status_history h
    JOIN billing.credit_notes n USING (credit_note_id)
    WHERE h.to_status = 'issued'
    UNION ALL
    SELECT DISTINCT l.corrects_invoice_id,
           CASE WHEN d.corrects_invoice_id = l.corrects_invoice_id THEN 'supplementary_invoice'
                ELSE 'invoice' END,
           h.invoice_id, CAST(NULL AS VARCHAR), h.changed_at, h.cause, h.actor
    FROM billing.invoice_status_history h
    JOIN billing.invoices d ON d.invoice_id = h.invoice_id
    JOIN billing.invoice_lines l ON l.invoice_id = h.invoice_id
    WHERE h.to_status = 'issued' AND l.corrects_invoice_id IS NOT NULL
      AND l.corrects_invoice_id <> h.invoice_id
),
fresh AS (
    SELECT *,
           'msg_' || left(sha256('invoice.corrected|' || invoice_id || '|' || document_id), 32)
               AS message_id
    FROM issued_documents
    WHERE invoice_id IN (SELECT invoice_id FROM billing.invoices)
    QUALIFY row_number() OVER (PARTITION BY invoice_id, document_id ORDER BY changed_at) = 1
)
SELECT f.message_id, 'invoice.corrected' AS event_type, f.invoice_id, f.credit_note_id,
       i.customer_id, CAST(NULL AS VARCHAR) AS from_status, CAST(NULL AS VARCHAR) AS to_status,
       f.changed_at AS occurred_at,
       CAST(json_object(
           'type', 'invoice.corrected',
           'timestamp', notify_instant(f.changed_at),
           'data', json_object(
               'document_type', 'invoice',
               'invoice', notify_invoice(f.invoice_id, i.status),
               'correcting_document', json_object(
                   'document_type', f.document_type, 'id', f.document_id,
                   'issued_at', notify_instant(f.changed_at), 'cause', f.cause,
                   'actor', f.actor),
               'correcting_documents', notify_correcting_documents(f.invoice_id, f.changed_at),
               'corrected_total', notify_corrected_total(f.invoice_id, f.changed_at, false),
               'corrected_total_including_tax',
               notify_corrected_total(f.invoice_id, f.changed_at, true)))
           AS VARCHAR) AS payload
FROM fresh f
JOIN billing.invoices i ON i.invoice_id = f.invoice_id
WHERE f.message_id NOT IN (SELECT message_id FROM notify.events);
