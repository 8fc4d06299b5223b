-- A voided invoice is not corrected: its corrections on no issued document yet (waiting for
-- approval, or approved with `corrections: next_invoice` and waiting for or sitting on a draft)
-- are withdrawn: rejected, with who voided the invoice and why, in the correction history.
-- Their lines leave the draft at the next rebuild (sql/billing/next_invoice_corrections.sql).
-- Parameters: $invoice_id, $reason, $actor, $now. Leaves temp table `withdrawn_corrections`
-- (correction_id, from_status) for the caller to count and drop.
CREATE OR REPLACE TEMP TABLE withdrawn_corrections AS
SELECT c.correction_id, c.status AS from_status
FROM billing.corrections c
WHERE c.invoice_id = $invoice_id
  AND (c.status = 'pending_approval'
       OR (c.status = 'approved' AND c.document_type = 'next_invoice'
           AND (c.document_id IS NULL
                OR c.document_id IN (SELECT invoice_id FROM billing.invoices
                                     WHERE status = 'draft'))));

INSERT INTO billing.correction_history
    (correction_id, from_status, to_status, changed_at, actor, reason)
SELECT correction_id, from_status, 'rejected', $now, $actor, 'invoice voided: ' || $reason
FROM withdrawn_corrections;

UPDATE billing.corrections
SET status = 'rejected', document_id = NULL, reason = 'invoice voided: ' || $reason,
    decided_by = $actor, decided_at = $now
WHERE correction_id IN (SELECT correction_id FROM withdrawn_corrections);
