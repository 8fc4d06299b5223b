-- Normalize JSON Lines into the common incoming shape (one row per non-blank line).
-- Reads the view `incoming_lines(line_number, raw)`; every JSON document is parsed once.
-- Both shapes are accepted, even mixed: a document with `specversion` is a CloudEvent.
WITH docs AS (
    SELECT
        line_number,
        raw,
        TRY(from_json(raw, '{"event_id":"JSON","event_name":"JSON","customer_id":"JSON",
            "timestamp":"JSON","properties":"JSON","source":"JSON","subscription_id":"JSON",
            "specversion":"JSON","id":"JSON","type":"JSON","subject":"JSON","time":"JSON",
            "data":"JSON"}')) AS d
    FROM incoming_lines
    WHERE raw IS NOT NULL AND trim(raw) <> ''
), shaped AS (
    SELECT
        line_number,
        raw,
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
    line_number,
    raw,
    CASE
        WHEN d IS NULL THEN 'the line is not valid JSON'
        WHEN j_event_id IS NULL AND j_event_name IS NULL AND json_type(raw) <> 'OBJECT'
            THEN 'the line is not a JSON object'
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
    CASE WHEN json_type(j_properties) = 'NULL' THEN NULL ELSE j_properties END AS properties
FROM shaped
