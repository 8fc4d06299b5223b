-- Valid incoming events that must not be stored: exact duplicates and conflicts (contract §1).
-- Identity is (source, event_id) against all history (raw.events) and within the file itself;
-- the first accepted event stands. Every valid event not listed here is accepted.
-- Reads temp table `validated_events`.
CREATE OR REPLACE TEMP TABLE event_outcomes AS
WITH valid AS (
    SELECT line_number, source, event_id, payload_hash
    FROM validated_events
    WHERE reason IS NULL
), seen_before AS (
    SELECT
        v.line_number,
        v.source,
        v.event_id,
        CASE WHEN e.payload_hash = v.payload_hash THEN 'duplicate' ELSE 'conflict' END AS outcome,
        'file ' || e.file_id || ' line ' || e.line_number AS first_accepted
    FROM valid v
    JOIN raw.events e ON e.source = v.source AND e.event_id = v.event_id
), repeated_in_file AS (
    SELECT source, event_id
    FROM valid
    WHERE line_number NOT IN (SELECT line_number FROM seen_before)
    GROUP BY source, event_id
    HAVING count(*) > 1
), ranked_in_file AS (
    SELECT
        v.line_number,
        v.source,
        v.event_id,
        v.payload_hash,
        row_number() OVER w AS nth,
        first_value(v.payload_hash) OVER w AS first_hash,
        first_value(v.line_number) OVER w AS first_line
    FROM valid v
    JOIN repeated_in_file r ON r.source = v.source AND r.event_id = v.event_id
    WINDOW w AS (PARTITION BY v.source, v.event_id ORDER BY v.line_number)
)
SELECT line_number, source, event_id, outcome, first_accepted
FROM seen_before
UNION ALL
SELECT
    line_number,
    source,
    event_id,
    CASE WHEN payload_hash = first_hash THEN 'duplicate' ELSE 'conflict' END AS outcome,
    'this file, line ' || first_line AS first_accepted
FROM ranked_in_file
WHERE nth > 1
