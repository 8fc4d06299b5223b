-- Outbound provider calls per provider and day over the report's window (the month and the 30
-- days before it): attempts against failures and rate limiting, latency, what waits.
-- Parameters: $first_day, $last_day (DATE, inclusive).
SELECT provider, day, attempts, succeeded, failed, retried, rate_limited,
       p50_ms, p95_ms, oldest_pending_hours, invoices_pending
FROM health.sync_health
WHERE day BETWEEN $first_day AND $last_day
ORDER BY provider, day;
