-- One row per re-processing pass: candidates = accepted + duplicates + conflicts + still_rejected.
-- Parameters: $reprocessed_at, $run_id.
INSERT INTO raw.reprocessing_log (
    reprocessed_at, candidates, accepted, duplicates, conflicts, still_rejected, run_id
)
SELECT
    $reprocessed_at,
    (SELECT count(*) FROM reprocess_candidates),
    (SELECT count(*) FROM validated_events v WHERE v.reason IS NULL
        AND NOT EXISTS (SELECT 1 FROM event_outcomes o WHERE o.line_number = v.line_number)),
    (SELECT count(*) FROM event_outcomes WHERE outcome = 'duplicate'),
    (SELECT count(*) FROM event_outcomes WHERE outcome = 'conflict'),
    (SELECT count(*) FROM validated_events WHERE reason IS NOT NULL),
    $run_id
