-- Record the landed file once, with counts that add up:
-- received = accepted + duplicates + rejected (conflicts are part of rejected).
-- Parameters: $file_id, $path, $format, $bytes, $mtime_ns, $ingested_at, $run_id, and
-- $received (the file's non-blank lines, records or rows, counted as it was read).
INSERT INTO raw.ingestion_log (
    file_id, path, format, bytes, received, accepted, duplicates, rejected, conflicts,
    ingested_at, run_id, mtime_ns
)
WITH counts AS (
    SELECT
        $received + (SELECT count(*) FROM parser_rejects) AS received,
        (SELECT count(*) FROM raw.events WHERE file_id = $file_id AND origin = 'file') AS accepted,
        (SELECT count(*) FROM event_outcomes WHERE outcome = 'duplicate') AS duplicates,
        (SELECT count(*) FROM raw.rejected_events WHERE file_id = $file_id AND origin = 'file')
            AS rejected,
        (SELECT count(*) FROM event_outcomes WHERE outcome = 'conflict') AS conflicts
)
SELECT $file_id, $path, $format, $bytes, received, accepted, duplicates, rejected, conflicts,
       $ingested_at, $run_id, $mtime_ns
FROM counts
