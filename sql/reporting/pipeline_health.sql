-- The pipeline per day of the month: files and events ingested, rejections, late events,
-- invoices stuck past their sync SLA, deliveries given up, payment errors.
-- Parameters: $first_day, $last_day (DATE, inclusive).
SELECT day, files, received, accepted, duplicates, rejected, conflicts, late_events,
       stuck_invoices, failed_deliveries, payment_errors
FROM health.pipeline_health
WHERE day BETWEEN $first_day AND $last_day
ORDER BY day;
