-- Re-rated drafts that differ from an already issued (frozen) invoice: record what differs, once
-- per difference (last_seen moves on re-runs). The issued invoice itself is never touched.
-- Lines the rating never produces (correction and credit_balance lines of the policy
-- next_invoice, pipelines/invoicing/next_invoice.py) are left out of both sides.
-- Parameters: $now, $run_id. Reads temp tables `draft_invoices`, `draft_lines`.
INSERT INTO billing.invoice_differences (
    invoice_id, line_id, item, issued_amount, rerated_amount, first_seen, last_seen, run_id
)
WITH frozen AS (
    SELECT i.invoice_id,
           i.total - coalesce((SELECT sum(x.amount) FROM billing.invoice_lines x
                               WHERE x.invoice_id = i.invoice_id
                                 AND x.line_type IN ('correction', 'credit_balance')), 0)
               AS total
    FROM billing.invoices i
    JOIN draft_invoices d USING (invoice_id)
    WHERE i.status NOT IN ('draft', 'draft.syncing', 'draft.sync_failed')
), found AS (
    SELECT f.invoice_id, NULL AS line_id, 'total' AS item, f.total AS issued_amount,
           d.total AS rerated_amount
    FROM frozen f JOIN draft_invoices d USING (invoice_id)
    WHERE f.total <> d.total
    UNION ALL
    SELECT coalesce(il.invoice_id, dl.invoice_id), coalesce(il.line_id, dl.line_id),
           CASE WHEN il.line_id IS NULL THEN 'line added'
                WHEN dl.line_id IS NULL THEN 'line removed'
                ELSE 'line amount' END,
           il.amount, dl.amount
    FROM (SELECT * FROM billing.invoice_lines
          WHERE invoice_id IN (SELECT invoice_id FROM frozen)
            AND line_type NOT IN ('correction', 'credit_balance')) il
    FULL JOIN (SELECT * FROM draft_lines
               WHERE invoice_id IN (SELECT invoice_id FROM frozen)) dl USING (line_id)
    WHERE il.amount IS DISTINCT FROM dl.amount
)
SELECT invoice_id, line_id, item, issued_amount, rerated_amount, $now, $now, $run_id
FROM found
WHERE NOT EXISTS (
    SELECT 1 FROM billing.invoice_differences x
    WHERE x.invoice_id = found.invoice_id AND x.item = found.item
      AND x.line_id IS NOT DISTINCT FROM found.line_id
      AND x.rerated_amount IS NOT DISTINCT FROM found.rerated_amount
)
