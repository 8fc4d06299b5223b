"""The integration API (contract section 5): custom invoicing callbacks, payment status, Stripe
webhooks; an inbox in its own embedded store that the pipeline applies to the warehouse."""
