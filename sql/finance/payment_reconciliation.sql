-- finance.payment_reconciliation: payments and refunds seen at each provider (its latest
-- snapshot) against the ledger. Rebuilt whole. Parameter: $now. Reads currency_digits and
-- money_text (pipelines.warehouse.register_currency_digits).
--
-- For every ledger invoice a provider holds (its primary copy: temp view provider_held), and every ledger invoice the
-- ledger counts as paid on a provider that has been asked:
--   payment row  when the provider shows money paid or a paid status, or the ledger says paid:
--     matched                          paid on both sides, amount paid = total due
--     paid_at_provider_open_in_ledger  paid at the provider, still open in the ledger
--     paid_in_ledger_not_at_provider   paid in the ledger, the provider shows no payment
--     amount_paid_mismatch             paid on both sides, amount paid <> total due
--   refund row   when the provider shows money refunded, or the ledger says refunded:
--     matched                          refunded on both sides (a full refund for the whole
--                                      amount paid; a partial one for less)
--     refunded_not_flagged             refunded at the provider, not flagged in the ledger
--     refund_not_at_provider           flagged refunded in the ledger, nothing refunded there
--     refund_amount_mismatch           flagged a full refund, the provider refunded less (or
--                                      partial, and the provider refunded it all)
-- Zero-total invoices are settled without a payment and give no row. The amount due is the total
-- including tax (billing.invoices.total_including_tax: what the customer owes; docs/tax.md)
-- less the credit notes, including their tax, issued (not voided) before the invoice was paid,
-- or before now while it is unpaid: a credit note on an unpaid invoice reduces what the customer
-- pays (contract section 9); one issued after the payment credits or refunds instead and leaves
-- it alone. A payment of the total before tax of a taxed invoice is an amount_paid_mismatch.
DELETE FROM finance.payment_reconciliation;

INSERT INTO finance.payment_reconciliation
WITH held AS (
    SELECT provider, invoice_id, external_id, status AS provider_status, amount_paid,
           amount_refunded
    FROM provider_held
),
paid_at AS (
    SELECT invoice_id, min(changed_at) AS paid_at
    FROM billing.invoice_status_history WHERE to_status = 'paid'
    GROUP BY invoice_id
),
credited AS (
    SELECT n.invoice_id, sum(coalesce(n.total_including_tax, n.total)) AS credited
    FROM billing.credit_notes n
    LEFT JOIN paid_at p USING (invoice_id)
    WHERE n.issued_at IS NOT NULL AND n.status <> 'voided'
      AND (p.paid_at IS NULL OR n.issued_at < p.paid_at)
    GROUP BY n.invoice_id
),
pairs AS (
    SELECT i.invoice_id, i.app AS provider, i.currency,
           coalesce(i.total_including_tax, i.total) - coalesce(c.credited, 0) AS total,
           i.status AS ledger_status,
           h.external_id, h.provider_status,
           coalesce(h.amount_paid, 0) AS amount_paid,
           coalesce(h.amount_refunded, 0) AS amount_refunded,
           i.status IN ('paid', 'refunded', 'partially_refunded') AS ledger_paid,
           i.status IN ('refunded', 'partially_refunded') AS ledger_refunded,
           d.digits
    FROM billing.invoices i
    JOIN sync.provider_snapshots s ON s.provider = i.app
    LEFT JOIN held h ON h.provider = i.app AND h.invoice_id = i.invoice_id
    LEFT JOIN credited c ON c.invoice_id = i.invoice_id
    LEFT JOIN currency_digits d ON d.currency = i.currency
    WHERE coalesce(i.total_including_tax, i.total) <> 0
      AND (h.invoice_id IS NOT NULL OR i.status IN ('paid', 'refunded', 'partially_refunded'))
),
payments AS (
    SELECT *,
           CASE
               WHEN (amount_paid > 0 OR provider_status = 'paid') AND NOT ledger_paid
                   THEN 'paid_at_provider_open_in_ledger'
               WHEN ledger_paid AND amount_paid = 0 THEN 'paid_in_ledger_not_at_provider'
               WHEN amount_paid <> total THEN 'amount_paid_mismatch'
               ELSE 'matched'
           END AS match_status
    FROM pairs
    WHERE amount_paid > 0 OR provider_status = 'paid' OR ledger_paid
),
refunds AS (
    SELECT *,
           CASE
               WHEN amount_refunded > 0 AND NOT ledger_refunded THEN 'refunded_not_flagged'
               WHEN ledger_refunded AND amount_refunded = 0 THEN 'refund_not_at_provider'
               WHEN ledger_status = 'refunded' AND amount_refunded < amount_paid
                   THEN 'refund_amount_mismatch'
               WHEN ledger_status = 'partially_refunded' AND amount_refunded >= amount_paid
                   THEN 'refund_amount_mismatch'
               ELSE 'matched'
           END AS match_status
    FROM pairs
    WHERE amount_refunded > 0 OR ledger_refunded
)
SELECT invoice_id, provider, external_id, 'payment', currency, amount_paid, total,
       ledger_status, provider_status, match_status,
       CASE match_status
           WHEN 'matched' THEN money_text(amount_paid, digits) || ' ' || currency || ' paid'
           WHEN 'paid_at_provider_open_in_ledger' THEN
               money_text(amount_paid, digits) || ' ' || currency || ' paid at ' || provider
               || ' (' || coalesce(provider_status, '?') || '), ledger still ' || ledger_status
           WHEN 'paid_in_ledger_not_at_provider' THEN
               'ledger ' || ledger_status || ', ' || provider || ' shows nothing paid ('
               || coalesce(provider_status, 'invoice not held') || ')'
           ELSE money_text(amount_paid, digits) || ' paid at ' || provider || ', '
                || money_text(total, digits) || ' ' || currency || ' due'
       END,
       $now
FROM payments
UNION ALL
SELECT invoice_id, provider, external_id, 'refund', currency, amount_refunded,
       CASE ledger_status WHEN 'refunded' THEN amount_paid END,
       ledger_status, provider_status, match_status,
       CASE match_status
           WHEN 'matched' THEN money_text(amount_refunded, digits) || ' ' || currency
                               || ' refunded'
           WHEN 'refunded_not_flagged' THEN
               money_text(amount_refunded, digits) || ' ' || currency || ' refunded at '
               || provider || ', ledger ' || ledger_status
           WHEN 'refund_not_at_provider' THEN
               'ledger ' || ledger_status || ', ' || provider || ' shows nothing refunded'
           ELSE money_text(amount_refunded, digits) || ' of ' || money_text(amount_paid, digits)
                || ' ' || currency || ' refunded at ' || provider || ', ledger '
                || ledger_status
       END,
       $now
FROM refunds;
