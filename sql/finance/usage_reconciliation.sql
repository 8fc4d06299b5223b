-- finance.usage_reconciliation: per customer × meter × service period, the events accepted now
-- against what was rated and what the invoice bills. Rebuilt whole. Parameter: $now.
-- Reads macro decimal_text (sql/money_macros.sql) and temp table `current_usage`: the usage
-- aggregation run again now over the periods of billing.usage_quantities
-- (pipelines/reconciliation/table_builders.py: measure_current_usage), same matching rules as
-- rating, with events_after_cutoff counting those ingested after the issued invoice was rated.
--   matched               now, at rating and on the invoice agree
--   unbilled_late_events  the invoice was issued before some events came in: they are not on it
--                         (an adjustment document would bill them)
--   awaiting_rerating     the invoice is still a draft and events came in since it was rated:
--                         the next billing run re-rates it
--   quantity_mismatch     the invoice's usage line does not carry the quantity measured for it
--                         (or, issued, the quantity now differs without late events)
--   not_invoiced          usage was measured but no invoice of the subscription bills the month
DELETE FROM finance.usage_reconciliation;

INSERT INTO finance.usage_reconciliation
WITH slots AS (
    SELECT u.*, i.invoice_id, i.status AS invoice_status, i.issued_at IS NOT NULL AS issued
    FROM billing.usage_quantities u
    LEFT JOIN billing.invoices i
      ON i.subscription_id = u.subscription_id AND i.billing_month = u.billing_month
),
billed AS (
    SELECT invoice_id, meter_key, period_start, max(quantity) AS quantity_billed
    FROM billing.invoice_lines
    WHERE line_type = 'usage'
    GROUP BY ALL
),
compared AS (
    SELECT s.billing_month, s.customer_id, s.subscription_id, s.meter_key, s.period_start,
           s.period_end, s.invoice_id, s.invoice_status, s.issued,
           coalesce(c.events_counted, 0) AS events_accepted,
           s.events_counted AS events_rated,
           coalesce(c.quantity, 0) AS quantity_aggregated,
           s.quantity AS quantity_rated,
           b.quantity_billed,
           CASE WHEN s.issued THEN coalesce(c.events_after_cutoff, 0) ELSE 0 END
               AS unbilled_events
    FROM slots s
    LEFT JOIN current_usage c
      ON c.subscription_id = s.subscription_id AND c.meter_key = s.meter_key
     AND c.period_start = s.period_start
    LEFT JOIN billed b
      ON b.invoice_id = s.invoice_id AND b.meter_key = s.meter_key
     AND b.period_start = s.period_start
),
judged AS (
    SELECT *,
           CASE
               WHEN invoice_id IS NULL THEN 'not_invoiced'
               WHEN issued AND unbilled_events > 0 THEN 'unbilled_late_events'
               WHEN issued AND quantity_aggregated <> coalesce(quantity_billed, 0)
                   THEN 'quantity_mismatch'
               WHEN NOT issued AND (events_accepted <> events_rated
                                    OR quantity_aggregated <> quantity_rated)
                   THEN 'awaiting_rerating'
               WHEN NOT issued AND quantity_rated <> coalesce(quantity_billed, 0)
                   THEN 'quantity_mismatch'
               ELSE 'matched'
           END AS match_status
    FROM compared
)
SELECT billing_month, customer_id, subscription_id, meter_key, period_start, period_end,
       invoice_id, invoice_status, events_accepted, events_rated, quantity_aggregated,
       quantity_rated, quantity_billed, unbilled_events, match_status,
       CASE match_status
           WHEN 'matched' THEN events_accepted || ' events, quantity '
                               || decimal_text(quantity_aggregated)
           WHEN 'not_invoiced' THEN 'no invoice of ' || subscription_id || ' bills '
                                    || billing_month
           WHEN 'unbilled_late_events' THEN unbilled_events || ' event(s) accepted after invoice '
                || invoice_id || ' was rated; quantity now '
                || decimal_text(quantity_aggregated) || ', billed '
                || decimal_text(coalesce(quantity_billed, 0))
           WHEN 'awaiting_rerating' THEN (events_accepted - events_rated)
                || ' event(s) since the draft was rated; the next billing run re-rates it'
           ELSE 'quantity ' || decimal_text(quantity_aggregated) || ' now, '
                || decimal_text(quantity_rated) || ' rated, '
                || decimal_text(coalesce(quantity_billed, 0)) || ' billed'
       END,
       $now
FROM judged;
