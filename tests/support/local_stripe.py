"""The local Stripe (devkit's emulator on 127.0.0.1) that the Stripe sync talks to in tests,
and the sync job run against it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WriterProbe:
    """One API request of the local Stripe, and whether another connection could take the
    warehouse writer while the client waited for its answer."""

    method: str
    path: str
    writer_taken: bool


@contextmanager
def writer_taken_while_stripe_answers(emulator: StripeEmulator, warehouse: Path, *,
                                      latency_ms: float = 50.0,
                                      wait_s: float = 1.0) -> Iterator[list[WriterProbe]]:
    """While the block runs, the local Stripe answers every API request `latency_ms` late, and
    meanwhile takes the warehouse writer (the lock beside the file, then a read-write DuckDB
    connection) from the request's thread, as another process would, giving up after `wait_s`.
    Yields the probes, one per request: a client that holds the warehouse while it waits on
    Stripe shows as `writer_taken=False`."""
    import duckdb

    from pipelines.warehouse import warehouse_lock

    probes: list[WriterProbe] = []

    def take_writer(method: str, path: str) -> None:
        try:
            with warehouse_lock(str(warehouse), exclusive=True, timeout_s=wait_s):
                con = duckdb.connect(str(warehouse))
                try:
                    con.execute("SELECT count(*) FROM billing.invoices").fetchall()
                finally:
                    con.close()
        except TimeoutError:
            probes.append(WriterProbe(method, path, False))
        else:
            probes.append(WriterProbe(method, path, True))

    emulator.update_faults(latency_ms=latency_ms)
    emulator.while_answering = take_writer
    try:
        yield probes
    finally:
        emulator.while_answering = None
        emulator.update_faults(latency_ms=0)
