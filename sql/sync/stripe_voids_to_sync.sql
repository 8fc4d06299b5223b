-- Invoices of `stripe` profiles the ledger voided (`billing invoice void`, or a void that came
-- from Stripe) whose Stripe invoice is not known to be void yet: no `invoice_void` mapping,
-- which the sync writes once Stripe shows the invoice void.
SELECT i.invoice_id, xi.external_id AS stripe_invoice
FROM billing.invoices i
JOIN sync.external_ids xi
    ON xi.provider = 'stripe' AND xi.object_type = 'invoice' AND xi.internal_id = i.invoice_id
WHERE i.app = 'stripe'
  AND i.status = 'voided'
  AND NOT EXISTS (SELECT 1 FROM sync.external_ids v
                  WHERE v.provider = 'stripe' AND v.object_type = 'invoice_void'
                    AND v.internal_id = i.invoice_id)
ORDER BY i.invoice_id
