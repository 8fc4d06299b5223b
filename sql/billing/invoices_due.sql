-- The month's drafts whose grace period is over, with the state each leaves draft for:
--   app none                         -> issued (numbered now)
--   app stripe                       -> issuing (the Stripe sync takes it on)
--   custom_invoicing, draft hook on  -> draft.syncing (waits for the integration's callback)
--   custom_invoicing, draft hook off -> issuing (the custom invoicing step takes it on)
-- Supplementary invoices (corrections) of any billing month are due the same way.
-- Parameters: $billing_month, $now.
SELECT
    i.invoice_id,
    CASE
        WHEN i.app = 'none' THEN 'issued'
        WHEN i.app = 'custom_invoicing' AND coalesce(p.draft_sync_hook, false) THEN 'draft.syncing'
        ELSE 'issuing'
    END AS to_status
FROM billing.invoices i
LEFT JOIN billing.billing_profiles p ON p.profile_key = i.billing_profile
WHERE (i.billing_month = $billing_month OR i.corrects_invoice_id IS NOT NULL)
  AND i.status = 'draft'
  AND i.issue_after <= $now
ORDER BY i.boundary, i.customer_id, i.invoice_id;
