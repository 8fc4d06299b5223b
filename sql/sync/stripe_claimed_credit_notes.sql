-- Credit notes of `stripe` profiles among $ids (what unmapped Stripe credit notes' metadata
-- names), and whether each is in flight: still draft, its sync started, and not mapped to a
-- Stripe credit note yet, so the sync may have made one without recording the mapping. Only
-- then can an unmapped Stripe credit note naming it be ours (pipelines/providers/stripe_sync/
-- ownership.py).
SELECT n.credit_note_id,
       n.status = 'draft' AND n.sync_started_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM sync.external_ids x
                           WHERE x.provider = 'stripe' AND x.object_type = 'credit_note'
                             AND x.internal_id = n.credit_note_id) AS in_flight
FROM billing.credit_notes n
WHERE n.app = 'stripe' AND list_contains($ids, n.credit_note_id)
