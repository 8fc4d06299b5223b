-- Mark re-processed unknown-customer lines resolved: accepted, duplicate or conflict.
-- A line still invalid stays open. Parameter: $resolved_at.
UPDATE raw.rejected_events AS r
SET resolved_at = $resolved_at,
    resolution = d.resolution
FROM (
    SELECT c.file_id, c.line_number, coalesce(o.outcome, 'accepted') AS resolution
    FROM validated_events v
    JOIN reprocess_candidates c ON c.rowid + 1 = v.line_number
    LEFT JOIN event_outcomes o ON o.line_number = v.line_number
    WHERE v.reason IS NULL
) AS d
WHERE r.file_id = d.file_id
  AND r.line_number = d.line_number
  AND r.reason = 'unknown_customer'
  AND r.resolved_at IS NULL
