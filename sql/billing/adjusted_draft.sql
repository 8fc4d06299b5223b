-- A draft adjusted by hand, priced again by the rating's own rules
-- (pipelines/invoicing/adjustments.py): its adjustment and discount lines replaced, its totals
-- summed from all its lines. Its rated lines are never touched.
-- Parameter: $invoice_id. Reads temp table `adjusted_lines` (every line of the adjusted draft,
-- shaped like billing.invoice_lines, tiers as JSON text).
DELETE FROM billing.invoice_lines
WHERE invoice_id = $invoice_id AND line_type IN ('adjustment', 'discount');

INSERT INTO billing.invoice_lines (
    line_id, invoice_id, line_type, price_key, meter_key, description, quantity, unit_price,
    amount, period_start, period_end, tiers, position
)
SELECT
    l.line_id, l.invoice_id, l.line_type, l.price_key, l.meter_key, l.description, l.quantity,
    l.unit_price, l.amount, l.period_start, l.period_end, l.tiers::JSON, l.position
FROM adjusted_lines l
WHERE l.invoice_id = $invoice_id AND l.line_type IN ('adjustment', 'discount');

UPDATE billing.invoices AS i
SET subtotal = t.subtotal, discount_total = t.discount_total, total = t.total
FROM (
    SELECT coalesce(sum(amount) FILTER (WHERE line_type <> 'discount'), 0) AS subtotal,
           -coalesce(sum(amount) FILTER (WHERE line_type = 'discount'), 0) AS discount_total,
           coalesce(sum(amount), 0) AS total
    FROM adjusted_lines
    WHERE invoice_id = $invoice_id
) t
WHERE i.invoice_id = $invoice_id;
