-- The drafts to settle against their customer's credit balance: those whose lines add up to less
-- than zero (credit to carry over) and those of a customer with credit available in the draft's
-- currency, with the total of their lines before any credit_balance line and the balance
-- available from invoices past draft. Runs after sql/billing/credit_balance_reset.sql, so the
-- remaining movements are those of invoices past draft. Supplementary invoices (corrections
-- documents) are not settled. Ordered as the drafts are settled: per customer and currency, by
-- boundary, then invoice id.
WITH balances AS (
    SELECT customer_id, currency, sum(amount) AS available
    FROM billing.customer_credit_movements
    GROUP BY customer_id, currency
),
drafts AS (
    SELECT i.invoice_id, i.customer_id, i.currency, i.boundary,
           coalesce(sum(l.amount), 0)::DECIMAL(38, 12) AS total_before_credit
    FROM billing.invoices i
    LEFT JOIN billing.invoice_lines l ON l.invoice_id = i.invoice_id
    WHERE i.status = 'draft' AND i.corrects_invoice_id IS NULL
    GROUP BY i.invoice_id, i.customer_id, i.currency, i.boundary
)
SELECT d.invoice_id, d.customer_id, d.currency, d.total_before_credit,
       coalesce(b.available, 0)::DECIMAL(38, 12) AS available
FROM drafts d
LEFT JOIN balances b ON b.customer_id = d.customer_id AND b.currency = d.currency
WHERE d.total_before_credit < 0 OR coalesce(b.available, 0) > 0
ORDER BY d.customer_id, d.currency, d.boundary, d.invoice_id
