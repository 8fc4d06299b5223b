-- Append the landed file's valid lines that are certainly new (not set aside by
-- sql/staging/suspect_lines.sql), straight from the file: one pass, never staged.
-- Parameters: $file_id, $ingested_at. Reads the view `validated_events`, temp table
-- `suspect_lines`.
INSERT INTO raw.events (
    source, event_id, event_name, customer_id, subscription_id, "timestamp", properties,
    file_id, line_number, ingested_at, payload_hash
)
SELECT
    v.source, v.event_id, v.event_name, v.customer_id, v.subscription_id, v."timestamp",
    v.properties, $file_id, v.line_number, $ingested_at, v.payload_hash
FROM validated_events v
WHERE v.reason IS NULL
  AND v.line_number NOT IN (SELECT line_number FROM suspect_lines)
