-- Temp table journal_document_lines: every line of every issued invoice and credit note, as the
-- journal posts it (pipelines/accounting/journal.py, docs/accounting.md). Voided documents are
-- included (their issue entry stands; a void entry reverses it).
--   net_amount    the line's revenue: its amount less an inclusive tax (signed as on the
--                 document: credit note lines are negative)
--   tax_amount    its tax (the same sign); lines taxed before the ledger knew tax carry none: 0
--   basis         deferred: an in-advance line, its service starting at or after its invoice's
--                 cut (boundary); at_issue: usage and in-arrears fees. A line that corrects
--                 another (supplementary invoice, next-invoice correction, credit note) takes
--                 the basis and service period of the line it corrects; a credit note naming
--                 no line (a manual credit of the whole invoice) is at_issue, in its issue month
--   side_account  the revenue account of the line's plan and price (else plan, else default);
--                 contra revenue for a credit note line
CREATE OR REPLACE TEMP TABLE journal_document_lines AS
WITH revenue AS (
    SELECT plan_key, price_key, account FROM billing.accounts WHERE role = 'revenue'
),
default_revenue AS (
    SELECT coalesce(any_value(account) FILTER (WHERE plan_key IS NULL), $default_revenue)
        AS account
    FROM revenue
),
contra AS (
    SELECT coalesce(any_value(account), $default_contra) AS account
    FROM billing.accounts WHERE role = 'contra_revenue'
),
corrected AS (
    SELECT l.line_id, l.price_key, l.period_start, l.period_end,
           CASE WHEN l.period_start >= i.boundary THEN 'deferred' ELSE 'at_issue' END AS basis
    FROM billing.invoice_lines l JOIN billing.invoices i USING (invoice_id)
),
document_lines AS (
    SELECT 'invoice' AS document_type, i.invoice_id AS document_id,
           i.invoice_number AS document_number, i.customer_id, i.currency, i.app,
           i.issued_at, i.status, i.plan_key, l.line_id, l.position,
           coalesce(c.price_key, l.price_key) AS price_key,
           l.amount - CASE WHEN coalesce(l.tax_inclusive, false)
                           THEN coalesce(l.tax_amount, 0) ELSE 0 END AS net_amount,
           coalesce(l.tax_amount, 0) AS tax_amount,
           coalesce(c.basis, CASE WHEN l.period_start >= i.boundary THEN 'deferred'
                                  ELSE 'at_issue' END) AS basis,
           coalesce(c.period_start, l.period_start) AS service_start,
           coalesce(c.period_end, l.period_end) AS service_end
    FROM billing.invoice_lines l
    JOIN billing.invoices i USING (invoice_id)
    LEFT JOIN corrected c ON c.line_id = l.corrects_line_id
    WHERE i.issued_at IS NOT NULL
    UNION ALL
    SELECT 'credit_note', n.credit_note_id, n.credit_note_number, n.customer_id, n.currency,
           n.app, n.issued_at, n.status, i.plan_key, cl.credit_note_line_id, cl.position,
           c.price_key,
           cl.amount - CASE WHEN coalesce(cl.tax_inclusive, false)
                            THEN coalesce(cl.tax_amount, 0) ELSE 0 END,
           coalesce(cl.tax_amount, 0),
           coalesce(c.basis, 'at_issue'),
           coalesce(c.period_start, CAST(n.issued_at AS DATE)),
           coalesce(c.period_end, CAST(n.issued_at AS DATE))
    FROM billing.credit_note_lines cl
    JOIN billing.credit_notes n USING (credit_note_id)
    JOIN billing.invoices i ON i.invoice_id = n.invoice_id
    LEFT JOIN corrected c ON c.line_id = cl.corrects_line_id
    WHERE n.issued_at IS NOT NULL
)
SELECT d.*,
       CASE WHEN d.document_type = 'credit_note' THEN (SELECT account FROM contra)
            ELSE coalesce(by_price.account, by_plan.account,
                          (SELECT account FROM default_revenue)) END AS side_account
FROM document_lines d
LEFT JOIN revenue by_price
  ON by_price.plan_key = d.plan_key AND by_price.price_key = d.price_key
LEFT JOIN revenue by_plan
  ON by_plan.plan_key = d.plan_key AND by_plan.price_key IS NULL;
