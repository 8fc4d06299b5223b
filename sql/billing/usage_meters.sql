-- The meters to measure: every meter priced by the plan of a period in temp table
-- `usage_periods` (see pipelines/invoicing/usage_measurement.py), with the JSON paths it reads.
-- Writes temp tables `usage_meters` and `usage_paths`; sql/billing/usage_quantities.sql reads
-- them. Runs after sql/billing/usage_functions.sql (the usage_* macros).
--
-- A property name is a path into the event's `properties`, dotted for nesting
-- (`resources.minutes` -> `$."resources"."minutes"`); every part is quoted so names with
-- spaces, dashes or `$` work. Filters are `{property: value}` equalities on JSON scalars; each
-- expected value is kept as minified JSON text (`"eu"`, `1`, `true`, `null`), the same form
-- json_extract gives for an event's property, so a string never equals a number or a boolean.
CREATE OR REPLACE TEMP TABLE usage_meters AS
WITH billed AS (
    SELECT DISTINCT meter_key
    FROM billing.prices
    WHERE meter_key IS NOT NULL
      AND plan_key IN (SELECT plan_key FROM usage_periods)
),
meter_filters AS (
    SELECT m.meter_key,
           list({'path': usage_json_path(f.key), 'value': f.value::VARCHAR} ORDER BY f.key)
               AS filters
    FROM billing.meters m, json_each(m.filters) f
    GROUP BY m.meter_key
)
SELECT m.meter_key,
       m.event_name,
       m.aggregation,
       usage_json_path(m.value_property) AS value_path,
       usage_json_path(m.unique_property) AS unique_path,
       coalesce(f.filters, []) AS filters
FROM billing.meters m
JOIN billed USING (meter_key)
LEFT JOIN meter_filters f USING (meter_key);

-- Every JSON path the meters read, once: raw.events' properties are parsed once per event and
-- these paths extracted together (usage_quantities.sql gets the list as parameter $paths).
CREATE OR REPLACE TEMP TABLE usage_paths AS
SELECT coalesce(list(DISTINCT path ORDER BY path), []) AS paths
FROM (
    SELECT value_path AS path FROM usage_meters
    UNION ALL SELECT unique_path FROM usage_meters
    UNION ALL SELECT unnest(filters).path FROM usage_meters
)
WHERE path IS NOT NULL;
