-- A supplementary invoice for approved increases of one invoice: an ordinary invoice of the same
-- customer, subscription, billing month and service period with `corrects_invoice_id`, one
-- `correction` line per correction carrying the positive delta and the line it corrects. It
-- leaves draft like any invoice (sql/billing/invoices_due.sql) after the grace period; it is due
-- as many days after its issue as the corrected invoice was after its boundary.
-- Parameters: $document_id, $invoice_id, $ids (correction ids), $now, $issue_after, $actor.
INSERT INTO billing.invoices (
    invoice_id, invoice_number, customer_id, subscription_id, plan_key, billing_month, boundary,
    period_start, period_end, currency, subtotal, discount_total, total, status,
    collection_method, due_date, billing_profile, app, issue_after, issued_at, created_at,
    rated_at, corrects_invoice_id, tax_rate_key, tax_rate_percent, tax_inclusive, tax_country,
    tax_region, tax_note
)
SELECT $document_id, NULL, i.customer_id, i.subscription_id, i.plan_key, i.billing_month,
       i.boundary, i.period_start, i.period_end, i.currency, t.total, 0, t.total, 'draft',
       i.collection_method,
       CASE WHEN i.due_date IS NOT NULL
            THEN CAST(CAST($issue_after AS DATE)
                      + to_days(CAST(date_diff('day', i.boundary, i.due_date) AS INTEGER))
                      AS DATE) END,
       i.billing_profile, i.app, $issue_after, NULL, $now, $now, i.invoice_id,
       -- the corrected invoice's rate: its lines are taxed at it (pipelines/invoicing/document_tax.py)
       i.tax_rate_key, i.tax_rate_percent, i.tax_inclusive, i.tax_country, i.tax_region,
       i.tax_note
FROM billing.invoices i,
     (SELECT sum(delta) AS total FROM billing.corrections
      WHERE list_contains($ids, correction_id)) t
WHERE i.invoice_id = $invoice_id
  AND NOT EXISTS (SELECT 1 FROM billing.invoices WHERE invoice_id = $document_id);

INSERT INTO billing.invoice_lines (
    line_id, invoice_id, line_type, price_key, meter_key, description, quantity, unit_price,
    amount, period_start, period_end, tiers, position, corrects_line_id, corrects_invoice_id,
    correction_id
)
SELECT 'line_' || left(sha256($document_id || '|' || c.correction_id), 24), $document_id,
       'correction', c.price_key, c.meter_key, 'Correction: ' || c.description, NULL, NULL,
       c.delta, c.period_start, c.period_end, NULL,
       CAST(row_number() OVER (ORDER BY c.line_id) AS INTEGER) - 1, c.line_id, c.invoice_id,
       c.correction_id
FROM billing.corrections c
WHERE list_contains($ids, c.correction_id)
  AND NOT EXISTS (SELECT 1 FROM billing.invoice_lines WHERE invoice_id = $document_id);

INSERT INTO billing.invoice_status_history
    (invoice_id, from_status, to_status, changed_at, cause, actor)
SELECT $document_id, NULL, 'draft', $now, 'supplementary invoice correcting ' || $invoice_id,
       $actor
WHERE NOT EXISTS (SELECT 1 FROM billing.invoice_status_history WHERE invoice_id = $document_id);
