-- Keep every line the file could not contribute: invalid lines, conflicts, and records the CSV
-- parser refused, each with a reason code, a detail naming the field, and the raw content.
-- Parameters: $file_id, $rejected_at. Reads `rejected_rows` (the file's invalid lines,
-- validated), `candidate_events` (its valid lines set aside for dedup), `event_outcomes`,
-- `conflict_lines(line_number, raw)` (JSON Lines of conflicting events, as received) and
-- `parser_rejects(line_number, raw, detail)`.
INSERT INTO raw.rejected_events (
    file_id, line_number, reason, detail, raw, source, event_id, customer_id, rejected_at
)
SELECT $file_id, line_number, reason, detail, raw, source, event_id, customer_id, $rejected_at
FROM rejected_rows
UNION ALL
SELECT
    $file_id,
    o.line_number,
    'conflict',
    'event (source ' || o.source || ', event_id ' || o.event_id
        || ') was already accepted with a different payload (' || o.first_accepted
        || '); the first accepted event stands',
    -- the line as received (JSON Lines), or the record in the native JSON shape
    coalesce(c.raw, json_object(
        'event_id', v.event_id, 'event_name', v.event_name, 'customer_id', v.customer_id,
        'timestamp', strftime(v."timestamp", '%Y-%m-%dT%H:%M:%S.%fZ'),
        'properties', v.properties, 'source', v.source,
        'subscription_id', v.subscription_id)::VARCHAR),
    o.source, o.event_id, v.customer_id, $rejected_at
FROM event_outcomes o
JOIN candidate_events v USING (line_number)
LEFT JOIN conflict_lines c USING (line_number)
WHERE o.outcome = 'conflict'
UNION ALL
SELECT $file_id, line_number, 'malformed_line', detail, raw, NULL, NULL, NULL, $rejected_at
FROM parser_rejects
ORDER BY 2
