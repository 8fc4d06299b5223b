-- What settling did to each draft (temp table `credit_applications`: invoice_id, customer_id,
-- currency, used, carried_over): a `credit_balance` line after the draft's other lines (negative:
-- balance used; positive: credit carried over so the total is zero) and the customer's movement
-- (+ carried over, - used). Deterministic ids: one line and one movement per draft.
-- Parameter: $now.
INSERT INTO billing.invoice_lines (
    line_id, invoice_id, line_type, price_key, meter_key, description, quantity, unit_price,
    amount, period_start, period_end, tiers, position
)
SELECT
    'line_' || left(sha256(a.invoice_id || '|credit_balance'), 24),
    a.invoice_id,
    'credit_balance',
    'credit_balance',
    NULL,
    CASE WHEN a.carried_over > 0
         THEN 'Credit carried over to your credit balance'
         ELSE 'Credit balance applied' END,
    NULL, NULL,
    a.carried_over - a.used,
    i.period_start,
    i.period_end,
    NULL,
    CAST(coalesce((SELECT max(position) + 1 FROM billing.invoice_lines l
                   WHERE l.invoice_id = a.invoice_id), 0) AS INTEGER)
FROM credit_applications a
JOIN billing.invoices i ON i.invoice_id = a.invoice_id
WHERE a.carried_over - a.used <> 0;

INSERT INTO billing.customer_credit_movements
    (movement_id, customer_id, currency, amount, invoice_id, correction_id, created_at,
     description)
SELECT
    'ccm_' || left(sha256(a.invoice_id || '|settled'), 24),
    a.customer_id,
    a.currency,
    a.carried_over - a.used,
    a.invoice_id,
    NULL,
    $now,
    CASE WHEN a.carried_over > 0
         THEN 'carried over: the credits on invoice ' || a.invoice_id || ' exceed its charges'
         ELSE 'used by invoice ' || a.invoice_id END
FROM credit_applications a
WHERE a.carried_over - a.used <> 0;
