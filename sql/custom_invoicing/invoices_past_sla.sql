-- Custom invoicing invoices and credit notes waiting past their profile's SLA (sync_sla, default
-- 24 h): in draft.syncing / issuing.syncing for longer than the SLA since they entered it, or
-- (invoices) in payment processing with no payment status later than due date + SLA.
-- Parameter: $now.
WITH documents AS (
    SELECT invoice_id AS document_id, 'invoice' AS document, customer_id, status,
           billing_profile, status_changed_at, issued_at, created_at, due_date
    FROM billing.invoices
    WHERE app = 'custom_invoicing'
      AND status IN ('draft.syncing', 'issuing.syncing', 'payment_processing.pending')
    UNION ALL
    SELECT credit_note_id, 'credit note', customer_id, status, billing_profile,
           status_changed_at, issued_at, created_at, NULL
    FROM billing.credit_notes
    WHERE app = 'custom_invoicing' AND status IN ('draft.syncing', 'issuing.syncing')
),
waiting AS (
    SELECT
        d.document_id, d.document, d.customer_id, d.status, d.billing_profile,
        coalesce(d.status_changed_at, d.issued_at, d.created_at) AS since,
        coalesce(p.sync_sla_seconds, 86400) AS sla_seconds,
        CASE
            WHEN d.status = 'draft.syncing' THEN 'waiting for draft/synchronized'
            WHEN d.status = 'issuing.syncing' THEN 'waiting for issuing/synchronized'
            ELSE 'waiting for a payment status'
        END AS what,
        CASE
            WHEN d.status IN ('draft.syncing', 'issuing.syncing')
                THEN coalesce(d.status_changed_at, d.created_at)
            ELSE CAST(d.due_date AS TIMESTAMPTZ)
        END AS clock_start
    FROM documents d
    LEFT JOIN billing.billing_profiles p ON p.profile_key = d.billing_profile
)
SELECT document_id, customer_id, status, since, what, sla_seconds / 3600.0 AS sla_hours,
       billing_profile, document
FROM waiting
WHERE clock_start + to_seconds(sla_seconds) < $now
ORDER BY document_id;
