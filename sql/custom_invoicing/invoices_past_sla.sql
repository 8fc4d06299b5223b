-- Custom invoicing invoices waiting past their profile's SLA (sync_sla, default 24 h):
-- in draft.syncing / issuing.syncing for longer than the SLA since they entered it, or in
-- payment processing with no payment status later than due date + SLA.
-- Parameter: $now.
WITH waiting AS (
    SELECT
        i.invoice_id, i.customer_id, i.status, i.billing_profile,
        coalesce(i.status_changed_at, i.issued_at, i.created_at) AS since,
        coalesce(p.sync_sla_seconds, 86400) AS sla_seconds,
        CASE
            WHEN i.status = 'draft.syncing' THEN 'waiting for draft/synchronized'
            WHEN i.status = 'issuing.syncing' THEN 'waiting for issuing/synchronized'
            ELSE 'waiting for a payment status'
        END AS what,
        CASE
            WHEN i.status IN ('draft.syncing', 'issuing.syncing')
                THEN coalesce(i.status_changed_at, i.created_at)
            ELSE CAST(i.due_date AS TIMESTAMPTZ)
        END AS clock_start
    FROM billing.invoices i
    LEFT JOIN billing.billing_profiles p ON p.profile_key = i.billing_profile
    WHERE i.app = 'custom_invoicing'
      AND i.status IN ('draft.syncing', 'issuing.syncing', 'payment_processing.pending')
)
SELECT invoice_id, customer_id, status, since, what, sla_seconds / 3600.0 AS sla_hours,
       billing_profile
FROM waiting
WHERE clock_start + to_seconds(sla_seconds) < $now
ORDER BY invoice_id;
