"""Inbound sync: what happens to our invoices at Stripe (payments, failures, refunds, voids)
comes back as events and moves their ledger status (contract section 4).

Events arrive by polling `/v1/events` (a cursor in `sync.cursors`) or by webhook (the
integration API stores them); both land in `sync.provider_events`, deduplicated by event id.
Applying them walks every unapplied row in Stripe's `created` order through
`apply_status_changes(payment_side=True)`: a twice-delivered event is `already`, a late one
that would regress (a `payment_failed` after `paid`) is `ignored`, and an event about an
invoice that is not issued yet waits for its sync. `credit_note.voided` (or an update showing a
void) of one of our credit notes voids it in `billing.credit_notes`, with its status history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from pipelines.invoicing.status import StatusChange, apply_status_changes, current_statuses
from pipelines.providers.stripe_sync.client import StripeGateway
from pipelines.providers.stripe_sync.correction_writes import void_credit_notes
from pipelines.providers.stripe_sync.issue_plan import to_minor
from pipelines.providers.stripe_sync.paging import PAGE_SIZE, list_all
from pipelines.rating.lifecycle import POST_ISSUE
from pipelines.warehouse import run_sql, sql, transaction

PROVIDER = "stripe"
ACTOR = "stripe_events"
STREAM = "events"

INVOICE_EVENTS: dict[str, str] = {
    "invoice.paid": "paid",
    "invoice.payment_failed": "payment_processing.failed",
    "invoice.payment_action_required": "payment_processing.action_required",
    "invoice.overdue": "overdue",
    "invoice.voided": "voided",
    "invoice.marked_uncollectible": "uncollectible",
}
# Events that change one of our credit notes (a void at Stripe voids ours)
CREDIT_NOTE_EVENTS = ("credit_note.updated", "credit_note.voided")
EVENT_TYPES: tuple[str, ...] = (*INVOICE_EVENTS, "charge.refunded", "credit_note.created",
                                *CREDIT_NOTE_EVENTS)


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return ((event.get("data") or {}).get("object")) or {}


def _link(value: Any) -> str | None:
    """An id whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def stripe_invoice_of(event: dict[str, Any]) -> str | None:
    """The Stripe invoice an event is about, when the event itself says."""
    obj = _object(event)
    if obj.get("object") == "invoice":
        return obj.get("id")
    return _link(obj.get("invoice"))


def target_status(event: dict[str, Any], ledger_total_minor: int | None,
                  refunded_before_minor: int = 0) -> tuple[str | None, int]:
    """The state an event moves our invoice to (None: nothing to change) and the money it
    refunds, in minor units. Pure.

    charge.refunded carries the charge's cumulative refunded amount; credit notes refund what
    their refunds and out-of-band amounts say, added to what earlier notes refunded."""
    kind = event.get("type", "")
    obj = _object(event)
    if kind in INVOICE_EVENTS:
        return INVOICE_EVENTS[kind], 0
    if kind == "charge.refunded":
        refunded = int(obj.get("amount_refunded") or 0)
        full = bool(obj.get("refunded")) or refunded >= int(obj.get("amount") or 0)
        return ("refunded" if full else "partially_refunded"), 0
    if kind == "credit_note.created":
        money = sum(int(r.get("amount_refunded") or 0) for r in obj.get("refunds") or []) \
            + int(obj.get("out_of_band_amount") or 0)
        if money <= 0:
            return None, 0
        total = refunded_before_minor + money
        full = ledger_total_minor is not None and total >= ledger_total_minor
        return ("refunded" if full else "partially_refunded"), money
    return None, 0


def credit_note_decision(event: dict[str, Any], credit_note_id: str | None,
                         status: str | None) -> tuple[str | None, str]:
    """What a `credit_note.updated|voided` event does to our credit note (`credit_note_id` in
    `status`, None when the Stripe note is not ours): the outcome (`applied` = voided now,
    None = wait until our note is issued) and a detail. Pure."""
    if credit_note_id is None or status is None:
        return "recorded", "not a credit note of ours"
    voided = event.get("type") == "credit_note.voided" or _object(event).get("status") == "void"
    if not voided:
        return "recorded", "no status change"
    if status == "voided":
        return "already", "voided"
    if status != "issued":
        return None, f"credit note {credit_note_id} is {status}"
    return "applied", "issued -> voided"


def _created(event: dict[str, Any]) -> datetime | None:
    created = event.get("created")
    return datetime.fromtimestamp(int(created), UTC) if created is not None else None


def _invoice_ids(con: duckdb.DuckDBPyConnection, provider: str,
                 external_ids: Sequence[str]) -> dict[str, str]:
    """Our invoice id of each mapped provider invoice id."""
    if not external_ids:
        return {}
    rows = con.execute("""
        SELECT external_id, internal_id FROM sync.external_ids
        WHERE provider = $p AND object_type = 'invoice' AND list_contains($ids, external_id)""",
                       {"p": provider, "ids": list(set(external_ids))}).fetchall()
    return dict(rows)


def record_provider_events(con: duckdb.DuckDBPyConnection, provider: str,
                           events: Sequence[dict[str, Any]], *, received_via: str,
                           now: datetime) -> int:
    """Store provider events (Stripe's JSON shape), once per event id; returns how many were
    new. `events` come oldest first. Our invoice is found from the object's
    `metadata.invoice_id`, else from the mapping of the Stripe invoice it names. Run it
    inside the caller's transaction if it needs one."""
    if not events:
        return 0
    links = [stripe_invoice_of(e) for e in events]
    mapped = _invoice_ids(con, provider, [x for x in links if x])
    rows = []
    for position, (event, link) in enumerate(zip(events, links, strict=True)):
        if not event.get("id") or not event.get("type"):
            raise ValueError("provider event without id or type: "
                             f"{json.dumps(event)[:200]}")
        obj = _object(event)
        ours = (obj.get("metadata") or {}).get("invoice_id") if obj.get("object") == "invoice" \
            else None
        rows.append({
            "provider": provider, "event_id": event["id"], "event_type": event["type"],
            "object_id": obj.get("id"), "invoice_id": ours or mapped.get(link or ""),
            "created_at": _created(event),
            # Stripe's `created` has whole seconds: the batch order (oldest first) breaks ties
            "received_at": now + timedelta(microseconds=position),
            "received_via": received_via,
            "payload": json.dumps(event, sort_keys=True, default=str)})
    frame = pl.DataFrame(rows, schema={
        "provider": pl.String, "event_id": pl.String, "event_type": pl.String,
        "object_id": pl.String, "invoice_id": pl.String,
        "created_at": pl.Datetime("us", "UTC"), "received_at": pl.Datetime("us", "UTC"),
        "received_via": pl.String, "payload": pl.String}).unique("event_id", keep="first")
    before = con.execute("SELECT count(*) FROM sync.provider_events WHERE provider = $p",
                         {"p": provider}).fetchall()[0][0]
    con.register("provider_events_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/provider_events_insert")
    finally:
        con.unregister("provider_events_frame")
    after = con.execute("SELECT count(*) FROM sync.provider_events WHERE provider = $p",
                        {"p": provider}).fetchall()[0][0]
    return int(after - before)


def apply_provider_events(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """Apply every unapplied Stripe event to our invoices, oldest first; returns the count of
    each outcome (applied, already, ignored, recorded, unknown_invoice, not_billing, and
    `waiting` for events kept for later: their invoice is not issued yet, or a refund whose
    invoice is not known yet). Runs in its own transaction."""
    with transaction(con):
        pending = con.execute(sql("sync/provider_events_unapplied"),
                              {"provider": PROVIDER}).fetchall()
        counts: dict[str, int] = {}
        if not pending:
            return counts
        ids = [row[2] for row in pending if row[2]]
        statuses = current_statuses(con, ids)
        notes = _our_credit_notes(con, [json.loads(row[3]) for row in pending
                                        if row[1] in CREDIT_NOTE_EVENTS])
        voids: dict[str, str] = {}  # our credit note -> cause
        totals = _ledger_totals_minor(con, ids)
        refunded: dict[str, int] = {}
        changes: list[StatusChange] = []
        decided: list[tuple[str, str | None, str | None]] = []  # event, outcome, detail
        slots: list[tuple[str, int]] = []  # event id, index in changes
        for event_id, event_type, invoice_id, payload in pending:
            event = json.loads(payload)
            if invoice_id is None:
                if event_type == "charge.refunded":
                    decided.append((event_id, None, "waiting for the charge's invoice"))
                else:
                    decided.append((event_id, "not_billing", "not one of our invoices"))
                continue
            if invoice_id not in statuses:
                decided.append((event_id, "unknown_invoice", f"no invoice {invoice_id}"))
                continue
            if statuses[invoice_id] not in POST_ISSUE:
                decided.append((event_id, None, f"invoice is {statuses[invoice_id]}"))
                continue
            if event_type in CREDIT_NOTE_EVENTS:
                ours, status = notes.get(_object(event).get("id") or "", (None, None))
                outcome, detail = credit_note_decision(event, ours, status)
                if outcome == "applied" and ours is not None:
                    voids[ours] = f"stripe {event_type} {event_id}"
                    notes[_object(event)["id"]] = (ours, "voided")
                decided.append((event_id, outcome, detail))
                continue
            target, money = target_status(event, totals.get(invoice_id),
                                          refunded.get(invoice_id, 0))
            refunded[invoice_id] = refunded.get(invoice_id, 0) + money
            if target is None:
                decided.append((event_id, "recorded", "no status change"))
                continue
            slots.append((event_id, len(changes)))
            changes.append(StatusChange(invoice_id, target, f"stripe {event_type} {event_id}",
                                        ACTOR, payment_side=True))
        outcomes = apply_status_changes(con, changes, now=now)
        void_credit_notes(con, voids, actor=ACTOR, now=now)
        for event_id, index in slots:
            outcome = outcomes[index]
            detail = " -> ".join(outcome.path) if outcome.path else \
                f"{outcome.from_status} stays ({outcome.change.to_status} not allowed)" \
                if outcome.outcome == "ignored" else outcome.from_status
            decided.append((event_id, outcome.outcome, detail))
        frame = pl.DataFrame(
            [{"event_id": e, "outcome": o, "detail": d} for e, o, d in decided],
            schema={"event_id": pl.String, "outcome": pl.String, "detail": pl.String})
        con.register("provider_event_outcomes", frame.to_arrow())
        try:
            run_sql(con, "sync/provider_events_outcomes", {"provider": PROVIDER, "now": now})
        finally:
            con.unregister("provider_event_outcomes")
        for _, outcome, _ in decided:
            name = outcome or "waiting"
            counts[name] = counts.get(name, 0) + 1
        return counts


def _our_credit_notes(con: duckdb.DuckDBPyConnection,
                      events: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Per Stripe credit note of the events: our credit note (its `metadata.credit_note_id`,
    else the mapping) and its status, for those that are ours."""
    objects = [_object(e) for e in events]
    external = [o["id"] for o in objects if o.get("id")]
    if not external:
        return {}
    mapped = dict(con.execute("""
        SELECT external_id, internal_id FROM sync.external_ids
        WHERE provider = $p AND object_type = 'credit_note' AND list_contains($ids, external_id)
        """, {"p": PROVIDER, "ids": external}).fetchall())
    ours = {o["id"]: (o.get("metadata") or {}).get("credit_note_id") or mapped.get(o["id"])
            for o in objects if o.get("id")}
    wanted = [i for i in ours.values() if i]
    statuses = dict(con.execute(
        "SELECT credit_note_id, status FROM billing.credit_notes "
        "WHERE list_contains($ids, credit_note_id)", {"ids": wanted}).fetchall()) \
        if wanted else {}
    return {ext: (cid, statuses[cid]) for ext, cid in ours.items() if cid in statuses}


def _ledger_totals_minor(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    rows = con.execute("SELECT invoice_id, total, currency FROM billing.invoices "
                       "WHERE list_contains($ids, invoice_id)",
                       {"ids": list(set(ids))}).fetchall()
    return {i: to_minor(total, currency, i) for i, total, currency in rows}


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


def resolve_refund_invoices(con: duckdb.DuckDBPyConnection, gateway: StripeGateway, *,
                            now: datetime) -> int:
    """Find our invoice of stored `charge.refunded` events that do not name one yet (a charge
    links to its invoice through the invoice payment of its PaymentIntent). Charges that pay
    no invoice of ours are marked `not_billing`. Returns how many were resolved."""
    rows = con.execute("""
        SELECT event_id, payload FROM sync.provider_events
        WHERE provider = $p AND applied_at IS NULL AND invoice_id IS NULL
          AND event_type = 'charge.refunded'""", {"p": PROVIDER}).fetchall()
    v1 = gateway.client.v1
    found: dict[str, str | None] = {}
    for event_id, payload in rows:
        intent = _link(_object(json.loads(payload)).get("payment_intent"))
        stripe_invoice = None
        if intent:
            page = gateway.call(
                "invoice_payments.list", event_id,
                lambda o, pi=intent: v1.invoice_payments.list(
                    params={"payment": {"type": "payment_intent", "payment_intent": pi},
                            "limit": 1}, options=o))
            stripe_invoice = _link(page.data[0].invoice) if page.data else None
        found[event_id] = stripe_invoice
    mapped = _invoice_ids(con, PROVIDER, [x for x in found.values() if x])
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
