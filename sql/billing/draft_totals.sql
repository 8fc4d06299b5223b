-- Totals of the drafts from all their lines (rated, adjustment, correction, credit_balance), after
-- correction lines and credit balance lines were settled: subtotal = every line but discounts,
-- discount_total = what discount lines take off, total = subtotal - discount_total (the blocking
-- check `invoice_totals_match_lines` holds them to this). Supplementary invoices are left as made.
UPDATE billing.invoices AS i
SET subtotal = t.subtotal, discount_total = t.discount_total, total = t.total
FROM (
    SELECT invoice_id,
           coalesce(sum(amount) FILTER (WHERE line_type <> 'discount'), 0) AS subtotal,
           -coalesce(sum(amount) FILTER (WHERE line_type = 'discount'), 0) AS discount_total,
           coalesce(sum(amount), 0) AS total
    FROM billing.invoice_lines
    GROUP BY invoice_id
) t
WHERE i.invoice_id = t.invoice_id
  AND i.status = 'draft'
  AND i.corrects_invoice_id IS NULL
  AND (i.subtotal <> t.subtotal OR i.discount_total <> t.discount_total OR i.total <> t.total);
