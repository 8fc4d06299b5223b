-- Reading JSON string values cheaply: from_json returns each field as JSON text, so a string
-- is its quoted text; unquoting it is a slice unless it has escapes (then the JSON parser).
-- Created per session, before staging.
CREATE OR REPLACE TEMP MACRO json_is_text_or_null(j) AS
    j IS NULL OR starts_with(CAST(j AS VARCHAR), '"');

CREATE OR REPLACE TEMP MACRO json_text(j) AS
    CASE
        WHEN j IS NULL OR NOT starts_with(CAST(j AS VARCHAR), '"') THEN NULL
        WHEN contains(CAST(j AS VARCHAR), '\') THEN j ->> '$'
        ELSE substr(CAST(j AS VARCHAR), 2, length(CAST(j AS VARCHAR)) - 2)
    END;

-- The customer of a CSV or Parquet record (text columns): a CloudEvent's subject, else its
-- customer_id; empty is none. The normalizer and the routing by shard both read it here.
CREATE OR REPLACE TEMP MACRO record_customer_id(specversion, subject, customer_id) AS
    nullif(CASE WHEN coalesce(trim(specversion), '') <> '' THEN subject ELSE customer_id END, '');
