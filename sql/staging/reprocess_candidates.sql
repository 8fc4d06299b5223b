-- Rejected unknown-customer lines whose customer is now in the catalog, in a stable order
-- (rowid + 1 is the candidate's ordinal, which staging uses as its line number).
-- Reads temp table `known_customers`.
CREATE OR REPLACE TEMP TABLE reprocess_candidates AS
SELECT file_id, line_number, raw
FROM raw.rejected_events
WHERE reason = 'unknown_customer'
  AND resolved_at IS NULL
  AND customer_id IN (SELECT customer_id FROM known_customers)
ORDER BY file_id, line_number
