-- Normalize JSON Lines into the common incoming shape, one row per physical line, in file order
-- (the caller materializes it, so rowid + 1 is the line number). Reads the relation
-- `incoming_lines(raw)`; every JSON document is parsed once. Both shapes are accepted, even
-- mixed: a document with `specversion` is a CloudEvent. Blank lines are kept (and flagged) so
-- that line numbers stay true; they are not events and are not counted as received.
WITH docs AS (
    SELECT
        raw,
        raw IS NULL OR trim(raw) = '' AS is_blank,
        TRY(from_json(raw, '{"event_id":"JSON","event_name":"JSON","customer_id":"JSON",
            "timestamp":"JSON","properties":"JSON","source":"JSON","subscription_id":"JSON",
            "specversion":"JSON","id":"JSON","type":"JSON","subject":"JSON","time":"JSON",
            "data":"JSON"}')) AS d
    FROM incoming_lines
), shaped AS (
    SELECT
        raw,
        is_blank,
        d,
        d.specversion IS NOT NULL AS is_cloudevent,
        CASE WHEN d.specversion IS NOT NULL THEN d.id ELSE d.event_id END AS j_event_id,
        CASE WHEN d.specversion IS NOT NULL THEN d.type ELSE d.event_name END AS j_event_name,
        CASE WHEN d.specversion IS NOT NULL THEN d.subject ELSE d.customer_id END AS j_customer_id,
        CASE WHEN d.specversion IS NOT NULL THEN d.time ELSE d."timestamp" END AS j_timestamp,
        CASE WHEN d.specversion IS NOT NULL THEN d.data ELSE d.properties END AS j_properties,
        d.source AS j_source,
        d.subscription_id AS j_subscription_id
    FROM docs
)
SELECT
    is_blank,
    raw,
    CASE
        WHEN is_blank THEN NULL
        WHEN d IS NULL AND TRY(json_type(raw)) = 'NULL' THEN 'the line is JSON null, not an object'
        WHEN d IS NULL THEN 'the line is not valid JSON'
        -- from_json accepts any valid document; only an object starts with '{'
        WHEN left(ltrim(raw), 1) <> '{' THEN 'the line is JSON but not an object'
    END AS parse_error,
    CASE
        WHEN json_type(j_event_id) NOT IN ('VARCHAR', 'NULL') THEN 'event_id must be a string'
        WHEN json_type(j_event_name) NOT IN ('VARCHAR', 'NULL') THEN 'event_name must be a string'
        WHEN json_type(j_customer_id) NOT IN ('VARCHAR', 'NULL') THEN 'customer_id must be a string'
        WHEN json_type(j_timestamp) NOT IN ('VARCHAR', 'NULL') THEN 'timestamp must be a string'
        WHEN json_type(j_source) NOT IN ('VARCHAR', 'NULL') THEN 'source must be a string'
        WHEN json_type(j_subscription_id) NOT IN ('VARCHAR', 'NULL')
            THEN 'subscription_id must be a string'
    END AS type_error,
    is_cloudevent,
    j_event_id ->> '$' AS event_id,
    j_event_name ->> '$' AS event_name,
    j_customer_id ->> '$' AS customer_id,
    j_source ->> '$' AS source,
    j_subscription_id ->> '$' AS subscription_id,
    j_timestamp ->> '$' AS timestamp_text,
    CASE WHEN json_type(j_properties) = 'NULL' THEN NULL ELSE j_properties END AS properties,
    CAST(NULL AS VARCHAR) AS properties_text
FROM shaped
