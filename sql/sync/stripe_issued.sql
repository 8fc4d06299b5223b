-- Stripe's number and hosted page of invoices it issued (temp frame stripe_issued_frame);
-- the sync error is cleared and the first send time kept.
UPDATE billing.invoices AS i
SET external_invoice_number = f.number,
    hosted_invoice_url = f.url,
    sync_error = NULL,
    sent_to_customer_at = CASE WHEN f.sent THEN coalesce(i.sent_to_customer_at, $now)
                               ELSE i.sent_to_customer_at END
FROM stripe_issued_frame f
WHERE i.invoice_id = f.invoice_id
