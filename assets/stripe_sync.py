"""Sync stage: invoices of `stripe` profiles pushed to Stripe, Stripe's events pulled back."""
