-- Is every accepted event of a billed meter inside a closed period counted exactly once?
-- Per stored usage row of the month: the events the rating counted, beside an independent count
-- of the events that row must hold (same customer, event name, period; subscription scoping;
-- property filters compared as JSON by this file's own rules), and whether its period overlaps
-- another period of the same subscription and meter (an event would then be counted twice).
-- One pass over the month's events: $event_names and [$range_start, $range_end) are the rows'
-- event names and span (pipelines/invoicing/audit.py), given as constants so that DuckDB reads
-- only those events, never all history. Parameter: $billing_month.
WITH meter_filters AS (
    -- a dotted filter key names a nested property: plan.tier is $."plan"."tier"
    SELECT meter_key,
           list({'path': '$.' || array_to_string(list_transform(string_split(f.key, '.'),
                                                  lambda part: '"' || part || '"'), '.'),
                 'expected': json_extract(filters, '$."' || f.key || '"')}) AS filters
    FROM billing.meters, LATERAL (SELECT unnest(json_keys(filters)) AS key) f
    GROUP BY meter_key
), rows AS (
    SELECT u.subscription_id, u.customer_id, u.meter_key, u.period_start, u.period_end,
           u.events_counted, m.event_name, coalesce(f.filters, []) AS filters
    FROM billing.usage_quantities u
    JOIN billing.meters m USING (meter_key)
    LEFT JOIN meter_filters f USING (meter_key)
    WHERE u.billing_month = $billing_month
), events AS (
    SELECT customer_id, subscription_id, event_name, "timestamp", properties
    FROM raw.events
    WHERE list_contains($event_names, event_name)
      AND "timestamp" >= $range_start
      AND "timestamp" < $range_end
), expected AS (
    SELECT r.subscription_id, r.meter_key, r.period_start,
           -- same rules as the aggregation: numbers by value, other scalars by type and text,
           -- a missing property matches nothing
           count(*) FILTER (WHERE len(r.filters) = 0 OR list_bool_and(list_transform(r.filters,
               lambda f: coalesce(CASE
                   WHEN json_type(json_extract(e.properties, f.path)) IN ('UBIGINT', 'BIGINT',
                                                                         'DOUBLE')
                        AND json_type(f.expected) IN ('UBIGINT', 'BIGINT', 'DOUBLE')
                       THEN TRY_CAST(CAST(json_extract(e.properties, f.path) AS VARCHAR)
                                     AS DECIMAL(38, 12))
                            = TRY_CAST(CAST(f.expected AS VARCHAR) AS DECIMAL(38, 12))
                   ELSE CAST(json_extract(e.properties, f.path) AS VARCHAR)
                        = CAST(f.expected AS VARCHAR)
               END, false)))) AS events_expected
    FROM rows r
    JOIN events e
      ON e.customer_id = r.customer_id
     AND e.event_name = r.event_name
     AND e."timestamp" >= r.period_start::TIMESTAMPTZ
     AND e."timestamp" < r.period_end::TIMESTAMPTZ
    WHERE e.subscription_id IS NULL OR e.subscription_id = r.subscription_id
    GROUP BY ALL
)
SELECT
    r.subscription_id, r.meter_key, CAST(r.period_start AS VARCHAR) AS period_start,
    r.events_counted, coalesce(x.events_expected, 0) AS events_expected,
    (SELECT count(*) FROM billing.usage_quantities o
     WHERE o.subscription_id = r.subscription_id AND o.meter_key = r.meter_key
       AND o.period_start < r.period_end AND r.period_start < o.period_end
       AND o.period_start <> r.period_start) AS overlapping_periods
FROM rows r
LEFT JOIN expected x USING (subscription_id, meter_key, period_start)
ORDER BY ALL
