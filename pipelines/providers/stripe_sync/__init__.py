"""Syncing invoices of `stripe` billing profiles to Stripe and pulling Stripe's events back."""
