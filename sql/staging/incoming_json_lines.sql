-- Normalize JSON Lines into the common incoming shape, one row per physical line. Reads the
-- relation `incoming_lines(line_number, raw)`; every JSON document is parsed once. Both shapes are accepted, even
-- mixed: a document with `specversion` is a CloudEvent. Blank lines are kept (and flagged) so
-- that line numbers stay true; they are not events and are not counted as received.
WITH docs AS (
    SELECT
        line_number,
        raw,
        raw IS NULL OR trim(raw) = '' AS is_blank,
        -- json_valid guards the parse: TRY() would re-run whole vectors row by row whenever
        -- one line in them is malformed, several times slower on real files
        CASE WHEN json_valid(raw) THEN from_json(raw, '{"event_id":"JSON","event_name":"JSON","customer_id":"JSON",
            "timestamp":"JSON","properties":"JSON","source":"JSON","subscription_id":"JSON",
            "specversion":"JSON","id":"JSON","type":"JSON","subject":"JSON","time":"JSON",
            "data":"JSON"}') END AS d
    FROM incoming_lines
), shaped AS (
    SELECT
        line_number,
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
    line_number,
    is_blank,
    raw,
    CASE
        WHEN is_blank THEN NULL
        WHEN d IS NULL AND json_valid(raw) THEN 'the line is JSON null, not an object'
        WHEN d IS NULL THEN 'the line is not valid JSON'
        -- from_json accepts any valid document; only an object starts with '{'
        WHEN left(ltrim(raw), 1) <> '{' THEN 'the line is JSON but not an object'
    END AS parse_error,
    -- the macros json_is_text_or_null / json_text come from sql/staging/json_macros.sql
    CASE
        WHEN NOT json_is_text_or_null(j_event_id)
            THEN (CASE WHEN is_cloudevent THEN 'id' ELSE 'event_id' END) || ' must be a string'
        WHEN NOT json_is_text_or_null(j_event_name)
            THEN (CASE WHEN is_cloudevent THEN 'type' ELSE 'event_name' END) || ' must be a string'
        WHEN NOT json_is_text_or_null(j_customer_id)
            THEN (CASE WHEN is_cloudevent THEN 'subject' ELSE 'customer_id' END)
                || ' must be a string'
        WHEN NOT json_is_text_or_null(j_timestamp)
            THEN (CASE WHEN is_cloudevent THEN 'time' ELSE 'timestamp' END) || ' must be a string'
        WHEN NOT json_is_text_or_null(j_source) THEN 'source must be a string'
        WHEN NOT json_is_text_or_null(j_subscription_id) THEN 'subscription_id must be a string'
    END AS type_error,
    is_cloudevent,
    json_text(j_event_id) AS event_id,
    json_text(j_event_name) AS event_name,
    json_text(j_customer_id) AS customer_id,
    json_text(j_source) AS source,
    json_text(j_subscription_id) AS subscription_id,
    json_text(j_timestamp) AS timestamp_text,
    j_properties AS properties,
    CAST(NULL AS VARCHAR) AS properties_text
FROM shaped
