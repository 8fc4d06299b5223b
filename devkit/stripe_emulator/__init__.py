"""A faithful local Stripe: a stateful Stripe-compatible HTTP server for tests and local runs.

It speaks Stripe's v1 wire protocol to the official ``stripe`` SDK (form-encoded nested
parameters validated against the SDK's own parameter types, Bearer keys, idempotency keys,
Stripe's object shapes and error bodies) and can inject the faults a real integration meets:
500s, 429 bursts, a requests-per-second limit, latency and responses lost after the commit.

    from devkit.stripe_emulator import StripeEmulator

    with StripeEmulator() as emu:
        client = stripe.StripeClient(
            "sk_test_emulator", base_addresses={"api": emu.base_url}, max_network_retries=0
        )

See docs/stripe-emulator.md.
"""

from .faults import Faults
from .server import StripeEmulator, serve
from .webhooks import signature_header

__all__ = ["Faults", "StripeEmulator", "serve", "signature_header"]
