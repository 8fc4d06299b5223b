"""What the Stripe sync steps share: whether there is Stripe work at all, and a gateway whose
every attempt is written to sync.sync_attempts as it happens (for single-threaded steps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from pipelines.providers.stripe_sync.client import Attempt, StripeGateway
from pipelines.providers.stripe_sync.ledger_writes import write_attempts
from pipelines.warehouse import sql

NOT_USED = ("no invoice of a billing profile with app 'stripe' has left draft and nothing is "
            "mapped to Stripe: nothing to do, no STRIPE_API_KEY needed")


def stripe_in_use(con: duckdb.DuckDBPyConnection) -> bool:
    """True once an invoice of a `stripe` profile has left draft or anything is mapped to
    Stripe; before that the steps skip, so deployments without Stripe need no key."""
    return bool(con.execute(sql("sync/stripe_in_use")).fetchall()[0][0])


@dataclass
class AttemptCounts:
    """Calls a step made to Stripe, for its run metadata."""

    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0


def recording_gateway(make_gateway: Callable[[Callable[[Attempt], None]], StripeGateway],
                      con: duckdb.DuckDBPyConnection,
                      run_id: str) -> tuple[StripeGateway, AttemptCounts]:
    """A gateway (from `make_gateway(record)`, e.g. `StripeResource.gateway`) that writes each
    attempt as it happens and counts them."""
    counts = AttemptCounts()

    def record(attempt: Attempt) -> None:
        counts.api_calls += 1
        counts.retries += attempt.outcome == "retried"
        counts.rate_limited += attempt.rate_limited
        write_attempts(con, [attempt], run_id=run_id)

    return make_gateway(record), counts
