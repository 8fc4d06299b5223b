-- Alert events: `alert.opened` for every open alert of health.alerts not yet announced and
-- `alert.resolved` for every closed one of health.alert_history, for the finance and operations
-- channels (those that name no customers and subscribe to the type). Idempotent: message_id =
-- 'msg_' + sha256(type|alert_key|first_seen or closed_at), skipped when already in
-- notify.events. An alert about a failed delivery of an alert event is not announced (a broken
-- channel would otherwise feed itself). Parameters: none.
-- Reads macro notify_instant (sql/notify/documents.sql).
-- Leaves temp table `notify_new_events` for sql/notify/events_insert.sql and deliveries.sql.

CREATE OR REPLACE TEMP TABLE notify_new_events AS
WITH alert_messages AS (
    SELECT message_id FROM notify.events WHERE starts_with(event_type, 'alert.')
),
changes AS (
    SELECT 'alert.opened' AS event_type, alert_key, severity, subject, detail, source,
           first_seen, last_seen, CAST(NULL AS TIMESTAMPTZ) AS closed_at,
           first_seen AS occurred_at
    FROM health.alerts
    UNION ALL
    SELECT 'alert.resolved', alert_key, severity, subject, detail, source,
           first_seen, last_seen, closed_at, closed_at
    FROM health.alert_history
),
fresh AS (
    SELECT *,
           'msg_' || left(sha256(event_type || '|' || alert_key || '|'
                                 || CAST(epoch_us(occurred_at) AS VARCHAR)), 32) AS message_id
    FROM changes
    WHERE NOT (starts_with(alert_key, 'notification_failed:')
               AND split_part(alert_key, ':', 3) IN (SELECT message_id FROM alert_messages))
)
SELECT message_id, event_type, CAST(NULL AS VARCHAR) AS invoice_id,
       CAST(NULL AS VARCHAR) AS credit_note_id, CAST(NULL AS VARCHAR) AS customer_id, CAST(NULL AS VARCHAR) AS from_status,
       CAST(NULL AS VARCHAR) AS to_status, occurred_at,
       CAST(json_object(
           'type', event_type,
           'timestamp', notify_instant(occurred_at),
           'data', json_object('alert', json_object(
               'key', alert_key, 'severity', severity, 'subject', subject, 'detail', detail,
               'source', source, 'first_seen', notify_instant(first_seen),
               'last_seen', notify_instant(last_seen),
               'closed_at', notify_instant(closed_at)))) AS VARCHAR) AS payload
FROM fresh
WHERE message_id NOT IN (SELECT message_id FROM notify.events)
QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY last_seen DESC) = 1;
