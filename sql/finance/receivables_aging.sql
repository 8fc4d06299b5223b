-- finance.receivables_aging: open invoices by days past due. Rebuilt whole. Parameter: $now.
-- Open: issued and not yet paid, voided or written off (uncollectible). The amount due is the
-- total including tax (what the customer owes; docs/tax.md) less what the provider's latest
-- snapshot shows paid (its primary copy: provider_held) and less the credit notes issued against
-- it, including their tax (not voided: an open invoice's credit reduces what is owed, contract
-- section 9). Buckets count days past the due date; an invoice not yet due is in
-- 0-30.
DELETE FROM finance.receivables_aging;

INSERT INTO finance.receivables_aging
WITH paid AS (
    SELECT provider, invoice_id, amount_paid FROM provider_held
),
credited AS (
    SELECT invoice_id, sum(coalesce(total_including_tax, total)) AS credited
    FROM billing.credit_notes
    WHERE issued_at IS NOT NULL AND status <> 'voided'
    GROUP BY invoice_id
),
open_invoices AS (
    SELECT i.invoice_id, i.invoice_number, i.customer_id, i.app, i.currency,
           coalesce(i.total_including_tax, i.total) - coalesce(p.amount_paid, 0)
               - coalesce(c.credited, 0) AS amount_due,
           i.status, i.issued_at,
           i.due_date,
           date_diff('day', i.due_date, CAST($now AS DATE)) AS days_past_due
    FROM billing.invoices i
    LEFT JOIN paid p ON p.provider = i.app AND p.invoice_id = i.invoice_id
    LEFT JOIN credited c ON c.invoice_id = i.invoice_id
    WHERE i.status IN ('issued', 'payment_processing.pending', 'payment_processing.failed',
                       'payment_processing.action_required', 'overdue')
      AND coalesce(i.total_including_tax, i.total) > 0
)
SELECT invoice_id, invoice_number, customer_id, app, currency, amount_due, status, issued_at,
       due_date, days_past_due,
       CASE WHEN days_past_due <= 30 THEN '0-30'
            WHEN days_past_due <= 60 THEN '31-60'
            WHEN days_past_due <= 90 THEN '61-90'
            ELSE '90+' END,
       $now
FROM open_invoices
WHERE amount_due > 0;
