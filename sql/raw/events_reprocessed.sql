-- Append re-processed events that are now valid and neither duplicates nor conflicts; they keep
-- the file and line they first arrived with. Parameter: $ingested_at.
-- Reads temp tables `reprocess_candidates`, `validated_events`, `event_outcomes`.
INSERT INTO raw.events (
    source, event_id, event_name, customer_id, subscription_id, "timestamp", properties,
    file_id, line_number, ingested_at, payload_hash, origin
)
SELECT
    v.source, v.event_id, v.event_name, v.customer_id, v.subscription_id, v."timestamp",
    v.properties, c.file_id, c.line_number, $ingested_at, v.payload_hash, 'reprocessed'
FROM validated_events v
JOIN reprocess_candidates c ON c.rowid + 1 = v.line_number
WHERE v.reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM event_outcomes o WHERE o.line_number = v.line_number)
ORDER BY c.file_id, c.line_number
