"""What the outbound sync records in the warehouse: every HTTP attempt (`sync.sync_attempts`),
every mapping of our objects to Stripe's (`sync.external_ids`), and the status changes of the
invoices it issued, settled or failed to sync, with their alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from pipelines.alerts import Alert, raise_alerts, resolve_alerts
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.providers.stripe_sync.client import Attempt
from pipelines.providers.stripe_sync.issuer import InvoiceResult, Mapping
from pipelines.warehouse import run_sql

PROVIDER = "stripe"
ACTOR = "stripe_sync"

ATTEMPT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "provider": pl.String, "operation": pl.String, "internal_id": pl.String,
    "idempotency_key": pl.String, "http_status": pl.Int32, "outcome": pl.String,
    "latency_ms": pl.Float64, "error": pl.String, "at": pl.Datetime("us", "UTC"),
    "attempt": pl.Int32, "request_id": pl.String, "run_id": pl.String}


def write_attempts(con: duckdb.DuckDBPyConnection, attempts: Sequence[Attempt], *,
                   run_id: str | None) -> None:
    """Append Stripe calls to `sync.sync_attempts` (never the API key)."""
    frame = pl.DataFrame([{
        "provider": PROVIDER, "operation": a.operation, "internal_id": a.internal_id,
        "idempotency_key": a.idempotency_key, "http_status": a.http_status,
        "outcome": a.outcome, "latency_ms": a.latency_ms, "error": a.error, "at": a.at,
        "attempt": a.attempt, "request_id": a.request_id, "run_id": run_id}
        for a in attempts], schema=ATTEMPT_SCHEMA)
    con.register("sync_attempts_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/sync_attempts")
    finally:
        con.unregister("sync_attempts_frame")


def write_mappings(con: duckdb.DuckDBPyConnection, mappings: Sequence[Mapping], *,
                   now: datetime) -> None:
    """Record which Stripe object each of ours is (`sync.external_ids`), once each."""
    if not mappings:
        return
    frame = pl.DataFrame([{"provider": PROVIDER, "object_type": m.object_type,
                           "internal_id": m.internal_id, "external_id": m.external_id,
                           "created_at": now} for m in mappings],
                         schema={"provider": pl.String, "object_type": pl.String,
                                 "internal_id": pl.String, "external_id": pl.String,
                                 "created_at": pl.Datetime("us", "UTC")})
    con.register("external_ids_frame", frame.unique(["object_type", "internal_id"]).to_arrow())
    try:
        run_sql(con, "sync/external_ids")
    finally:
        con.unregister("external_ids_frame")


def alert_key(invoice_id: str) -> str:
    return f"stripe_sync_failed:{invoice_id}"


def _syncing(invoice_id: str) -> StatusChange:
    return StatusChange(invoice_id, "issuing.syncing", "stripe sync started", ACTOR)


def mark_syncing(con: duckdb.DuckDBPyConnection, invoice_ids: Sequence[str], *,
                 now: datetime) -> None:
    """Invoices about to be sent to Stripe: `issuing.syncing`."""
    apply_status_changes(con, [_syncing(invoice_id) for invoice_id in invoice_ids], now=now)


def mark_issued(con: duckdb.DuckDBPyConnection, results: Sequence[InvoiceResult], *,
                now: datetime) -> None:
    """Invoices finalized (and sent) at Stripe: issued, then pending payment, with Stripe's
    number and hosted page; their failure alerts close."""
    if not results:
        return
    changes = []
    for r in results:
        changes += [
            StatusChange(r.invoice_id, "issued",
                         f"finalized at Stripe as {r.number or r.external_id}", ACTOR),
            StatusChange(r.invoice_id, "payment_processing.pending",
                         "sent to the customer by Stripe" if r.sent
                         else "Stripe collects the payment", ACTOR)]
    apply_status_changes(con, changes, now=now)
    frame = pl.DataFrame(
        [{"invoice_id": r.invoice_id, "number": r.number, "url": r.hosted_url, "sent": r.sent}
         for r in results],
        schema={"invoice_id": pl.String, "number": pl.String, "url": pl.String,
                "sent": pl.Boolean})
    con.register("stripe_issued_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/stripe_issued", {"now": now})
    finally:
        con.unregister("stripe_issued_frame")
    resolve_alerts(con, [alert_key(r.invoice_id) for r in results], now=now)


def mark_failed(con: duckdb.DuckDBPyConnection, errors: dict[str, str], *,
                now: datetime) -> None:
    """Invoices whose sync failed: `issuing.sync_failed` with the error, and an alert each."""
    if not errors:
        return
    changes = []
    for invoice_id, error in errors.items():
        changes += [_syncing(invoice_id),
                    StatusChange(invoice_id, "issuing.sync_failed", error[:300], ACTOR)]
    apply_status_changes(con, changes, now=now)
    for invoice_id, error in errors.items():
        con.execute("UPDATE billing.invoices SET sync_error = $error WHERE invoice_id = $id",
                    {"error": error, "id": invoice_id}).fetchall()
    raise_alerts(con, [Alert(alert_key(invoice_id), "warning",
                             f"Stripe sync failed for invoice {invoice_id}", error,
                             "stripe_sync") for invoice_id, error in errors.items()], now=now)


def settle_zero_total(con: duckdb.DuckDBPyConnection, invoice_id: str, *,
                      now: datetime) -> None:
    """A zero invoice is issued but never sent: there is nothing to collect."""
    apply_status_changes(con, [
        StatusChange(invoice_id, "issued", "zero total: not sent to Stripe", ACTOR),
        StatusChange(invoice_id, "payment_processing.pending", "zero total", ACTOR),
        StatusChange(invoice_id, "paid", "zero total: nothing to collect", ACTOR)], now=now)
    con.execute("UPDATE billing.invoices SET sync_error = NULL WHERE invoice_id = $id",
                {"id": invoice_id}).fetchall()
    resolve_alerts(con, [alert_key(invoice_id)], now=now)


class CallRecordingSink:
    """What every Stripe step reports in common, kept until it is written: each HTTP attempt
    (counted in the summary's api_calls / retries / rate_limited) and each mapping of one of
    ours to a Stripe object. It holds no connection: the step takes the warehouse writer only
    to write what was kept (`write_calls`, inside its transaction), never while Stripe is
    called. The worker-pool sinks add their own results and write them in `flush`, after
    `write_calls`, in the same transaction."""

    def __init__(self, *, run_id: str | None, now: datetime, summary: Any) -> None:
        self.run_id = run_id
        self.now = now
        self.summary = summary
        self.attempts: list[Attempt] = []
        self.mappings: list[Mapping] = []

    def record_call(self, message: object) -> bool:
        """Keep an attempt or a mapping; False for any other message."""
        if isinstance(message, Attempt):
            self.attempts.append(message)
            self.summary.api_calls += 1
            self.summary.retries += message.outcome == "retried"
            self.summary.rate_limited += message.rate_limited
            return True
        if isinstance(message, Mapping):
            self.mappings.append(message)
            return True
        return False

    def write_calls(self, con: duckdb.DuckDBPyConnection,
                    more_mappings: Sequence[Mapping] = ()) -> None:
        """Write the attempts and mappings kept so far (with `more_mappings`), and forget them."""
        if self.attempts:
            write_attempts(con, self.attempts, run_id=self.run_id)
        write_mappings(con, [*self.mappings, *more_mappings], now=self.now)
        self.attempts, self.mappings = [], []
