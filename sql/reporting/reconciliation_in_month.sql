-- The reconciliation rows a month's report covers, from finance.invoice_reconciliation,
-- finance.credit_note_reconciliation, finance.payment_reconciliation and
-- finance.usage_reconciliation in one shape: rows about the ledger invoices of the billing month
-- (and the credit notes of those invoices), plus orphans (provider invoices, credit notes or
-- payments the ledger does not know: they have no ledger month, so every month's report shows
-- them). `invoice_id` is the document the row is about: the invoice, or the credit note (its
-- provider id for an orphan without one of ours). Usage rows belong to the billing month they
-- were rated for. A temp macro, created per report session once the four tables exist.
CREATE OR REPLACE TEMP MACRO reconciliation_in_month(report_month) AS TABLE
SELECT 'invoice' AS kind, r.invoice_id, r.provider,
       coalesce(i.customer_id, r.customer_id) AS customer_id,
       r.match_status, r.detail, i.invoice_id IS NULL AS orphan, r.reconciled_at
FROM finance.invoice_reconciliation r
LEFT JOIN billing.invoices i ON i.invoice_id = r.invoice_id
WHERE i.billing_month = report_month OR i.invoice_id IS NULL
UNION ALL
SELECT 'credit_note' AS kind, coalesce(r.credit_note_id, r.external_id) AS invoice_id,
       r.provider, coalesce(n.customer_id, r.customer_id) AS customer_id,
       r.match_status, r.detail, n.credit_note_id IS NULL AS orphan, r.reconciled_at
FROM finance.credit_note_reconciliation r
LEFT JOIN billing.credit_notes n ON n.credit_note_id = r.credit_note_id
WHERE n.billing_month = report_month OR n.credit_note_id IS NULL
UNION ALL
SELECT 'payment' AS kind, p.invoice_id, p.provider, i.customer_id,
       p.match_status, p.detail, i.invoice_id IS NULL AS orphan, p.reconciled_at
FROM finance.payment_reconciliation p
LEFT JOIN billing.invoices i ON i.invoice_id = p.invoice_id
WHERE i.billing_month = report_month OR i.invoice_id IS NULL
UNION ALL
SELECT 'usage' AS kind, u.invoice_id, NULL AS provider, u.customer_id,
       u.match_status, u.detail, false AS orphan, u.reconciled_at
FROM finance.usage_reconciliation u
WHERE u.billing_month = report_month;
