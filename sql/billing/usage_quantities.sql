-- Usage per subscription × billed meter × service period (contract section 3), set-based.
--
-- Reads temp tables `usage_periods` (pipelines/invoicing/usage_measurement.py:
-- register_periods) and `usage_meters` (sql/billing/usage_meters.sql), and the usage_* macros
-- (sql/billing/usage_functions.sql). Parameters, derived from those tables by
-- pipelines/invoicing/usage_measurement.py: $paths (every JSON path the meters read,
-- usage_paths.paths), $event_names (the billed meters' event names) and
-- [$range_start, $range_end) (the span of all periods); being constants, they let DuckDB skip row groups outside the span and extract
-- all the paths with one parse of each event's properties.
--
-- One row per (subscription, meter priced in its plan, period): zero usage still gives a row
-- (quantity 0, events_counted 0). An event counts for a slot when
--   * its event_name is the meter's and its timestamp is in [period_start, period_end);
--   * its customer_id is the subscription's customer and, when it carries a subscription_id,
--     that is the subscription (an event without one counts for the customer's subscription
--     that bills the meter: the catalog allows one active at a time per customer and meter);
--   * every filter of the meter matches: the property exists and equals the filter's JSON
--     scalar (usage_json_equal; a missing property matches nothing).
--
-- Events without a usable value. For sum, max, min, avg and latest a matched event whose value
-- property is missing, null or not a number (nor a numeric string) is left out of the value
-- aggregation, as Lago and OpenMeter do, and counted in `events_without_value` so that
-- finance can see it (it is still in `events_counted`). For unique_count a matched event
-- without the unique property (or with null) adds no value and is counted there too.
--
-- events_after_cutoff: of events_counted, those ingested after the period's ingested_cutoff
-- (NULL while rating: 0). Reconciliation sets the cutoff to an issued invoice's rating time to
-- count the events that came too late for it, by the same matching rules.
--
-- Quantities (DECIMAL(38, 12), exact, never DOUBLE):
--   count        matched events;
--   sum          sum of values (0 without values);
--   max, min     greatest / smallest value (0 without values);
--   avg          sum / number of values, rounded to 12 decimals half away from zero
--                (0 without values);
--   unique_count distinct values of unique_property (strings by their text);
--   latest       value of the newest event with a value; ties on timestamp go to the greatest
--                event_id, then the greatest source; 0 without values. latest_source,
--                latest_event_id and latest_timestamp name the event taken.
WITH slots AS (
    -- one row per subscription period × billed meter; `slot` is the aggregation key
    SELECT row_number() OVER (ORDER BY p.subscription_id, m.meter_key, p.period_start) AS slot,
           p.subscription_id,
           p.customer_id,
           p.period_start,
           p.period_end,
           p.ingested_cutoff,
           m.meter_key,
           m.event_name,
           m.aggregation,
           list_position($paths, m.value_path) AS value_index,
           list_position($paths, m.unique_path) AS unique_index,
           list_transform(m.filters, lambda f: {'index': list_position($paths, f.path),
                                                'value': f.value}) AS filters
    FROM usage_periods p
    JOIN (SELECT DISTINCT plan_key, meter_key FROM billing.prices
          WHERE meter_key IS NOT NULL) priced USING (plan_key)
    JOIN usage_meters m USING (meter_key)
),
events AS (
    -- the one pass over raw.events: billed event names inside the periods' span, each
    -- event's properties parsed once for every path the meters read
    SELECT customer_id,
           subscription_id,
           event_name,
           "timestamp",
           event_id,
           source,
           ingested_at,
           json_extract(properties, $paths)::VARCHAR[] AS props
    FROM raw.events
    WHERE list_contains($event_names, event_name)
      AND "timestamp" >= $range_start
      AND "timestamp" < $range_end
),
matched AS (
    -- events × the slots they count for: equality on customer and event name, then the
    -- period's range and the subscription scope
    SELECT s.slot,
           s.aggregation,
           e."timestamp",
           e.event_id,
           e.source,
           usage_json_decimal(e.props[s.value_index]) AS value,
           usage_json_key(e.props[s.unique_index]) AS unique_value,
           coalesce(e.ingested_at > s.ingested_cutoff, false) AS after_cutoff
    FROM events e
    JOIN slots s
      ON s.customer_id = e.customer_id
     AND s.event_name = e.event_name
     AND e."timestamp" >= s.period_start
     AND e."timestamp" < s.period_end
     AND (e.subscription_id IS NULL OR e.subscription_id = s.subscription_id)
    WHERE len(s.filters) = 0
       OR list_bool_and(list_transform(
              s.filters, lambda f: usage_json_equal(e.props[f.index], f.value)))
),
measured AS (
    SELECT slot,
           count(*) AS events_counted,
           count(value) AS events_with_value,
           count(unique_value) AS events_with_unique_value,
           sum(value) AS value_sum,
           max(value) AS value_max,
           min(value) AS value_min,
           count(DISTINCT unique_value) AS unique_values,
           count(*) FILTER (WHERE after_cutoff) AS events_after_cutoff,
           arg_max({'value': value, 'source': source, 'event_id': event_id,
                    'timestamp': "timestamp"},
                   {'timestamp': "timestamp", 'event_id': event_id, 'source': source})
               FILTER (WHERE aggregation = 'latest' AND value IS NOT NULL) AS latest
    FROM matched
    GROUP BY slot
)
SELECT s.subscription_id,
       s.customer_id,
       s.meter_key,
       s.aggregation,
       CAST(s.period_start AS DATE) AS period_start,
       CAST(s.period_end AS DATE) AS period_end,
       CAST(CASE s.aggregation
           WHEN 'count' THEN coalesce(u.events_counted, 0)
           WHEN 'sum' THEN coalesce(u.value_sum, 0)
           WHEN 'max' THEN coalesce(u.value_max, 0)
           WHEN 'min' THEN coalesce(u.value_min, 0)
           WHEN 'avg' THEN CASE WHEN u.events_with_value > 0
                                THEN usage_exact_divide(u.value_sum, u.events_with_value)
                                ELSE 0 END
           WHEN 'unique_count' THEN coalesce(u.unique_values, 0)
           WHEN 'latest' THEN coalesce(u.latest.value, 0)
           ELSE error('meter ' || s.meter_key || ': unknown aggregation ' || s.aggregation)
       END AS DECIMAL(38, 12)) AS quantity,
       coalesce(u.events_counted, 0) AS events_counted,
       CASE s.aggregation
           WHEN 'count' THEN 0
           WHEN 'unique_count' THEN coalesce(u.events_counted - u.events_with_unique_value, 0)
           ELSE coalesce(u.events_counted - u.events_with_value, 0)
       END AS events_without_value,
       coalesce(u.events_after_cutoff, 0) AS events_after_cutoff,
       u.latest.source AS latest_source,
       u.latest.event_id AS latest_event_id,
       u.latest."timestamp" AS latest_timestamp
FROM slots s
LEFT JOIN measured u USING (slot)
ORDER BY s.subscription_id, s.meter_key, s.period_start
