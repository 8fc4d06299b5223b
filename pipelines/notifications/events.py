"""Invoice and credit note events from the status histories, and who gets them.

Every transition of `billing.invoice_status_history` and `billing.credit_note_status_history`
that users are told about becomes one row of `notify.events` (its message id deterministic, so a
re-run never makes a second event), with the documents and their lines frozen into the payload
at enqueue time, and one `notify.deliveries` row per subscribed channel; so does every document
issued that corrects an invoice (`invoice.corrected`). The mapping from states to event types
lives in sql/notify/events.sql, credit_note_events.sql and correction_events.sql, the payload's
documents in sql/notify/documents.sql, the routing in sql/notify/deliveries.sql.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from pipelines.catalog.models import Catalog
from pipelines.warehouse import register_currency_digits, run_sql

EVENT_TYPES: dict[str, str] = {
    "draft": "invoice.created",
    "draft.syncing": "invoice.draft_sync_requested",
    "issuing.syncing": "invoice.issuing_sync_requested",
    "issued": "invoice.issued",
    "paid": "invoice.paid",
    "payment_processing.failed": "invoice.payment_failed",
    "payment_processing.action_required": "invoice.payment_action_required",
    "overdue": "invoice.overdue",
    "voided": "invoice.voided",
    "uncollectible": "invoice.marked_uncollectible",
    "refunded": "invoice.refunded",
    "partially_refunded": "invoice.refunded",
    "draft.sync_failed": "sync.failed",
    "issuing.sync_failed": "sync.failed",
}
"""The state an invoice reaches -> the event announcing it (documentation and tests; the SQL is
the one that applies it). `draft` counts only when created; `issuing.syncing` only for custom
invoicing (Stripe's is internal)."""

CREDIT_NOTE_EVENT_TYPES: dict[str, str] = {
    "draft": "credit_note.created",
    "draft.syncing": "credit_note.draft_sync_requested",
    "issuing.syncing": "credit_note.issuing_sync_requested",
    "issued": "credit_note.issued",
    "voided": "credit_note.voided",
}
"""The state a credit note reaches -> the event announcing it (`draft` only when created; the
sync requests only for custom invoicing, the one app whose credit notes take those states)."""

INVOICE_CORRECTED = "invoice.corrected"
"""Sent for the corrected invoice when a document correcting it is issued."""

TEST_EVENT = "webhook.test"


@dataclass(frozen=True)
class Enqueued:
    """What one enqueue pass did."""

    events: int
    deliveries: int


def write_channels(con: duckdb.DuckDBPyConnection, catalog: Catalog) -> None:
    """Refresh notify.channels from the catalog (the variable names only, never secrets)."""
    rows = [{"channel": c.key, "url": c.url, "secret_env": c.secret_env,
             "event_types": list(c.event_types), "customers": list(c.customers)}
            for c in catalog.notification_channels.values()]
    frame = pl.DataFrame(rows, schema={"channel": pl.String, "url": pl.String,
                                       "secret_env": pl.String,
                                       "event_types": pl.List(pl.String),
                                       "customers": pl.List(pl.String)})
    con.register("notify_channels_frame", frame.to_arrow())
    con.execute("DELETE FROM notify.channels").fetchall()
    con.execute("INSERT INTO notify.channels SELECT channel, url, secret_env, event_types, "
                "customers FROM notify_channels_frame").fetchall()
    con.unregister("notify_channels_frame")


def enqueue_events(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, now: datetime,
                   run_id: str | None = None) -> Enqueued:
    """Turn new status history rows into invoice and credit note events, correcting documents
    issued into `invoice.corrected` events, and alerts opened or closed since the last pass into
    alert events, each with its deliveries. Run it inside the caller's transaction; running it
    again changes nothing."""
    write_channels(con, catalog)
    register_currency_digits(con)
    run_sql(con, "notify/documents")
    before = _count(con, "notify.deliveries")
    events = 0
    for source in ("notify/events", "notify/credit_note_events", "notify/correction_events",
                   "notify/alert_events"):
        run_sql(con, source, {"now": now, "run_id": run_id})
        events += con.execute("SELECT count(*) FROM notify_new_events").fetchall()[0][0]
        run_sql(con, "notify/events_insert", {"now": now, "run_id": run_id})
        run_sql(con, "notify/deliveries", {"now": now})
        con.execute("DROP TABLE notify_new_events")
    deliveries = _count(con, "notify.deliveries") - before
    return Enqueued(events=int(events), deliveries=int(deliveries))


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
