-- The new events (temp table notify_new_events) into notify.events. Parameters: $now, $run_id.
INSERT INTO notify.events
    (message_id, event_type, invoice_id, credit_note_id, customer_id, from_status, to_status,
     occurred_at, created_at, payload, run_id)
SELECT message_id, event_type, invoice_id, credit_note_id, customer_id, from_status, to_status,
       occurred_at, $now, payload, $run_id
FROM notify_new_events;
