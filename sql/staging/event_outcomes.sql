-- Valid events that must not be stored: exact duplicates and conflicts (contract §1).
-- Identity is (source, event_id) against all history and within the batch itself; the first
-- accepted event stands. Every candidate not listed here is accepted.
-- Reads the views `candidate_events` (the batch: a landed file's valid lines set aside for
-- dedup, or re-processed lines; with the payload fields) and `prior_events(source, event_id,
-- payload_hash, file_id, line_number)` (stored events outside the batch that may share an
-- identity).
-- `first_file_id` / `first_line` name the event that stands (first_file_id NULL: the batch's
-- own line); a digest mismatch is only a candidate conflict until the payloads are compared
-- canonically (pipelines/ingestion/canonical_payloads.py).
CREATE OR REPLACE TEMP TABLE event_outcomes AS
WITH seen_before AS (
    SELECT
        c.line_number,
        c.source,
        c.event_id,
        CASE WHEN p.payload_hash = c.payload_hash THEN 'duplicate' ELSE 'conflict' END AS outcome,
        'file ' || p.file_id || ' line ' || p.line_number AS first_accepted,
        p.file_id AS first_file_id,
        p.line_number AS first_line
    FROM candidate_events c
    JOIN prior_events p ON p.source = c.source AND p.event_id = c.event_id
), repeated_keys AS (
    -- identities seen more than once in the batch, found by a 64-bit key first (cheap to
    -- group millions of); the exact (source, event_id) decides below
    SELECT hash(source, event_id) AS key
    FROM candidate_events
    GROUP BY key
    HAVING count(*) > 1
), ranked_in_batch AS (
    SELECT
        c.line_number,
        c.source,
        c.event_id,
        c.payload_hash,
        row_number() OVER w AS nth,
        first_value(c.payload_hash) OVER w AS first_hash,
        first_value(c.line_number) OVER w AS first_line
    FROM candidate_events c
    WHERE hash(c.source, c.event_id) IN (SELECT key FROM repeated_keys)
      AND c.line_number NOT IN (SELECT line_number FROM seen_before)
    WINDOW w AS (PARTITION BY c.source, c.event_id ORDER BY c.line_number)
)
SELECT line_number, source, event_id, outcome, first_accepted, first_file_id, first_line
FROM seen_before
UNION ALL
SELECT
    line_number,
    source,
    event_id,
    CASE WHEN payload_hash = first_hash THEN 'duplicate' ELSE 'conflict' END AS outcome,
    'this file, line ' || first_line AS first_accepted,
    CAST(NULL AS VARCHAR) AS first_file_id,
    first_line
FROM ranked_in_batch
WHERE nth > 1
