-- health.pipeline_health: the pipeline per UTC day. Rebuilt whole. Parameter: $now.
--   files .. conflicts  landed files and their counts (raw.ingestion_log, by ingested_at)
--   late_events         events ingested that day for a period whose invoice was already issued
--                       (they are not on it: see finance.usage_reconciliation)
--   stuck_invoices      on the reconciliation day: invoices in a syncing or sync_failed state
--                       longer than their billing profile's sync SLA (default 24 h)
--   failed_deliveries   notification deliveries given up that day
--   payment_errors      invoices that entered payment_processing.failed that day
DELETE FROM health.pipeline_health;

INSERT INTO health.pipeline_health
WITH ingestion AS (
    SELECT CAST(ingested_at AS DATE) AS day, count(*) AS files, sum(received) AS received,
           sum(accepted) AS accepted, sum(duplicates) AS duplicates, sum(rejected) AS rejected,
           sum(conflicts) AS conflicts
    FROM raw.ingestion_log GROUP BY ALL
),
late AS (
    SELECT CAST(e.ingested_at AS DATE) AS day, count(DISTINCT (e.source, e.event_id)) AS late_events
    FROM raw.events e
    JOIN billing.invoices i
      ON i.customer_id = e.customer_id
     AND (e.subscription_id IS NULL OR e.subscription_id = i.subscription_id)
     AND e."timestamp" >= CAST(i.period_start AS TIMESTAMPTZ)
     AND e."timestamp" < CAST(i.period_end AS TIMESTAMPTZ)
     AND i.issued_at IS NOT NULL AND e.ingested_at > i.issued_at
    GROUP BY ALL
),
stuck AS (
    SELECT CAST($now AS DATE) AS day, count(*) AS stuck_invoices
    FROM billing.invoices i
    LEFT JOIN billing.billing_profiles p ON p.profile_key = i.billing_profile
    WHERE (i.status LIKE '%.syncing' OR i.status LIKE '%.sync_failed')
      AND coalesce(i.status_changed_at, i.created_at)
          + to_seconds(coalesce(p.sync_sla_seconds, 86400)) < $now
),
deliveries AS (
    SELECT CAST(completed_at AS DATE) AS day, count(*) AS failed_deliveries
    FROM notify.deliveries WHERE status = 'failed' GROUP BY ALL
),
payment_errors AS (
    SELECT CAST(changed_at AS DATE) AS day, count(DISTINCT invoice_id) AS payment_errors
    FROM billing.invoice_status_history
    WHERE to_status = 'payment_processing.failed' GROUP BY ALL
),
days AS (
    SELECT day FROM ingestion UNION SELECT day FROM late UNION SELECT day FROM deliveries
    UNION SELECT day FROM payment_errors UNION SELECT CAST($now AS DATE)
)
SELECT day, coalesce(files, 0), coalesce(received, 0), coalesce(accepted, 0),
       coalesce(duplicates, 0), coalesce(rejected, 0), coalesce(conflicts, 0),
       coalesce(late_events, 0), coalesce(stuck_invoices, 0), coalesce(failed_deliveries, 0),
       coalesce(payment_errors, 0), $now
FROM days
LEFT JOIN ingestion USING (day) LEFT JOIN late USING (day) LEFT JOIN stuck USING (day)
LEFT JOIN deliveries USING (day) LEFT JOIN payment_errors USING (day)
ORDER BY day;
