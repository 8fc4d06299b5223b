-- Temp tables journal_invoice_facts and journal_credit_note_facts: what happened to each issued
-- document after its issue, from the ledger's own records (pipelines/accounting/journal.py).
-- Needs temp view provider_held (sql/finance/provider_held.sql): the providers' latest view.
--   gross                 what the customer owes for the invoice: total including tax
--   credited_before_paid  credit notes (incl. tax) issued, not voided, before it was paid (or
--                         until now while unpaid): they reduce what is paid (contract section 9)
--   paid_at               its first move to paid (invoice_status_history: when the pipeline
--                         applied the provider's payment; providers' own payment instants are
--                         not read), if its status is paid, partially_refunded or refunded now;
--                         without such a move (a ledger older than its history): its last
--                         status change, never before its issue (docs/accounting.md)
--   refunded_at           its first move to partially_refunded or refunded, if any
--   provider_refunded     what the provider's primary copy shows refunded (provider_held); a
--                         ledger status refunded without a provider figure (app none) refunds
--                         the whole payment
--   provider_seen_at      when that snapshot was taken: the date of a refund only the provider
--                         shows (the ledger still says paid), at its first posting
--   written_off_at        its last move to uncollectible, if it is uncollectible now
--   voided_at             its move to voided, if voided now
CREATE OR REPLACE TEMP TABLE journal_invoice_facts AS
WITH moves AS (
    SELECT invoice_id,
           min(changed_at) FILTER (WHERE to_status = 'paid') AS paid_at,
           min(changed_at) FILTER (WHERE to_status IN ('partially_refunded', 'refunded'))
               AS refunded_at,
           max(changed_at) FILTER (WHERE to_status = 'uncollectible') AS uncollectible_at,
           max(changed_at) FILTER (WHERE to_status = 'voided') AS voided_at
    FROM billing.invoice_status_history
    GROUP BY invoice_id
),
invoices AS (
    SELECT i.invoice_id, i.invoice_number, i.customer_id, i.currency, i.app, i.status,
           i.issued_at, coalesce(i.status_changed_at, i.issued_at) AS status_changed_at,
           coalesce(i.total_including_tax, i.total) AS gross,
           CASE WHEN i.status IN ('paid', 'partially_refunded', 'refunded')
                THEN coalesce(m.paid_at, greatest(i.status_changed_at, i.issued_at))
           END AS paid_at,
           m.refunded_at, m.uncollectible_at, m.voided_at
    FROM billing.invoices i
    LEFT JOIN moves m USING (invoice_id)
    WHERE i.issued_at IS NOT NULL
),
credited AS (
    SELECT n.invoice_id,
           sum(coalesce(n.total_including_tax, n.total)) FILTER (
               WHERE v.paid_at IS NULL OR n.issued_at < v.paid_at) AS before_paid,
           sum(coalesce(n.total_including_tax, n.total)) AS all_credited
    FROM billing.credit_notes n
    JOIN invoices v USING (invoice_id)
    WHERE n.issued_at IS NOT NULL AND n.status <> 'voided'
    GROUP BY n.invoice_id
)
SELECT v.*,
       coalesce(c.before_paid, 0)::DECIMAL(38, 12) AS credited_before_paid,
       coalesce(c.all_credited, 0)::DECIMAL(38, 12) AS credited,
       coalesce(h.amount_refunded, 0)::DECIMAL(38, 12) AS provider_refunded,
       h.snapshot_at AS provider_seen_at
FROM invoices v
LEFT JOIN credited c USING (invoice_id)
LEFT JOIN provider_held h ON h.provider = v.app AND h.invoice_id = v.invoice_id;

CREATE OR REPLACE TEMP TABLE journal_credit_note_facts AS
SELECT n.credit_note_id,
       coalesce(max(h.changed_at) FILTER (WHERE h.to_status = 'voided'),
                any_value(n.status_changed_at), any_value(n.issued_at)) AS voided_at
FROM billing.credit_notes n
LEFT JOIN billing.credit_note_status_history h USING (credit_note_id)
WHERE n.issued_at IS NOT NULL AND n.status = 'voided'
GROUP BY n.credit_note_id;
