-- Whether there is Stripe work at all: an invoice of a `stripe` profile that left draft (due
-- for sync, or issued at Stripe), a Stripe mapping or a stored Stripe event not applied yet.
-- Without any, the Stripe steps skip and need no API key (a `stripe` profile nobody uses, or
-- none at all).
SELECT EXISTS (SELECT 1 FROM billing.invoices
               WHERE app = 'stripe' AND status NOT IN ('draft', 'discarded'))
    OR EXISTS (SELECT 1 FROM sync.external_ids WHERE provider = 'stripe')
    OR EXISTS (SELECT 1 FROM sync.provider_events WHERE provider = 'stripe' AND applied_at IS NULL)
