-- Issue the month's drafts whose grace period is over, for billing profiles without a provider
-- app (stripe and custom_invoicing issue through their own sync). Numbers INV-YYYYMM-NNNNN are
-- gap-free per billing month, given in boundary, customer, invoice order.
-- Parameters: $billing_month, $now, $run_id.
CREATE OR REPLACE TEMP TABLE issuing AS
SELECT
    invoice_id,
    coalesce((SELECT last_number FROM billing.invoice_number_sequences
              WHERE billing_month = $billing_month), 0)
        + row_number() OVER (ORDER BY boundary, customer_id, invoice_id) AS sequence
FROM billing.invoices
WHERE billing_month = $billing_month
  AND status = 'draft'
  AND app = 'none'
  AND issue_after <= $now;

UPDATE billing.invoices AS i
SET status = 'issued',
    invoice_number = printf('INV-%s-%05d', replace($billing_month, '-', ''), s.sequence),
    issued_at = $now
FROM issuing s
WHERE i.invoice_id = s.invoice_id;

INSERT INTO billing.invoice_status_history (invoice_id, from_status, to_status, "at", cause, actor)
SELECT invoice_id, 'draft', 'issued', $now, 'grace period over', 'billing_run'
FROM issuing;

INSERT OR REPLACE INTO billing.invoice_number_sequences (billing_month, last_number)
SELECT $billing_month, max(sequence) FROM issuing HAVING count(*) > 0;
