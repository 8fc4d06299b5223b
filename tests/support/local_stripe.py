"""The local Stripe (devkit's emulator on 127.0.0.1) that the Stripe sync talks to in tests,
and the sync job run against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devkit.stripe_emulator import StripeEmulator

if TYPE_CHECKING:
    import dagster as dg
    import stripe

API_KEY = "sk_test_sync_tests"
SYNC_NOW = "2026-02-03T00:00:00Z"


@pytest.fixture(scope="module")
def local_stripe() -> Iterator[StripeEmulator]:
    """One local Stripe per test module, accepting API_KEY; tests reset it."""
    with StripeEmulator(api_keys=[API_KEY]) as emulator:
        yield emulator


@pytest.fixture
def stripe_env(billing_env: dict[str, Path], local_stripe: StripeEmulator,
               monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The billing environment pointed at a freshly reset local Stripe."""
    local_stripe.reset()
    monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
    monkeypatch.setenv("STRIPE_API_BASE", local_stripe.base_url)
    monkeypatch.setenv("BILLING_API_STORE", str(billing_env["warehouse"].parent / "api.sqlite"))
    return billing_env


def client(emulator: StripeEmulator) -> stripe.StripeClient:
    """The official SDK on the local Stripe, without retries."""
    import stripe

    return stripe.StripeClient(API_KEY, base_addresses={"api": emulator.base_url},
                               max_network_retries=0)


def bill(month: str = "2026-02", now: str = SYNC_NOW) -> None:
    """Ingest what landed (at SYNC_NOW), then rate and issue `month` (`YYYY-MM`) at `now`."""
    from tests.support.dagster_runs import ingest_landed, run_billing

    ingest_landed(SYNC_NOW)
    run_billing(month, now)


def sync(now: str = SYNC_NOW, **stripe_config: object) -> dg.ExecuteInProcessResult:
    """The sync job, its Stripe resource configured with `stripe_config` when given."""
    from pipelines.jobs import SYNC_JOB
    from pipelines.providers.stripe_sync import StripeResource
    from tests.support.dagster_runs import run_job

    resources = {"stripe": StripeResource(**stripe_config)} if stripe_config else None
    return run_job(SYNC_JOB, now, resources=resources)
