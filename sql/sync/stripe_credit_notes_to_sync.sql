-- Draft credit notes of `stripe` billing profiles that are due ($now past issue_after) and
-- whose corrected invoice is past issuing ($post_issue: those statuses), with what Stripe needs:
-- the Stripe invoice they credit, the Stripe credit note once mapped, whether an earlier run
-- called Stripe for them (`needs_search`: look at Stripe before creating) and the profile's
-- credit_note_refunds. In the order they are credited: per invoice, oldest first. Stripe credits
-- total_including_tax (its credit note total includes tax, docs/tax.md).
SELECT
    n.credit_note_id,
    n.invoice_id,
    n.customer_id,
    n.billing_month,
    n.currency,
    n.total,
    coalesce(n.tax_total, 0) AS tax_total,
    coalesce(n.total_including_tax, n.total) AS total_including_tax,
    n.kind,
    n.reason,
    i.invoice_number,
    i.status AS invoice_status,
    xi.external_id AS stripe_invoice,
    xn.external_id AS external_id,
    n.sync_started_at IS NOT NULL AS needs_search,
    coalesce(p.credit_note_refunds, false) AS refunds
FROM billing.credit_notes n
JOIN billing.invoices i ON i.invoice_id = n.invoice_id
LEFT JOIN billing.billing_profiles p ON p.profile_key = n.billing_profile
LEFT JOIN sync.external_ids xi
    ON xi.provider = 'stripe' AND xi.object_type = 'invoice' AND xi.internal_id = n.invoice_id
LEFT JOIN sync.external_ids xn
    ON xn.provider = 'stripe' AND xn.object_type = 'credit_note'
   AND xn.internal_id = n.credit_note_id
WHERE n.app = 'stripe'
  AND n.status = 'draft'
  AND n.issue_after <= $now
  AND list_contains($post_issue, i.status)
ORDER BY n.invoice_id, n.created_at, n.credit_note_id
