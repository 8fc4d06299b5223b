-- A re-processed line whose identity was accepted meanwhile with another payload is a conflict:
-- kept as its own rejected row, with the raw line. Parameter: $rejected_at.
-- Reads temp tables `reprocess_candidates`, `validated_events`, `event_outcomes`.
INSERT INTO raw.rejected_events (
    file_id, line_number, reason, detail, raw, source, event_id, customer_id, rejected_at, origin
)
SELECT
    c.file_id, c.line_number, 'conflict',
    'event (source ' || o.source || ', event_id ' || o.event_id
        || ') was already accepted with a different payload (' || o.first_accepted
        || '); the first accepted event stands',
    c.raw, o.source, o.event_id, v.customer_id, $rejected_at, 'reprocessed'
FROM event_outcomes o
JOIN validated_events v USING (line_number)
JOIN reprocess_candidates c ON c.rowid + 1 = o.line_number
WHERE o.outcome = 'conflict'
