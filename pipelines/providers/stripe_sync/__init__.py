"""Syncing invoices of `stripe` billing profiles to Stripe (with their corrections: credit notes,
supplementary invoices, voids) and pulling Stripe's events back.

`record_provider_events` and `apply_provider_events` are also what the integration API's
Stripe webhook items go through.
"""

from pipelines.providers.stripe_sync.inbound import apply_provider_events, record_provider_events
from pipelines.providers.stripe_sync.resource import StripeResource

__all__ = ["StripeResource", "apply_provider_events", "record_provider_events"]
