-- Custom invoicing invoices in `issuing` and where each goes next: `issuing.syncing` when the
-- profile's issuing hook is on (the integration is asked to issue it), else on to
-- `payment_processing.pending` (through `issued`; numbered INV-YYYYMM-NNNNN unless the
-- integration gave a number at draft sync).
SELECT
    i.invoice_id,
    CASE WHEN coalesce(p.issuing_sync_hook, false) THEN 'issuing.syncing'
         ELSE 'payment_processing.pending' END AS to_status
FROM billing.invoices i
LEFT JOIN billing.billing_profiles p ON p.profile_key = i.billing_profile
WHERE i.app = 'custom_invoicing'
  AND i.status = 'issuing'
ORDER BY i.billing_month, i.boundary, i.customer_id, i.invoice_id;
