-- The landed file's lines that may be duplicates or conflicts, set aside before anything is
-- stored: their identity (source, event_id) is seen more than once in the file, or is already
-- in raw.events. Every other valid line is certainly new and goes straight in
-- (sql/raw/events.sql). Identities are compared by a 64-bit hash here, which can only set
-- aside too much: dedup decides exactly (sql/staging/event_outcomes.sql).
-- Reads the view `incoming`. Makes temp tables `file_keys`, `stored_matches` (the stored events
-- that share an identity hash with the file: dedup's `prior_events`) and `suspect_lines`.
CREATE OR REPLACE TEMP TABLE file_keys AS
SELECT line_number, hash(coalesce(source, ''), event_id) AS key
FROM incoming
WHERE NOT is_blank AND event_id IS NOT NULL;

-- only the identity columns: reading every stored event's payload here cost a minute per 100M
CREATE OR REPLACE TEMP TABLE stored_matches AS
SELECT source, event_id, payload_hash, file_id, line_number, hash(source, event_id) AS key
FROM raw.events
WHERE hash(source, event_id) IN (SELECT key FROM file_keys);

CREATE OR REPLACE TEMP TABLE suspect_lines AS
SELECT line_number
FROM file_keys
WHERE key IN (SELECT key FROM file_keys GROUP BY key HAVING count(*) > 1)
   OR key IN (SELECT key FROM stored_matches);
