"""What the Stripe sync steps share: whether there is Stripe work at all, and the rule that the
warehouse is never held while Stripe is called.

Every step has the same shape: read what is due (and move it to its sync state) in one short
writer session, release the warehouse, call Stripe while a `CallRecordingSink` keeps every
attempt and mapping in memory, then take the writer again to record, in batches for the worker
pools. Ingestion, a billing run or `billing sql` never wait on Stripe's answers; what a crash
loses between two batches is found again at Stripe by the next run (idempotency keys, then the
metadata lookup).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.providers.stripe_sync.client import Attempt, StripeGateway
from pipelines.providers.stripe_sync.ledger_writes import CallRecordingSink
from pipelines.warehouse import sql

OpenWriter = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
"""Opens the warehouse writer for one short session (`WarehouseResource.writer`)."""
OpenReader = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
"""Opens a read-only warehouse connection (`WarehouseResource.reader`)."""
MakeGateway = Callable[[Callable[[Attempt], None]], StripeGateway]
"""A Stripe gateway reporting every attempt to the callable given (`StripeResource.gateway`)."""

NOT_USED = ("no invoice of a billing profile with app 'stripe' has left draft and nothing is "
            "mapped to Stripe: nothing to do, no STRIPE_API_KEY needed")


def stripe_in_use(open_reader: OpenReader) -> bool:
    """True once an invoice of a `stripe` profile has left draft or anything is mapped to
    Stripe; before that the steps skip, so deployments without Stripe need no key."""
    with open_reader() as con:
        return bool(con.execute(sql("sync/stripe_in_use")).fetchall()[0][0])


@dataclass
class AttemptCounts:
    """Calls a step made to Stripe, for its run metadata."""

    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0


def recording_gateway(make_gateway: MakeGateway, *, run_id: str, now: datetime
                      ) -> tuple[StripeGateway, CallRecordingSink]:
    """A gateway for a single-threaded step, and the sink that keeps (and counts, in its
    `AttemptCounts` summary) each attempt until the step writes them with `write_calls`."""
    calls = CallRecordingSink(run_id=run_id, now=now, summary=AttemptCounts())
    return make_gateway(calls.record_call), calls
