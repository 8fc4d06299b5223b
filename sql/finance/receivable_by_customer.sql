-- Needs temp view provider_held (sql/finance/provider_held.sql).
-- Receivable per customer and currency: the journal's balance of the receivable account
-- against what the ledger's open documents say is owed (the blocking check
-- receivable_matches_open_documents, docs/accounting.md). Per issued invoice:
--   open (issued .. overdue)      total incl. tax less its credit notes (incl. tax, not voided)
--   paid, partially_/refunded     refunded less the credit notes issued after the payment
--                                 (a credit after payment is owed back until refunded)
--   uncollectible                 0 (written off)
--   voided                        less its credit notes still standing
WITH receivable AS (
    SELECT coalesce(any_value(account), $default_receivable) AS account
    FROM billing.accounts WHERE role = 'receivable'
),
journal AS (
    SELECT l.customer_id, l.currency, sum(l.debit - l.credit) AS balance
    FROM finance.journal_lines l
    WHERE l.account = (SELECT account FROM receivable)
    GROUP BY ALL
),
paid AS (
    SELECT invoice_id, min(changed_at) AS paid_at
    FROM billing.invoice_status_history WHERE to_status = 'paid' GROUP BY invoice_id
),
credits AS (
    SELECT n.invoice_id,
           sum(coalesce(n.total_including_tax, n.total)) AS credited,
           sum(coalesce(n.total_including_tax, n.total)) FILTER (
               WHERE p.paid_at IS NOT NULL AND n.issued_at >= p.paid_at) AS after_paid
    FROM billing.credit_notes n LEFT JOIN paid p USING (invoice_id)
    WHERE n.issued_at IS NOT NULL AND n.status <> 'voided'
    GROUP BY n.invoice_id
),
refunds AS (
    -- the refund of the provider's primary copy (the one our sync mapped), as the journal
    -- posts it: never another copy's (a duplicate made by hand at the provider)
    SELECT provider, invoice_id, amount_refunded AS refunded FROM provider_held
),
documents AS (
    SELECT i.customer_id, i.currency,
           CASE
               WHEN i.status = 'voided' THEN -coalesce(c.credited, 0)
               WHEN i.status = 'uncollectible' THEN 0
               WHEN i.status IN ('paid', 'partially_refunded', 'refunded') THEN
                   least(CASE WHEN coalesce(r.refunded, 0) > 0 THEN r.refunded
                              WHEN i.status = 'refunded'
                              THEN coalesce(i.total_including_tax, i.total)
                                   - coalesce(c.credited, 0) + coalesce(c.after_paid, 0)
                              ELSE 0 END,
                         coalesce(i.total_including_tax, i.total)
                             - coalesce(c.credited, 0) + coalesce(c.after_paid, 0))
                   - coalesce(c.after_paid, 0)
               ELSE coalesce(i.total_including_tax, i.total) - coalesce(c.credited, 0)
           END AS owed
    FROM billing.invoices i
    LEFT JOIN credits c USING (invoice_id)
    LEFT JOIN refunds r ON r.provider = i.app AND r.invoice_id = i.invoice_id
    WHERE i.issued_at IS NOT NULL
),
open_documents AS (
    SELECT customer_id, currency, sum(owed) AS owed FROM documents GROUP BY ALL
)
SELECT coalesce(j.customer_id, o.customer_id) AS customer_id,
       coalesce(j.currency, o.currency) AS currency,
       coalesce(j.balance, 0)::DECIMAL(38, 12) AS journal_balance,
       coalesce(o.owed, 0)::DECIMAL(38, 12) AS open_documents
FROM journal j
FULL JOIN open_documents o USING (customer_id, currency)
