-- Invoices of `stripe` profiles among $ids (what unmapped Stripe invoices' metadata names), and
-- whether each is in flight: in a sync state and not mapped to a Stripe invoice yet, so the sync
-- may have made a Stripe invoice for it without recording the mapping (a lost answer, a killed
-- run). Only then can an unmapped Stripe invoice naming it be ours (pipelines/providers/
-- stripe_sync/ownership.py).
SELECT i.invoice_id,
       i.status IN ('issuing.syncing', 'issuing.sync_failed')
           AND NOT EXISTS (SELECT 1 FROM sync.external_ids x
                           WHERE x.provider = 'stripe' AND x.object_type = 'invoice'
                             AND x.internal_id = i.invoice_id) AS in_flight
FROM billing.invoices i
WHERE i.app = 'stripe' AND list_contains($ids, i.invoice_id)
