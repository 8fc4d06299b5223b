-- Invoices of `stripe` billing profiles the outbound sync takes on: ready to issue
-- (`issuing`), left mid-sync by a crashed run (`issuing.syncing`) or failed before
-- (`issuing.sync_failed`), with what Stripe needs to know about them and their customer.
-- `invoice_needs_search`: an earlier run may have reached Stripe for this invoice, so a missing
-- mapping must be looked up at Stripe before anything is created.
-- `customer_needs_search`: the same for the customer (some invoice of theirs was mid-sync).
-- A supplementary invoice (corrections) carries the invoice it corrects and that one's number.
-- Tax (docs/tax.md): what Stripe must total is total_including_tax; the rate and jurisdiction
-- describe the lines' tax_amounts, a reverse charge is noted on the Stripe invoice.
SELECT
    i.invoice_id,
    i.status,
    i.customer_id,
    i.subscription_id,
    i.billing_month,
    i.currency,
    i.total,
    coalesce(i.tax_total, 0) AS tax_total,
    coalesce(i.total_including_tax, i.total) AS total_including_tax,
    i.tax_rate_key,
    i.tax_country,
    i.tax_region,
    i.tax_note,
    i.collection_method,
    i.invoice_number,
    i.corrects_invoice_id,
    o.invoice_number AS corrects_invoice_number,
    coalesce(s.days_until_due, 30) AS days_until_due,
    coalesce(c.name, i.customer_id) AS customer_name,
    c.email AS customer_email,
    xc.external_id AS customer_external_id,
    xi.external_id AS invoice_external_id,
    i.status <> 'issuing' AS invoice_needs_search,
    xc.external_id IS NULL AND EXISTS (
        SELECT 1 FROM billing.invoice_status_history h
        JOIN billing.invoices o ON o.invoice_id = h.invoice_id
        WHERE o.customer_id = i.customer_id AND o.app = 'stripe'
          AND h.to_status = 'issuing.syncing'
    ) AS customer_needs_search
FROM billing.invoices i
LEFT JOIN billing.subscriptions s ON s.subscription_id = i.subscription_id
LEFT JOIN billing.customers c ON c.customer_id = i.customer_id
LEFT JOIN billing.invoices o ON o.invoice_id = i.corrects_invoice_id
LEFT JOIN sync.external_ids xc
    ON xc.provider = 'stripe' AND xc.object_type = 'customer' AND xc.internal_id = i.customer_id
LEFT JOIN sync.external_ids xi
    ON xi.provider = 'stripe' AND xi.object_type = 'invoice' AND xi.internal_id = i.invoice_id
WHERE i.app = 'stripe'
  AND i.status IN ('issuing', 'issuing.syncing', 'issuing.sync_failed')
ORDER BY i.customer_id, i.boundary, i.invoice_id
