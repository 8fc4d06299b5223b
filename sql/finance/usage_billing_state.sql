-- Temp table `usage_billing_state`: for every slot of billing.usage_quantities (subscription ×
-- meter × service period), how far its invoice bills it, counting what corrections bill
-- (contract section 9). Read by pipelines/reconciliation/table_builders.py (the ingestion
-- cutoffs to count events after) and sql/finance/usage_reconciliation.sql.
--
-- The slot's invoice is the subscription's ordinary invoice of the billing month (a
-- supplementary invoice, with corrects_invoice_id, bills corrections of it, never a slot of its
-- own). Once that invoice is past draft its usage lines never change; a later billing run rates
-- them again (billing.issued_line_ratings: the latest rating of each line; billing.usage_quantities:
-- the quantity measured for that rating) and records the difference as corrections.
--
-- The rule. A usage line bills the quantity of its latest rating once the amounts billed for it,
-- the issued amount plus the corrections on a document past draft (a supplementary invoice, a
-- credit note, or a later invoice's correction line, issued and not voided; or, for a decrease
-- nothing remained creditable for, the credit balance movement), equal that rating
-- and none of its corrections waits (pending approval, or approved without an issued document).
-- A slot bills its latest rating's quantity when all its usage lines do: the events ingested up
-- to that rating are billed, those ingested after it are not. Otherwise the slot is billed up to
-- the latest rating every earlier correction of which is billed (an issued correction whose
-- predecessors are all issued or rejected: issued + those corrections = the rating it came from,
-- at its detected_at), else up to the rating the invoice was issued with. Pending and rejected
-- corrections leave the events they would bill unbilled; so does one whose document was voided
-- (withdrawn: the next re-run proposes it again).
--
-- Columns:
--   frozen                 the invoice is past draft (its lines never change again)
--   issued_cutoff          when the issued amounts were rated (invoices.rated_at)
--   latest_cutoff          when the slot was last measured and rated (usage_quantities.rated_at)
--   billed_cutoff          events ingested up to it are billed (NULL: not frozen)
--   billed_at_latest       billed_cutoff is the latest rating
--   quantity_billed_issued the quantity on the issued usage line(s) (NULL without one)
--   pending_approval, awaiting_document: corrections of its lines in those states (ids, words)
--   rejected_at_latest     who rejected the delta of the latest rating, which one and why
CREATE OR REPLACE TEMP TABLE usage_billing_state AS
WITH slots AS (
    SELECT u.billing_month, u.subscription_id, u.meter_key, u.period_start,
           u.rated_at AS latest_cutoff, u.quantity AS latest_quantity,
           i.invoice_id, i.status AS invoice_status, i.rated_at AS issued_cutoff,
           i.invoice_id IS NOT NULL AND i.status <> 'draft' AND NOT starts_with(i.status, 'draft.')
               AND i.status <> 'discarded' AS frozen
    FROM billing.usage_quantities u
    LEFT JOIN billing.invoices i
      ON i.subscription_id = u.subscription_id AND i.billing_month = u.billing_month
     AND i.corrects_invoice_id IS NULL
),
usage_lines AS (
    SELECT s.subscription_id, s.meter_key, s.period_start, s.latest_cutoff, s.issued_cutoff,
           l.invoice_id, l.line_id, l.quantity, l.amount AS issued_amount,
           coalesce(r.rated_amount, l.amount) AS latest_amount,
           coalesce(r.rated_at, s.issued_cutoff) AS line_rated_at
    FROM slots s
    JOIN billing.invoice_lines l
      ON l.invoice_id = s.invoice_id AND l.line_type = 'usage' AND l.meter_key = s.meter_key
     AND l.period_start = s.period_start
    LEFT JOIN billing.issued_line_ratings r
      ON r.invoice_id = l.invoice_id AND r.line_id = l.line_id
    WHERE s.frozen
),
documented AS (
    -- corrections on a document the customer has been sent
    SELECT l.correction_id
    FROM billing.invoice_lines l JOIN billing.invoices i USING (invoice_id)
    WHERE l.correction_id IS NOT NULL AND i.issued_at IS NOT NULL AND i.status <> 'voided'
    UNION
    SELECT l.correction_id
    FROM billing.credit_note_lines l JOIN billing.credit_notes n USING (credit_note_id)
    WHERE l.correction_id IS NOT NULL AND n.issued_at IS NOT NULL AND n.status <> 'voided'
    UNION
    -- a decrease of which nothing remained creditable on the invoice: credited at once to the
    -- customer's credit balance, the movement being its document
    SELECT c.correction_id
    FROM billing.corrections c
    JOIN billing.customer_credit_movements m ON m.movement_id = c.document_id
    WHERE c.document_type = 'credit_note'
),
corrections AS (
    -- billing.correction_standing: `covers` (not rejected, its document not voided), `declined`
    -- (rejected by a decision; one withdrawn with its voided document is neither)
    SELECT c.invoice_id, c.line_id, c.correction_id, c.status, c.delta, c.rated_amount,
           c.detected_at, c.decided_by, c.reason, c.declined,
           c.status = 'approved' AND d.correction_id IS NOT NULL AS billed,
           c.covers AND d.correction_id IS NULL AS waiting
    FROM billing.correction_standing c
    LEFT JOIN documented d USING (correction_id)
    WHERE c.line_id IN (SELECT line_id FROM usage_lines)
),
chained AS (
    -- how many corrections of the line wait at or before each one
    SELECT *,
           sum(CASE WHEN waiting THEN 1 ELSE 0 END) OVER (
               PARTITION BY invoice_id, line_id ORDER BY detected_at, correction_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS waiting_so_far
    FROM corrections
),
line_state AS (
    SELECT l.subscription_id, l.meter_key, l.period_start, l.line_id, l.quantity,
           l.latest_cutoff, l.issued_cutoff, l.line_rated_at, l.issued_amount, l.latest_amount,
           coalesce(sum(c.delta) FILTER (WHERE c.billed), 0) AS billed_delta,
           count(c.correction_id) FILTER (WHERE c.waiting) AS waiting,
           max(c.detected_at) FILTER (WHERE c.billed AND c.waiting_so_far = 0)
               AS billed_chain_at,
           string_agg(c.correction_id, ', ' ORDER BY c.detected_at, c.correction_id)
               FILTER (WHERE c.waiting AND c.status = 'pending_approval') AS pending_approval,
           string_agg(c.correction_id, ', ' ORDER BY c.detected_at, c.correction_id)
               FILTER (WHERE c.waiting AND c.status = 'approved') AS awaiting_document,
           string_agg(coalesce(c.decided_by, '?') || ' rejected correction '
                      || c.correction_id || coalesce(' (' || c.reason || ')', ''), ', '
                      ORDER BY c.detected_at, c.correction_id)
               FILTER (WHERE c.declined AND c.rated_amount = l.latest_amount)
               AS rejected_at_latest
    FROM usage_lines l
    LEFT JOIN chained c ON c.invoice_id = l.invoice_id AND c.line_id = l.line_id
    GROUP BY l.subscription_id, l.meter_key, l.period_start, l.line_id, l.quantity,
             l.latest_cutoff, l.issued_cutoff, l.line_rated_at, l.issued_amount, l.latest_amount
),
lines_judged AS (
    SELECT *,
           issued_amount + billed_delta = latest_amount AND waiting = 0
               AND line_rated_at = latest_cutoff
               AS at_latest,
           greatest(issued_cutoff, coalesce(billed_chain_at, issued_cutoff)) AS chain_cutoff
    FROM line_state
),
slot_lines AS (
    SELECT subscription_id, meter_key, period_start,
           bool_and(at_latest) AS all_at_latest,
           min(chain_cutoff) AS chain_cutoff,
           max(quantity) AS quantity_billed_issued,
           string_agg(pending_approval, ', ') AS pending_approval,
           string_agg(awaiting_document, ', ') AS awaiting_document,
           string_agg(rejected_at_latest, ', ') AS rejected_at_latest
    FROM lines_judged
    GROUP BY ALL
)
SELECT s.billing_month, s.subscription_id, s.meter_key, s.period_start, s.invoice_id,
       s.invoice_status, s.frozen,
       CASE WHEN s.frozen THEN s.issued_cutoff END AS issued_cutoff,
       CASE WHEN s.frozen THEN s.latest_cutoff END AS latest_cutoff,
       CASE WHEN NOT s.frozen THEN NULL
            WHEN coalesce(l.all_at_latest, false) THEN s.latest_cutoff
            ELSE coalesce(l.chain_cutoff, s.issued_cutoff) END AS billed_cutoff,
       s.frozen AND coalesce(l.all_at_latest, false) AS billed_at_latest,
       s.latest_quantity,
       l.quantity_billed_issued,
       l.pending_approval, l.awaiting_document, l.rejected_at_latest
FROM slots s
LEFT JOIN slot_lines l USING (subscription_id, meter_key, period_start);
