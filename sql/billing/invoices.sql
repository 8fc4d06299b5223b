-- Replace the month's drafts with the re-rated ones, in place and with the same ids; insert new
-- invoices; drop drafts the catalog no longer produces. Issued invoices are left as they are, and
-- so are supplementary invoices (corrections, which no rating produces).
-- Parameters: $billing_month. Reads temp table `draft_invoices`.
DELETE FROM billing.invoices
WHERE billing_month = $billing_month
  AND status = 'draft'
  AND corrects_invoice_id IS NULL
  AND invoice_id NOT IN (SELECT invoice_id FROM draft_invoices);

INSERT OR REPLACE INTO billing.invoices (
    invoice_id, invoice_number, customer_id, subscription_id, plan_key, billing_month, boundary,
    period_start, period_end, currency, subtotal, discount_total, total, status,
    collection_method, due_date, billing_profile, app, issue_after, issued_at, created_at,
    rated_at, tax_rate_key, tax_rate_percent, tax_inclusive, tax_country, tax_region, tax_note,
    tax_total, total_including_tax
)
SELECT
    d.invoice_id, NULL, d.customer_id, d.subscription_id, d.plan_key, d.billing_month,
    d.boundary, d.period_start, d.period_end, d.currency, d.subtotal, d.discount_total, d.total,
    'draft', d.collection_method, d.due_date, d.billing_profile, d.app, d.issue_after, NULL,
    coalesce(existing.created_at, d.rated_at), d.rated_at, d.tax_rate_key, d.tax_rate_percent,
    d.tax_inclusive, d.tax_country, d.tax_region, d.tax_note, d.tax_total, d.total_including_tax
FROM draft_invoices d
LEFT JOIN billing.invoices existing USING (invoice_id)
WHERE existing.invoice_id IS NULL OR existing.status = 'draft';
