-- Before drafts are settled against the customers' credit balances (contract section 9): what a
-- draft used or carried over is provisional (the draft can still change), so its credit_balance
-- line and its movements are removed here and settled again; so are the movements of invoices
-- that no longer exist (drafts the catalog stopped producing). A voided invoice gives back what it
-- used and takes back what it carried over (one reversing movement). Parameter: $now.
DELETE FROM billing.invoice_lines
WHERE line_type = 'credit_balance'
  AND invoice_id IN (SELECT invoice_id FROM billing.invoices
                     WHERE status = 'draft' AND corrects_invoice_id IS NULL);

DELETE FROM billing.customer_credit_movements AS m
WHERE m.invoice_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM billing.invoices i
                  WHERE i.invoice_id = m.invoice_id AND i.status <> 'draft');

INSERT INTO billing.customer_credit_movements
    (movement_id, customer_id, currency, amount, invoice_id, correction_id, created_at,
     description)
SELECT 'ccm_' || left(sha256(m.invoice_id || '|voided'), 24), m.customer_id, m.currency,
       -sum(m.amount), m.invoice_id, NULL, $now,
       'invoice ' || coalesce(any_value(i.invoice_number), m.invoice_id)
           || ' voided: its credit balance movements reversed'
FROM billing.customer_credit_movements m
JOIN billing.invoices i ON i.invoice_id = m.invoice_id AND i.status = 'voided'
GROUP BY m.invoice_id, m.customer_id, m.currency
HAVING sum(m.amount) <> 0;
