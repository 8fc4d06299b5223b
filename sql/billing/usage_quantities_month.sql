-- The month's measured usage replaces what an earlier run of the same month stored
-- (delete-then-insert per partition). Parameters: $billing_month, $rated_at.
-- Reads temp table `measured_usage` (the frame of pipelines.invoicing.usage_measurement.aggregate_usage).
DELETE FROM billing.usage_quantities
WHERE billing_month = $billing_month
   OR (subscription_id, meter_key, period_start) IN (
        SELECT (subscription_id, meter_key, period_start) FROM measured_usage);

INSERT INTO billing.usage_quantities (
    billing_month, subscription_id, customer_id, meter_key, period_start, period_end, quantity,
    events_counted, rated_at
)
SELECT $billing_month, subscription_id, customer_id, meter_key, period_start, period_end,
       quantity, events_counted, $rated_at
FROM measured_usage;
