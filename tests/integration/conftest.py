"""Fixtures of servers and processes, for the integration tests only (so a unit run never
imports them): `billing api` in its own process, a customer's ERP, the local Stripe."""

from tests.support.api import api
from tests.support.erp import erp, silent_erp
from tests.support.local_stripe import local_stripe, stripe_env

__all__ = ["api", "erp", "local_stripe", "silent_erp", "stripe_env"]
