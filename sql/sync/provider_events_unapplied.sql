-- A provider's events not applied yet, in the order the provider says they happened.
SELECT event_id, event_type, invoice_id, CAST(payload AS VARCHAR) AS payload
FROM sync.provider_events
WHERE provider = $provider AND applied_at IS NULL
ORDER BY created_at NULLS LAST, received_at, event_id
