-- Lines of the month's drafts, replaced with the re-rated ones (same ids); lines of invoices
-- that are no longer drafts stay as issued, and so do the lines of supplementary invoices.
-- Adjustment lines come back with the re-rated ones: the rating prices each draft with the
-- adjustments stored for it (billing.invoice_adjustments, pipelines/invoicing/adjustments.py).
-- Parameter: $billing_month. Reads temp table `draft_lines`; runs after sql/billing/invoices.sql.
DELETE FROM billing.invoice_lines
WHERE invoice_id IN (SELECT invoice_id FROM billing.invoices
                     WHERE billing_month = $billing_month AND status = 'draft'
                       AND corrects_invoice_id IS NULL)
   OR invoice_id NOT IN (SELECT invoice_id FROM billing.invoices);

INSERT INTO billing.invoice_lines (
    line_id, invoice_id, line_type, price_key, meter_key, description, quantity, unit_price,
    amount, period_start, period_end, tiers, position, tax_rate_key, tax_rate_percent,
    tax_inclusive, tax_amount
)
SELECT
    l.line_id, l.invoice_id, l.line_type, l.price_key, l.meter_key, l.description, l.quantity,
    l.unit_price, l.amount, l.period_start, l.period_end, l.tiers::JSON, l.position,
    l.tax_rate_key, l.tax_rate_percent, l.tax_inclusive, l.tax_amount
FROM draft_lines l
JOIN billing.invoices i USING (invoice_id)
WHERE i.status = 'draft';
