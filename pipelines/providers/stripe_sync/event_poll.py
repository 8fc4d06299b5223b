"""The `sync/stripe_events` step: Stripe's events polled since the stored cursor, stored, the
invoices of refunded charges looked up, and every unapplied event applied (`inbound`).

The warehouse is never held while Stripe is called (`recording`): the cursor is read, the
events polled, then recorded with the new cursor; the refunded charges' invoices are looked up,
then recorded and every event applied, each warehouse session short and apart from the calls.
A crash before the events are recorded leaves the cursor where it was: they are polled again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from pipelines.providers.stripe_sync.client import StripeGateway
from pipelines.providers.stripe_sync.inbound import (
    EVENT_TYPES,
    PROVIDER,
    apply_provider_events,
    event_object,
    linked_id,
    record_provider_events,
)
from pipelines.providers.stripe_sync.ownership import mapped_ids
from pipelines.providers.stripe_sync.paging import PAGE_SIZE, list_all
from pipelines.providers.stripe_sync.recording import MakeGateway, OpenWriter, recording_gateway
from pipelines.warehouse import transaction

STREAM = "events"


def poll_events(gateway: StripeGateway, cursor: str | None) -> tuple[list[dict[str, Any]],
                                                                      str | None]:
    """Events newer than `cursor` (oldest first) and the new cursor (the newest event id).

    Stripe lists newest first; `ending_before=cursor` pages towards newer events, each page
    still newest first. Without a cursor, everything Stripe still lists (30 days) is read."""
    v1 = gateway.client.v1
    events: list[dict[str, Any]] = []
    base: dict[str, Any] = {"limit": PAGE_SIZE, "types": list(EVENT_TYPES)}
    if cursor is None:
        events = [e.to_dict() for e in list_all(
            gateway, "events.list", None,
            lambda params, options: v1.events.list(params=params, options=options), base)]
        events.reverse()
    else:
        before = cursor
        while True:
            params = dict(base, ending_before=before)
            page = gateway.call("events.list", None,
                                lambda o, p=params: v1.events.list(params=p, options=o))
            batch = [e.to_dict() for e in page.data]
            events.extend(reversed(batch))
            if not page.has_more or not batch:
                break
            before = batch[0]["id"]
    return events, (events[-1]["id"] if events else cursor)


def read_cursor(con: duckdb.DuckDBPyConnection) -> str | None:
    rows = con.execute("SELECT cursor FROM sync.cursors WHERE provider = $p AND stream = $s",
                       {"p": PROVIDER, "s": STREAM}).fetchall()
    return rows[0][0] if rows else None


def write_cursor(con: duckdb.DuckDBPyConnection, cursor: str, *, now: datetime) -> None:
    con.execute("""
        INSERT INTO sync.cursors (provider, stream, cursor, updated_at)
        VALUES ($p, $s, $c, $now)
        ON CONFLICT (provider, stream) DO UPDATE SET cursor = excluded.cursor,
                                                     updated_at = excluded.updated_at""",
                {"p": PROVIDER, "s": STREAM, "c": cursor, "now": now}).fetchall()


def unresolved_refunds(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """Stored `charge.refunded` events that name no invoice of ours yet, with the
    PaymentIntent of their charge (None when the charge has none)."""
    rows = con.execute("""
        SELECT event_id, payload FROM sync.provider_events
        WHERE provider = $p AND applied_at IS NULL AND invoice_id IS NULL
          AND event_type = 'charge.refunded'""", {"p": PROVIDER}).fetchall()
    return {event_id: linked_id(event_object(json.loads(payload)).get("payment_intent"))
            for event_id, payload in rows}


def find_refund_invoices(gateway: StripeGateway,
                         intents: dict[str, str | None]) -> dict[str, str | None]:
    """The Stripe invoice each refunded charge paid (a charge links to its invoice through the
    invoice payment of its PaymentIntent), by event id; None when it paid no invoice. Calls
    Stripe only: no warehouse."""
    v1 = gateway.client.v1
    found: dict[str, str | None] = {}
    for event_id, intent in intents.items():
        stripe_invoice = None
        if intent:
            page = gateway.call(
                "invoice_payments.list", event_id,
                lambda o, pi=intent: v1.invoice_payments.list(
                    params={"payment": {"type": "payment_intent", "payment_intent": pi},
                            "limit": 1}, options=o))
            stripe_invoice = linked_id(page.data[0].invoice) if page.data else None
        found[event_id] = stripe_invoice
    return found


def record_refund_invoices(con: duckdb.DuckDBPyConnection, found: dict[str, str | None], *,
                           now: datetime) -> int:
    """Name our invoice (through the mapping of the Stripe invoice `find_refund_invoices`
    found) on each refund event; charges that pay no invoice of ours are marked
    `not_billing`. Returns how many were resolved."""
    mapped = mapped_ids(con, "invoice", [x for x in found.values() if x])
    resolved = 0
    for event_id, stripe_invoice in found.items():
        ours = mapped.get(stripe_invoice or "")
        if ours:
            resolved += 1
            con.execute("UPDATE sync.provider_events SET invoice_id = $i "
                        "WHERE provider = $p AND event_id = $e",
                        {"i": ours, "p": PROVIDER, "e": event_id}).fetchall()
        else:
            con.execute("""
                UPDATE sync.provider_events SET outcome = 'not_billing', applied_at = $now,
                       detail = 'the charge pays no invoice of ours'
                WHERE provider = $p AND event_id = $e""",
                        {"p": PROVIDER, "e": event_id, "now": now}).fetchall()
    return resolved


@dataclass
class EventsSummary:
    """Counts for the asset's metadata."""

    polled: int = 0
    received: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0


def sync_events(open_writer: OpenWriter, make_gateway: MakeGateway, *, now: datetime,
                run_id: str) -> EventsSummary:
    """Poll Stripe's events since the cursor, store them, find the invoices of refunded charges
    and apply every unapplied event. The warehouse writer is opened (`open_writer`) for short
    sessions between the calls, never while Stripe is called; attempts are written with what
    they brought."""
    gateway, calls = recording_gateway(make_gateway, run_id=run_id, now=now)
    with open_writer() as con:
        cursor = read_cursor(con)
    events, cursor = poll_events(gateway, cursor)
    with open_writer() as con:
        with transaction(con):
            calls.write_calls(con)
            received = record_provider_events(con, PROVIDER, events, received_via="poll",
                                              now=now)
            if cursor:
                write_cursor(con, cursor, now=now)
        intents = unresolved_refunds(con)
    found = find_refund_invoices(gateway, intents) if intents else {}
    with open_writer() as con:
        with transaction(con):
            calls.write_calls(con)
            record_refund_invoices(con, found, now=now)
        outcomes = apply_provider_events(con, now=now)
    counts = calls.summary
    return EventsSummary(len(events), received, outcomes, counts.api_calls, counts.retries,
                         counts.rate_limited)
