-- Is every accepted event of a billed meter inside a closed period counted exactly once?
-- Per stored usage row of the month: the events the rating counted, beside an independent count
-- of the events that row must hold (same customer, event name, period; subscription scoping;
-- property filters compared as JSON text), and whether its period overlaps another period of the
-- same subscription and meter (an event would then be counted twice). Parameter: $billing_month.
WITH rows AS (
    SELECT u.*, m.event_name, m.filters
    FROM billing.usage_quantities u
    JOIN billing.meters m USING (meter_key)
    WHERE u.billing_month = $billing_month
), filters AS (
    -- a dotted filter key names a nested property: plan.tier is $."plan"."tier"
    SELECT r.subscription_id, r.meter_key, r.period_start,
           '$.' || array_to_string(list_transform(string_split(f.key, '.'),
                                                  lambda part: '"' || part || '"'), '.') AS path,
           json_extract(r.filters, '$."' || f.key || '"') AS filter_value
    FROM rows r, LATERAL (SELECT unnest(json_keys(r.filters)) AS key) f
), matched AS (
    SELECT r.subscription_id, r.meter_key, r.period_start, e.source, e.event_id, e.properties
    FROM rows r
    JOIN raw.events e
      ON e.customer_id = r.customer_id
     AND e.event_name = r.event_name
     AND e."timestamp" >= r.period_start::TIMESTAMPTZ
     AND e."timestamp" < r.period_end::TIMESTAMPTZ
    WHERE e.subscription_id IS NULL OR e.subscription_id = r.subscription_id
), filtered_out AS (
    SELECT DISTINCT m.subscription_id, m.meter_key, m.period_start, m.source, m.event_id
    FROM matched m
    JOIN filters f USING (subscription_id, meter_key, period_start)
    -- same rules as the aggregation: numbers by value, other scalars by type and text, a
    -- missing property matches nothing
    WHERE NOT coalesce((
        SELECT CASE
            WHEN p IS NULL THEN false
            WHEN json_type(p) IN ('UBIGINT', 'BIGINT', 'DOUBLE')
                 AND json_type(f.filter_value) IN ('UBIGINT', 'BIGINT', 'DOUBLE')
                THEN TRY_CAST(CAST(p AS VARCHAR) AS DECIMAL(38, 12))
                     = TRY_CAST(CAST(f.filter_value AS VARCHAR) AS DECIMAL(38, 12))
            ELSE CAST(p AS VARCHAR) = CAST(f.filter_value AS VARCHAR)
        END
        FROM (SELECT json_extract(m.properties, f.path) AS p)), false)
), expected AS (
    SELECT r.subscription_id, r.meter_key, r.period_start, count(k.event_id) AS events_expected
    FROM rows r
    LEFT JOIN (SELECT * FROM matched
               ANTI JOIN filtered_out USING (subscription_id, meter_key, period_start, source,
                                             event_id)) k
      USING (subscription_id, meter_key, period_start)
    GROUP BY ALL
)
SELECT
    r.subscription_id, r.meter_key, CAST(r.period_start AS VARCHAR) AS period_start,
    r.events_counted, x.events_expected,
    (SELECT count(*) FROM billing.usage_quantities o
     WHERE o.subscription_id = r.subscription_id AND o.meter_key = r.meter_key
       AND o.period_start < r.period_end AND r.period_start < o.period_end
       AND o.period_start <> r.period_start) AS overlapping_periods
FROM rows r
JOIN expected x USING (subscription_id, meter_key, period_start)
ORDER BY ALL
