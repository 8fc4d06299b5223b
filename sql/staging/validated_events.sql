-- Validate normalized incoming rows against contract section 1. Views, not tables: ingestion
-- reads them once, straight into raw.events (pipelines/ingestion/load.py), so valid rows are
-- never staged. Reads the view `incoming` (the file, normalized, with its line, record or row
-- numbers; blank lines included), the payload_digest macro (sql/raw/payload_digest.sql) and
-- temp tables `known_customers(customer_id)` and `ingestion_clock(now)`.
-- The view `validated_events` leaves blank lines out. `reason` is NULL for a valid event, else
-- the first fault found; `raw` is kept for rejected lines only (JSON Lines: the line; CSV,
-- Parquet: the record in the native JSON shape).
CREATE OR REPLACE TEMP VIEW validated_rows AS
WITH typed AS (
    SELECT
        i.*,
        coalesce(i.source, '') AS source_key,
        -- the instant's format is checked by the cast; the offset must follow a time of day
        -- (most producers end with Z after the time: that needs no regular expression)
        CASE WHEN suffix(i.timestamp_text, 'Z') AND contains(i.timestamp_text, ':') THEN true
             ELSE regexp_matches(i.timestamp_text,
                       '\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|z|[+-]\d{2}(?::?\d{2})?)\s*$')
        END AS timestamp_has_offset,
        TRY_CAST(i.timestamp_text AS TIMESTAMPTZ) AS ts
    FROM incoming i
), judged AS (
    SELECT
        t.*,
        CASE
            WHEN parse_error IS NOT NULL THEN 'malformed_line'
            WHEN type_error IS NOT NULL THEN 'invalid_field'
            WHEN event_id IS NULL OR trim(event_id) = '' THEN 'missing_field'
            WHEN event_name IS NULL OR trim(event_name) = '' THEN 'missing_field'
            WHEN customer_id IS NULL OR trim(customer_id) = '' THEN 'missing_field'
            WHEN timestamp_text IS NULL OR trim(timestamp_text) = '' THEN 'missing_field'
            WHEN length(event_id) > 255 THEN 'event_id_too_long'
            WHEN ts IS NULL THEN 'invalid_timestamp'
            WHEN NOT timestamp_has_offset THEN 'timestamp_without_offset'
            WHEN ts > (SELECT now FROM ingestion_clock) + INTERVAL 5 MINUTE THEN 'timestamp_in_future'
            -- properties are minified JSON (normalization), so an object starts with {
            WHEN properties IS NOT NULL AND NOT starts_with(CAST(properties AS VARCHAR), '{')
                THEN 'properties_not_object'
            WHEN customer_id NOT IN (SELECT customer_id FROM known_customers) THEN 'unknown_customer'
        END AS reason
    FROM typed t
)
SELECT
    line_number,
    is_blank,
    source_key AS source,
    event_id,
    event_name,
    customer_id,
    subscription_id,
    ts AS "timestamp",
    coalesce(properties, '{}'::JSON) AS properties,
    -- what "the same payload" means for dedup (sql/raw/payload_digest.sql); meaningful for
    -- valid rows only, computed for all so that reading it does not judge the row again
    payload_digest(event_name, customer_id, subscription_id, ts,
                   coalesce(properties, '{}'::JSON)) AS payload_hash,
    reason,
    CASE reason
        WHEN 'malformed_line' THEN parse_error
        WHEN 'invalid_field' THEN type_error
        WHEN 'missing_field' THEN (CASE
            WHEN is_cloudevent THEN (CASE
                WHEN event_id IS NULL OR trim(event_id) = '' THEN 'id (event_id) is missing or empty'
                WHEN event_name IS NULL OR trim(event_name) = '' THEN 'type (event_name) is missing or empty'
                WHEN customer_id IS NULL OR trim(customer_id) = '' THEN 'subject (customer_id) is missing or empty'
                ELSE 'time (timestamp) is missing or empty' END)
            WHEN event_id IS NULL OR trim(event_id) = '' THEN 'event_id is missing or empty'
            WHEN event_name IS NULL OR trim(event_name) = '' THEN 'event_name is missing or empty'
            WHEN customer_id IS NULL OR trim(customer_id) = '' THEN 'customer_id is missing or empty'
            ELSE 'timestamp is missing or empty' END)
        WHEN 'event_id_too_long' THEN 'event_id has ' || length(event_id) || ' characters; at most 255'
        WHEN 'invalid_timestamp' THEN 'timestamp ' || timestamp_text || ' is not an ISO-8601 instant'
        WHEN 'timestamp_without_offset'
            THEN 'timestamp ' || timestamp_text || ' has no UTC offset (add Z or +hh:mm)'
        WHEN 'timestamp_in_future'
            THEN 'timestamp ' || timestamp_text || ' is more than 5 minutes after ingestion time'
        WHEN 'properties_not_object'
            THEN 'properties must be a JSON object, got ' || lower(json_type(properties))
        WHEN 'unknown_customer'
            THEN 'customer_id ' || customer_id || ' is not in the catalog (re-processable once it is)'
    END AS detail,
    CASE WHEN reason IS NOT NULL THEN coalesce(raw, json_object(
        'event_id', event_id, 'event_name', event_name, 'customer_id', customer_id,
        'timestamp', timestamp_text, 'properties', coalesce(properties, to_json(properties_text)),
        'source', source, 'subscription_id', subscription_id)::VARCHAR) END AS raw
FROM judged;

CREATE OR REPLACE TEMP VIEW validated_events AS
SELECT * EXCLUDE (is_blank)
FROM validated_rows
WHERE NOT is_blank;
