-- health.sync_health: outbound provider calls per provider and UTC day (sync.sync_attempts),
-- and, on the reconciliation day, the invoices waiting on each provider. Rebuilt whole.
-- Parameter: $now.
--   attempts      every call attempt; succeeded / failed / retried by its outcome
--   rate_limited  attempts the provider answered 429
--   waiting       invoices of that app in a syncing or sync_failed state (or issuing):
--                 invoices_pending and the hours the oldest of them has waited
DELETE FROM health.sync_health;

INSERT INTO health.sync_health
WITH calls AS (
    SELECT provider, CAST("at" AS DATE) AS day,
           count(*) AS attempts,
           count(*) FILTER (WHERE outcome = 'ok') AS succeeded,
           count(*) FILTER (WHERE outcome = 'failed') AS failed,
           count(*) FILTER (WHERE outcome = 'retried') AS retried,
           count(*) FILTER (WHERE http_status = 429) AS rate_limited,
           quantile_cont(latency_ms, 0.5) AS p50_ms,
           quantile_cont(latency_ms, 0.95) AS p95_ms
    FROM sync.sync_attempts
    GROUP BY ALL
),
waiting AS (
    SELECT app AS provider, CAST($now AS DATE) AS day,
           count(*) AS invoices_pending,
           max(date_diff('second', coalesce(status_changed_at, created_at), $now)) / 3600.0
               AS oldest_pending_hours
    FROM billing.invoices
    WHERE app IN ('stripe', 'custom_invoicing')
      AND (status LIKE '%.syncing' OR status LIKE '%.sync_failed' OR status = 'issuing')
    GROUP BY ALL
)
SELECT provider, day,
       coalesce(c.attempts, 0), coalesce(c.succeeded, 0), coalesce(c.failed, 0),
       coalesce(c.retried, 0), coalesce(c.rate_limited, 0), c.p50_ms, c.p95_ms,
       w.oldest_pending_hours, coalesce(w.invoices_pending, 0), $now
FROM calls c
FULL OUTER JOIN waiting w USING (provider, day);
