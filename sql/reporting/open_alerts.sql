-- The alerts open now, most severe first, then the oldest.
SELECT severity, alert_key, subject, detail, first_seen, last_seen, source
FROM health.alerts
ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
         first_seen, alert_key;
