-- Keep every line the file could not contribute: invalid lines, conflicts, and records the CSV
-- parser refused, each with a reason code, a detail naming the field, and the raw content.
-- Parameters: $file_id, $rejected_at. Reads temp tables `incoming`, `validated_events`,
-- `event_outcomes`, `parser_rejects(line_number, raw, detail)`.
INSERT INTO raw.rejected_events (
    file_id, line_number, reason, detail, raw, source, event_id, customer_id, rejected_at
)
WITH rejected AS (
    SELECT line_number, reason, detail, source, event_id, customer_id
    FROM validated_events
    WHERE reason IS NOT NULL
    UNION ALL
    SELECT
        o.line_number,
        'conflict',
        'event (source ' || o.source || ', event_id ' || o.event_id
            || ') was already accepted with a different payload (' || o.first_accepted
            || '); the first accepted event stands',
        o.source, o.event_id, v.customer_id
    FROM event_outcomes o
    JOIN validated_events v USING (line_number)
    WHERE o.outcome = 'conflict'
)
SELECT
    $file_id,
    r.line_number,
    r.reason,
    r.detail,
    -- JSON Lines keep the line itself; CSV and Parquet records are rebuilt in the native shape
    coalesce(i.raw, json_object(
        'event_id', i.event_id, 'event_name', i.event_name, 'customer_id', i.customer_id,
        'timestamp', i.timestamp_text,
        'properties', coalesce(i.properties, to_json(i.properties_text)),
        'source', i.source, 'subscription_id', i.subscription_id)::VARCHAR),
    r.source,
    r.event_id,
    r.customer_id,
    $rejected_at
FROM rejected r
JOIN incoming i ON i.rowid + 1 = r.line_number
UNION ALL
SELECT $file_id, line_number, 'malformed_line', detail, raw, NULL, NULL, NULL, $rejected_at
FROM parser_rejects
ORDER BY 2
