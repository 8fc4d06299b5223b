-- Corrections withdrawn because what they stand on was voided (contract section 9). Withdrawn =
-- rejected, with who voided what, when and why, in the correction and its history. Two cases:
--
-- 1. A voided invoice is not corrected: its corrections on no issued document yet (waiting for
--    approval, or approved with `corrections: next_invoice` and waiting for or sitting on a
--    draft) are withdrawn, with the void's actor and reason. Their lines leave the draft at the
--    next rebuild (sql/billing/next_invoice_corrections.sql). Parameters $invoice_id (NULL: no
--    invoice voided now), $reason, $actor.
-- 2. A correction whose document, a credit note or a supplementary invoice, was voided bills or
--    credits nothing any more (billing.correction_standing), whichever way it was voided
--    (`billing invoice void`, a credit note or invoice voided at Stripe): withdrawn with the
--    void's time, actor and cause from the document's status history, keeping the document it
--    was on; the credit it put on the customer's credit balance (the part beyond what remained
--    creditable) is taken back. It is no decision on its delta: the next re-run proposes the
--    difference again (a new correction; `revision` counts withdrawn ones too).
--    (A next_invoice correction whose carrying invoice is voided is not withdrawn: it goes back
--    to wait for the next draft, sql/billing/next_invoice_corrections.sql.)
--
-- Run by every void (pipelines/invoicing/corrections.withdraw_corrections) and at the start of
-- every billing run's corrections. Parameter: $now. Leaves temp table `withdrawn_corrections`
-- (correction_id, from_status, changed_at, actor, reason, keeps_document) for the caller to
-- count and drop.
CREATE OR REPLACE TEMP TABLE withdrawn_corrections AS
SELECT c.correction_id, c.status AS from_status, CAST($now AS TIMESTAMPTZ) AS changed_at,
       CAST($actor AS VARCHAR) AS actor, 'invoice voided: ' || CAST($reason AS VARCHAR) AS reason,
       false AS keeps_document
FROM billing.corrections c
WHERE c.invoice_id = $invoice_id
  AND (c.status = 'pending_approval'
       OR (c.status = 'approved' AND c.document_type = 'next_invoice'
           AND (c.document_id IS NULL
                OR c.document_id IN (SELECT invoice_id FROM billing.invoices
                                     WHERE status = 'draft'))));

INSERT INTO withdrawn_corrections
WITH on_voided AS (
    SELECT correction_id, status, document_type, document_id
    FROM billing.correction_standing
    WHERE document_voided AND status <> 'rejected'
),
documents AS (
    SELECT credit_note_id AS document_id, 'credit note ' || coalesce(credit_note_number,
           credit_note_id) AS label
    FROM billing.credit_notes
    WHERE credit_note_id IN (SELECT document_id FROM on_voided)
    UNION ALL
    SELECT invoice_id, 'supplementary invoice ' || coalesce(invoice_number, invoice_id)
    FROM billing.invoices
    WHERE invoice_id IN (SELECT document_id FROM on_voided)
),
voids AS (
    -- the latest void of each document: when, by whom, why
    SELECT document_id, changed_at, actor, cause
    FROM (SELECT credit_note_id AS document_id, changed_at, actor, cause
          FROM billing.credit_note_status_history WHERE to_status = 'voided'
          UNION ALL
          SELECT invoice_id, changed_at, actor, cause
          FROM billing.invoice_status_history WHERE to_status = 'voided')
    WHERE document_id IN (SELECT document_id FROM on_voided)
    QUALIFY row_number() OVER (PARTITION BY document_id ORDER BY changed_at DESC) = 1
)
SELECT o.correction_id, o.status, coalesce(v.changed_at, $now), coalesce(v.actor, 'billing_run'),
       d.label || ' voided' || coalesce(': ' || regexp_replace(v.cause, '^voided: ', ''), ''),
       true
FROM on_voided o
JOIN documents d USING (document_id)
LEFT JOIN voids v USING (document_id);

INSERT INTO billing.correction_history
    (correction_id, from_status, to_status, changed_at, actor, reason)
SELECT correction_id, from_status, 'rejected', changed_at, actor, reason
FROM withdrawn_corrections;

INSERT INTO billing.customer_credit_movements
    (movement_id, customer_id, currency, amount, invoice_id, correction_id, created_at,
     description)
SELECT 'ccm_' || left(sha256(m.movement_id || '|withdrawn'), 24), m.customer_id, m.currency,
       -m.amount, m.invoice_id, m.correction_id, w.changed_at,
       'taken back: correction ' || m.correction_id || ' withdrawn (' || w.reason || ')'
FROM billing.customer_credit_movements m
JOIN withdrawn_corrections w ON w.correction_id = m.correction_id AND w.keeps_document
WHERE m.amount > 0
  AND NOT EXISTS (SELECT 1 FROM billing.customer_credit_movements r
                  WHERE r.movement_id = 'ccm_' || left(sha256(m.movement_id || '|withdrawn'), 24));

UPDATE billing.corrections AS c
SET status = 'rejected',
    document_id = CASE WHEN w.keeps_document THEN c.document_id END,
    reason = w.reason, decided_by = w.actor, decided_at = w.changed_at
FROM withdrawn_corrections w
WHERE c.correction_id = w.correction_id;
