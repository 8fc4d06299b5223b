-- Store received provider events (temp frame provider_events_frame), once per event id.
INSERT INTO sync.provider_events
    (provider, event_id, event_type, object_id, invoice_id, created_at, received_at,
     received_via, payload)
SELECT provider, event_id, event_type, object_id, invoice_id, created_at, received_at,
       received_via, CAST(payload AS JSON)
FROM provider_events_frame
ON CONFLICT (provider, event_id) DO NOTHING
