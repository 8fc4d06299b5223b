-- Normalize CSV and Parquet records into the common incoming shape, one row per record. Reads
-- the relation `incoming_records`: line_number (the record number) and every column below (NULL
-- where the file lacks it) as VARCHAR;
-- `properties` / `data` hold JSON text. Both shapes are accepted, even mixed: a record with a
-- non-empty `specversion` is a CloudEvent. `raw` is rebuilt only for rejected records, later.
SELECT
    line_number,
    false AS is_blank,
    CAST(NULL AS VARCHAR) AS raw,
    CAST(NULL AS VARCHAR) AS parse_error,
    -- json_valid is one parse, shared by both columns (DuckDB evaluates it once per row)
    CASE
        WHEN props_text IS NULL OR json_valid(props_text) OR trim(props_text) = '' THEN NULL
        ELSE props_column || ' is not valid JSON'
    END AS type_error,
    is_cloudevent,
    nullif(CASE WHEN is_cloudevent THEN id ELSE event_id END, '') AS event_id,
    nullif(CASE WHEN is_cloudevent THEN "type" ELSE event_name END, '') AS event_name,
    record_customer_id(specversion, subject, customer_id) AS customer_id,
    nullif(source, '') AS source,
    nullif(subscription_id, '') AS subscription_id,
    nullif(CASE WHEN is_cloudevent THEN "time" ELSE "timestamp" END, '') AS timestamp_text,
    CASE WHEN json_valid(props_text) THEN json(props_text) END AS properties,
    props_text AS properties_text
FROM (
    SELECT
        r.*,
        coalesce(trim(r.specversion), '') <> '' AS is_cloudevent,
        CASE WHEN coalesce(trim(r.specversion), '') <> '' THEN r.data ELSE r.properties END
            AS props_text,
        CASE WHEN coalesce(trim(r.specversion), '') <> '' THEN 'data' ELSE 'properties' END
            AS props_column
    FROM incoming_records r
)
