-- finance.usage_reconciliation: per customer × meter × service period, the events accepted now
-- against what was rated and what the invoice, with its corrections, bills. Rebuilt whole.
-- Parameter: $now. Reads macro decimal_text (sql/money_macros.sql) and temp tables
--   usage_billing_state  how far the slot's invoice and its corrections bill it, and the
--                        ingestion cutoffs that follows from (sql/finance/usage_billing_state.sql)
--   current_usage        the usage aggregation run again now over the periods of
--                        billing.usage_quantities, same matching rules as rating
--   usage_events_after   per slot and cutoff, the events ingested after it
--                        (pipelines/reconciliation/table_builders.py: measure_current_usage)
--
-- For an invoice past draft: late events are those ingested after the invoice's issued amounts
-- were rated; unbilled events those ingested after the rating its corrections bill up to (the
-- rule is written down in usage_billing_state.sql); events_billed_by_corrections the difference.
-- quantity_billed is the quantity of that rating: the issued line's, the latest measured one, or
-- (for an earlier correction's rating, whose quantity is not kept) the quantity now when no
-- event came after it.
--   matched               now, at rating and as billed agree
--   unbilled_late_events  events came after the latest rating: the next billing run re-rates the
--                         period and proposes a correction (or nothing changes the amount)
--   awaiting_approval     a correction of its line that would bill them waits for a person
--                         (`billing corrections approve|reject`)
--   awaiting_correction   approved, its supplementary invoice or credit note not issued yet
--   correction_rejected   a person rejected the correction of the latest rating: the events
--                         stay unbilled by that decision
--   awaiting_rerating     the invoice is still a draft and events came in since it was rated:
--                         the next billing run re-rates it
--   quantity_mismatch     the invoice's usage line does not carry the quantity measured for it,
--                         and no correction explains it
--   not_invoiced          usage was measured but no invoice of the subscription bills the month
--                         (or its invoice was voided)
DELETE FROM finance.usage_reconciliation;

INSERT INTO finance.usage_reconciliation BY NAME
WITH slots AS (
    SELECT u.*, b.invoice_id, b.invoice_status, b.frozen, b.issued_cutoff, b.latest_cutoff,
           b.billed_cutoff, b.billed_at_latest, b.latest_quantity, b.quantity_billed_issued,
           b.pending_approval, b.awaiting_document, b.rejected_at_latest
    FROM billing.usage_quantities u
    JOIN usage_billing_state b USING (subscription_id, meter_key, period_start)
),
draft_billed AS (
    SELECT invoice_id, meter_key, period_start, max(quantity) AS quantity_billed
    FROM billing.invoice_lines
    WHERE line_type = 'usage'
    GROUP BY ALL
),
compared AS (
    SELECT s.billing_month, s.customer_id, s.subscription_id, s.meter_key, s.period_start,
           s.period_end, s.invoice_id, s.invoice_status, s.frozen,
           s.frozen AND s.invoice_status = 'voided' AS voided,
           s.billed_at_latest, s.pending_approval, s.awaiting_document, s.rejected_at_latest,
           coalesce(c.events_counted, 0) AS events_accepted,
           s.events_counted AS events_rated,
           coalesce(c.quantity, 0) AS quantity_aggregated,
           s.quantity AS quantity_rated,
           coalesce(late.events_after_cutoff, 0) AS late_events,
           coalesce(unbilled.events_after_cutoff, 0) AS after_billed,
           coalesce(unseen.events_after_cutoff, 0) AS after_latest,
           CASE WHEN NOT s.frozen THEN d.quantity_billed
                WHEN s.billed_at_latest THEN s.latest_quantity
                WHEN s.billed_cutoff = s.issued_cutoff THEN s.quantity_billed_issued
                WHEN coalesce(unbilled.events_after_cutoff, 0) = 0 THEN coalesce(c.quantity, 0)
           END AS frozen_or_draft_billed
    FROM slots s
    LEFT JOIN current_usage c
      ON c.subscription_id = s.subscription_id AND c.meter_key = s.meter_key
     AND c.period_start = s.period_start
    LEFT JOIN draft_billed d
      ON d.invoice_id = s.invoice_id AND d.meter_key = s.meter_key
     AND d.period_start = s.period_start
    LEFT JOIN usage_events_after late
      ON late.subscription_id = s.subscription_id AND late.meter_key = s.meter_key
     AND late.period_start = s.period_start AND late.cutoff = s.issued_cutoff
    LEFT JOIN usage_events_after unbilled
      ON unbilled.subscription_id = s.subscription_id AND unbilled.meter_key = s.meter_key
     AND unbilled.period_start = s.period_start AND unbilled.cutoff = s.billed_cutoff
    LEFT JOIN usage_events_after unseen
      ON unseen.subscription_id = s.subscription_id AND unseen.meter_key = s.meter_key
     AND unseen.period_start = s.period_start AND unseen.cutoff = s.latest_cutoff
),
counted AS (
    SELECT *,
           CASE WHEN frozen AND NOT voided THEN after_billed ELSE 0 END AS unbilled_events,
           CASE WHEN frozen AND NOT voided THEN late_events - after_billed ELSE 0 END
               AS events_billed_by_corrections,
           CASE WHEN voided THEN 0 ELSE frozen_or_draft_billed END AS quantity_billed
    FROM compared
),
judged AS (
    SELECT *,
           CASE WHEN unbilled_events > 0 THEN unbilled_events || ' event(s) unbilled'
                ELSE 'quantity ' || decimal_text(quantity_aggregated) || ' now, '
                     || coalesce(decimal_text(quantity_billed), 'up to an earlier correction')
                     || ' billed' END AS unbilled_text,
           CASE
               WHEN invoice_id IS NULL OR voided THEN 'not_invoiced'
               WHEN frozen AND unbilled_events = 0
                    AND quantity_billed IS NOT DISTINCT FROM quantity_aggregated THEN 'matched'
               WHEN frozen AND after_latest > 0 THEN 'unbilled_late_events'
               WHEN frozen AND pending_approval IS NOT NULL THEN 'awaiting_approval'
               WHEN frozen AND awaiting_document IS NOT NULL THEN 'awaiting_correction'
               WHEN frozen AND rejected_at_latest IS NOT NULL THEN 'correction_rejected'
               WHEN frozen AND unbilled_events > 0 THEN 'unbilled_late_events'
               WHEN frozen THEN 'quantity_mismatch'
               WHEN events_accepted <> events_rated OR quantity_aggregated <> quantity_rated
                   THEN 'awaiting_rerating'
               WHEN quantity_rated <> coalesce(quantity_billed, 0) THEN 'quantity_mismatch'
               ELSE 'matched'
           END AS match_status
    FROM counted
)
SELECT billing_month, customer_id, subscription_id, meter_key, period_start, period_end,
       invoice_id, invoice_status, events_accepted, events_rated, quantity_aggregated,
       quantity_rated, quantity_billed, unbilled_events, events_billed_by_corrections,
       match_status,
       CASE match_status
           WHEN 'matched' THEN events_accepted || ' events, quantity '
                               || decimal_text(quantity_aggregated)
                               || CASE WHEN events_billed_by_corrections > 0
                                       THEN ' (' || events_billed_by_corrections
                                            || ' late event(s) billed by corrections)'
                                       ELSE '' END
           WHEN 'not_invoiced' THEN
               CASE WHEN voided THEN 'invoice ' || invoice_id || ' was voided: it bills nothing'
                    ELSE 'no invoice of ' || subscription_id || ' bills ' || billing_month END
           WHEN 'unbilled_late_events' THEN unbilled_events
                || ' event(s) accepted after invoice ' || invoice_id
                || CASE WHEN events_billed_by_corrections > 0
                        THEN ' and its corrections were' ELSE ' was' END
                || ' rated; quantity now ' || decimal_text(quantity_aggregated) || ', billed '
                || coalesce(decimal_text(quantity_billed), 'up to an earlier correction')
                || CASE WHEN after_latest > 0
                        THEN '; the next billing run re-rates it' ELSE '' END
           WHEN 'awaiting_approval' THEN unbilled_text || ': correction ' || pending_approval
                || ' of invoice ' || invoice_id || ' waits for approval'
           WHEN 'awaiting_correction' THEN unbilled_text || ': correction ' || awaiting_document
                || ' of invoice ' || invoice_id || ' is approved, its document not issued yet'
           WHEN 'correction_rejected' THEN unbilled_text || ': ' || rejected_at_latest
           WHEN 'awaiting_rerating' THEN (events_accepted - events_rated)
                || ' event(s) since the draft was rated; the next billing run re-rates it'
           ELSE 'quantity ' || decimal_text(quantity_aggregated) || ' now, '
                || decimal_text(quantity_rated) || ' rated, '
                || coalesce(decimal_text(quantity_billed), 'nothing') || ' billed'
       END AS detail,
       $now AS reconciled_at
FROM judged;
