-- Each logged file beside what its ingestion actually stored, for the blocking counts check.
-- Rows added later by re-processing carry the same file_id with origin 'reprocessed', so they are
-- not counted against the file's own ingestion.
SELECT
    l.file_id, l.path, l.received, l.accepted, l.duplicates, l.rejected, l.conflicts,
    (SELECT count(*) FROM raw.events e
        WHERE e.file_id = l.file_id AND e.origin = 'file') AS events_stored,
    (SELECT count(*) FROM raw.rejected_events r
        WHERE r.file_id = l.file_id AND r.origin = 'file') AS rejects_stored
FROM raw.ingestion_log l
ORDER BY l.ingested_at, l.path
