-- Append the file's accepted events: valid, and neither a duplicate nor a conflict.
-- Parameters: $file_id, $ingested_at. Reads temp tables `validated_events`, `event_outcomes`.
INSERT INTO raw.events (
    source, event_id, event_name, customer_id, subscription_id, "timestamp", properties,
    file_id, line_number, ingested_at, payload_hash
)
SELECT
    v.source, v.event_id, v.event_name, v.customer_id, v.subscription_id, v."timestamp",
    v.properties, $file_id, v.line_number, $ingested_at, v.payload_hash
FROM validated_events v
WHERE v.reason IS NULL
  AND NOT EXISTS (SELECT 1 FROM event_outcomes o WHERE o.line_number = v.line_number)
