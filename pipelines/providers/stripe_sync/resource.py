"""The Stripe resource: API key, base address, pace and concurrency of the sync.

The key is read when a step uses it, not when the run starts. Dagster checks every `EnvVar` of a
job's resources before the first step (an unset one fails the whole run with "You have attempted
to fetch the environment variable ... which is not set"), so binding `EnvVar("STRIPE_API_KEY")`
would stop the sync job (notifications, custom invoicing) on deployments that do not use Stripe
at all. Here an unset key only matters to a step that has Stripe work to do, and it fails with a
message saying what to set. Passing `api_key=dg.EnvVar(...)` explicitly still works.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import dagster as dg
from pydantic import Field

from pipelines.providers.stripe_sync.client import (
    Attempt,
    RetryPolicy,
    StripeGateway,
    TokenBucket,
    default_rate,
    make_client,
)

API_KEY_ENV = "STRIPE_API_KEY"
API_BASE_ENV = "STRIPE_API_BASE"


class StripeNotConfigured(Exception):
    """Stripe work is due but no API key is set."""


class StripeResource(dg.ConfigurableResource):
    """Stripe access for the sync (`STRIPE_API_KEY`, `STRIPE_API_BASE`)."""

    api_key: str | None = Field(default=None, description="secret or restricted key (default: "
                                "the STRIPE_API_KEY environment variable, read when used)")
    api_base: str | None = Field(default=None, description="another Stripe-compatible base URL "
                                 "(default: STRIPE_API_BASE, else https://api.stripe.com)")
    requests_per_second: float | None = Field(
        default=None, description="client-side limit (default: 25 for test keys, 100 for live)")
    burst: int = Field(default=1, description="requests the limiter lets out at once")
    max_concurrency: int = Field(default=8, description="invoices synced in parallel")
    max_attempts: int = Field(default=8, description="attempts per call before giving up")
    timeout_seconds: float = Field(default=30.0, description="HTTP timeout per attempt")

    def key(self) -> str:
        """The API key, or a clear failure when Stripe work is due and none is set."""
        value = self.api_key or os.environ.get(API_KEY_ENV, "")
        if not value:
            raise StripeNotConfigured(
                f"invoices of billing profiles with app 'stripe' are due for sync but "
                f"{API_KEY_ENV} is not set: export a Stripe secret key (sk_test_... for a test "
                f"account), or point {API_BASE_ENV} at a local Stripe emulator with any sk_test_ "
                "key")
        return value

    def base(self) -> str | None:
        return self.api_base or os.environ.get(API_BASE_ENV) or None

    def rate(self) -> float:
        return self.requests_per_second or default_rate(self.key())

    def gateway(self, record: Callable[[Attempt], None]) -> StripeGateway:
        """A rate-limited, retrying Stripe client that reports every attempt to `record`."""
        api_key = self.key()
        client = make_client(api_key, self.base(), timeout=self.timeout_seconds)
        limiter = TokenBucket(self.rate(), self.burst)
        return StripeGateway(client, limiter, record,
                             policy=RetryPolicy(max_attempts=self.max_attempts))
