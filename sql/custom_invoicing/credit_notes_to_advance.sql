-- Custom invoicing credit notes due to move on, with their state and where each goes next:
-- a draft whose grace period is over and whose credited invoice is issued (not voided) goes to
-- `draft.syncing` when the profile's draft hook is on; otherwise (and once the integration
-- synchronized the draft: `issuing`) to `issuing.syncing` when the issuing hook is on, else to
-- `issued`. Parameter: $now.
SELECT
    c.credit_note_id,
    c.status,
    CASE
        WHEN c.status = 'draft' AND coalesce(p.draft_sync_hook, false) THEN 'draft.syncing'
        WHEN coalesce(p.issuing_sync_hook, false) THEN 'issuing.syncing'
        ELSE 'issued'
    END AS to_status
FROM billing.credit_notes c
JOIN billing.invoices i ON i.invoice_id = c.invoice_id
LEFT JOIN billing.billing_profiles p ON p.profile_key = c.billing_profile
WHERE c.app = 'custom_invoicing'
  AND ((c.status = 'draft' AND c.issue_after <= $now
        AND i.issued_at IS NOT NULL AND i.status <> 'voided')
       OR c.status = 'issuing')
ORDER BY c.billing_month, c.invoice_id, c.credit_note_id;
