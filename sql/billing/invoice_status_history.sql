-- Every transition with its time, cause and actor: here, the creation of new drafts and the
-- discarding of drafts the catalog no longer produces (supplementary invoices, which no rating
-- produces, are never discarded: sql/billing/invoices.sql keeps them). Parameters: $now,
-- $billing_month.
-- Reads temp table `draft_invoices`; runs before sql/billing/invoices.sql.
INSERT INTO billing.invoice_status_history (invoice_id, from_status, to_status, changed_at, cause, actor)
SELECT d.invoice_id, NULL, 'draft', $now, 'rated: service period closed', 'billing_run'
FROM draft_invoices d
WHERE d.invoice_id NOT IN (SELECT invoice_id FROM billing.invoices)
UNION ALL
SELECT i.invoice_id, 'draft', 'discarded', $now,
       'no longer produced by the catalog (subscription or plan changed)', 'billing_run'
FROM billing.invoices i
WHERE i.billing_month = $billing_month
  AND i.status = 'draft'
  AND i.corrects_invoice_id IS NULL
  AND i.invoice_id NOT IN (SELECT invoice_id FROM draft_invoices);
