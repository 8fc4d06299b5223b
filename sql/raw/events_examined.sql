-- Append the landed file's lines that were set aside for dedup and turned out new: valid, and
-- neither a duplicate nor a conflict (the first of a repeated identity stands).
-- Parameters: $file_id, $ingested_at. Reads `candidate_events` (the set-aside lines that are
-- valid) and `event_outcomes`.
INSERT INTO raw.events (
    source, event_id, event_name, customer_id, subscription_id, "timestamp", properties,
    file_id, line_number, ingested_at, payload_hash
)
SELECT
    v.source, v.event_id, v.event_name, v.customer_id, v.subscription_id, v."timestamp",
    v.properties, $file_id, v.line_number, $ingested_at, v.payload_hash
FROM candidate_events v
WHERE NOT EXISTS (SELECT 1 FROM event_outcomes o WHERE o.line_number = v.line_number)
