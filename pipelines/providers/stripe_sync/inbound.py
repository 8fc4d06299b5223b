"""Inbound sync: what happens to our invoices at Stripe (payments, failures, refunds, voids)
comes back as events and moves their ledger status (contract section 4).

Events arrive by polling `/v1/events` (a cursor in `sync.cursors`) or by webhook (the
integration API stores them); both land in `sync.provider_events`, deduplicated by event id.
Applying them walks every unapplied row in Stripe's `created` order through
`apply_status_changes(payment_side=True)`: a twice-delivered event is `already`, a late one
that would regress (a `payment_failed` after `paid`) is `ignored`, and an event about an
invoice that is not issued yet waits for its sync. `credit_note.voided` (or an update showing a
void) of one of our credit notes voids it in `billing.credit_notes`, with its status history.

An event is about one of ours only through the mapping the sync recorded (`ownership`): a
Stripe invoice or credit note made by hand whose metadata names one of ours is `not_ours`,
recorded and never applied. Polling is `event_poll`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import polars as pl

from pipelines.invoicing.status import StatusChange, apply_status_changes, current_statuses
from pipelines.providers.stripe_sync.correction_writes import void_credit_notes
from pipelines.providers.stripe_sync.issue_plan import to_minor
from pipelines.providers.stripe_sync.ownership import (
    claim_of,
    claimed_in_ledger,
    mapped_ids,
    owner_of,
)
from pipelines.rating.lifecycle import POST_ISSUE
from pipelines.warehouse import run_sql, sql, transaction

PROVIDER = "stripe"
ACTOR = "stripe_events"

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


def event_object(event: dict[str, Any]) -> dict[str, Any]:
    """The Stripe object an event is about (`data.object`)."""
    return ((event.get("data") or {}).get("object")) or {}


def linked_id(value: Any) -> str | None:
    """An id whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def stripe_invoice_of(event: dict[str, Any]) -> str | None:
    """The Stripe invoice an event is about, when the event itself says."""
    obj = event_object(event)
    if obj.get("object") == "invoice":
        return obj.get("id")
    return linked_id(obj.get("invoice"))


def target_status(event: dict[str, Any], ledger_total_minor: int | None,
                  refunded_before_minor: int = 0) -> tuple[str | None, int]:
    """The state an event moves our invoice to (None: nothing to change) and the money it
    refunds, in minor units. Pure.

    charge.refunded carries the charge's cumulative refunded amount; credit notes refund what
    their refunds and out-of-band amounts say, added to what earlier notes refunded."""
    kind = event.get("type", "")
    obj = event_object(event)
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
    `status`; None when the Stripe note is not ours, a status None while ours is in flight and
    the Stripe note not mapped yet): the outcome (`applied` = voided now, None = wait until our
    note is issued and mapped) and a detail. Pure."""
    if credit_note_id is None:
        return "not_ours", "not a credit note of ours"
    if status is None:
        return None, f"credit note {credit_note_id} is being issued at Stripe (not mapped yet)"
    voided = (event.get("type") == "credit_note.voided"
              or event_object(event).get("status") == "void")
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


def record_provider_events(con: duckdb.DuckDBPyConnection, provider: str,
                           events: Sequence[dict[str, Any]], *, received_via: str,
                           now: datetime) -> int:
    """Store provider events (Stripe's JSON shape), once per event id; returns how many were
    new. `events` come oldest first. `invoice_id` is our invoice the Stripe invoice it names is
    mapped to (never the object's metadata: see `ownership`); applying resolves it again. Run
    it inside the caller's transaction if it needs one."""
    if not events:
        return 0
    links = [stripe_invoice_of(e) for e in events]
    mapped = mapped_ids(con, "invoice", [x for x in links if x])
    rows = []
    for position, (event, link) in enumerate(zip(events, links, strict=True)):
        if not event.get("id") or not event.get("type"):
            raise ValueError("provider event without id or type: "
                             f"{json.dumps(event)[:200]}")
        obj = event_object(event)
        rows.append({
            "provider": provider, "event_id": event["id"], "event_type": event["type"],
            "object_id": obj.get("id"), "invoice_id": mapped.get(link or ""),
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


@dataclass(frozen=True)
class Pending:
    """An unapplied event, with our invoice it is about (None: none of ours, or not yet)."""

    event_id: str
    event_type: str
    event: dict[str, Any]
    invoice_id: str | None


def _resolve_invoices(con: duckdb.DuckDBPyConnection,
                      rows: Sequence[tuple[str, str, str | None, str]]
                      ) -> tuple[list[Pending], dict[str, tuple[str | None, str]]]:
    """Our invoice of each unapplied event, through the mapping of the Stripe invoice it names
    (an event naming none, a refunded charge, keeps what `record_refund_invoices` found, also
    through the mapping); and the decision, now, for each event about an unmapped Stripe
    invoice: wait (None) while the invoice of ours its metadata names is in flight, else
    `not_ours`."""
    parsed = [(event_id, event_type, stored, json.loads(payload))
              for event_id, event_type, stored, payload in rows]
    links = {event_id: stripe_invoice_of(event) for event_id, _, _, event in parsed}
    mapped = mapped_ids(con, "invoice", [link for link in links.values() if link])
    claims = {event_id: _invoice_claim(event) for event_id, _, _, event in parsed}
    claimed = claimed_in_ledger(con, "invoice", [c for c in claims.values() if c])
    pending: list[Pending] = []
    unmapped: dict[str, tuple[str | None, str]] = {}
    for event_id, event_type, stored, event in parsed:
        link = links[event_id]
        if link is None:
            pending.append(Pending(event_id, event_type, event, stored))
            continue
        owner = owner_of(link, claims[event_id], mapped, claimed)
        pending.append(Pending(event_id, event_type, event, owner.internal_id))
        if owner.internal_id is not None:
            continue
        named = f"; its metadata names invoice {owner.claim}" if owner.claim else ""
        unmapped[event_id] = (
            (None, f"stripe invoice {link} is not mapped yet; invoice {owner.claim} it names "
                   "is being issued at Stripe") if owner.pending else
            ("not_ours", f"stripe invoice {link} is not mapped to an invoice of ours{named}"))
    return pending, unmapped


def webhook_not_ours(con: duckdb.DuckDBPyConnection, event: dict[str, Any], *,
                     first_shard: bool) -> str | None:
    """With customer shards, whether a Stripe webhook event is this shard's to record (None) or
    why not: it is when the shard's own mapping knows the Stripe invoice it names (or the Stripe
    credit note it is about), or when that object is unmapped but claims one of the shard's
    documents in flight (it waits here, as on one warehouse). A refund naming no invoice is
    every shard's (each shard's sync finds the charge's invoice at Stripe and keeps the event
    only where the mapping knows it, `not_billing` elsewhere); an event about no invoice at all
    is the first shard's (recorded `not_billing` there, as on one warehouse)."""
    obj = event_object(event)
    link = stripe_invoice_of(event)
    note = obj.get("id") if obj.get("object") == "credit_note" else None
    if link is None and note is None:
        if event.get("type") == "charge.refunded" or first_shard:
            return None
        return "not about an invoice"
    if link is not None and mapped_ids(con, "invoice", [link]):
        return None
    if note and mapped_ids(con, "credit_note", [note]):
        return None
    claims = [("invoice", _invoice_claim(event)),
              ("credit_note", claim_of("credit_note", obj.get("metadata")) if note else None)]
    for object_type, claim in claims:
        if claim and claimed_in_ledger(con, object_type, [claim]).get(claim):
            return None       # the sync's own object, not mapped yet: it waits here
    named = next((f"; its metadata names {kind.replace('_', ' ')} {claim}"
                  for kind, claim in claims if claim), "")
    what = (f"stripe invoice {link} is not mapped to an invoice" if link
            else f"stripe credit note {note} is not mapped to a credit note")
    return f"{what} of ours{named}"


def _invoice_claim(event: dict[str, Any]) -> str | None:
    obj = event_object(event)
    return claim_of("invoice", obj.get("metadata")) if obj.get("object") == "invoice" else None


def apply_provider_events(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """Apply every unapplied Stripe event to our invoices, oldest first; returns the count of
    each outcome (applied, already, ignored, recorded, unknown_invoice, not_billing, not_ours,
    and `waiting` for events kept for later: their invoice is not issued yet, or a refund whose
    invoice is not known yet). Runs in its own transaction."""
    with transaction(con):
        rows = con.execute(sql("sync/provider_events_unapplied"),
                           {"provider": PROVIDER}).fetchall()
        counts: dict[str, int] = {}
        if not rows:
            return counts
        pending, unmapped = _resolve_invoices(con, rows)
        ids = [p.invoice_id for p in pending if p.invoice_id]
        statuses = current_statuses(con, ids)
        notes = _credit_note_owners(con, [p.event for p in pending
                                          if p.event_type in CREDIT_NOTE_EVENTS])
        voids: dict[str, str] = {}  # our credit note -> cause
        totals = _ledger_totals_minor(con, ids)
        refunded: dict[str, int] = {}
        changes: list[StatusChange] = []
        decided: list[tuple[str, str | None, str | None]] = []  # event, outcome, detail
        slots: list[tuple[str, int]] = []  # event id, index in changes
        for p in pending:
            event_id, event_type, event, invoice_id = (p.event_id, p.event_type, p.event,
                                                       p.invoice_id)
            if event_id in unmapped:
                decided.append((event_id, *unmapped[event_id]))
                continue
            if invoice_id is None:
                if event_type == "charge.refunded":
                    decided.append((event_id, None, "waiting for the charge's invoice"))
                else:
                    decided.append((event_id, "not_billing", "not about an invoice"))
                continue
            if invoice_id not in statuses:
                decided.append((event_id, "unknown_invoice", f"no invoice {invoice_id}"))
                continue
            if statuses[invoice_id] not in POST_ISSUE:
                decided.append((event_id, None, f"invoice is {statuses[invoice_id]}"))
                continue
            if event_type in CREDIT_NOTE_EVENTS:
                stripe_note = event_object(event).get("id") or ""
                ours, status = notes.get(stripe_note, (None, None))
                outcome, detail = credit_note_decision(event, ours, status)
                if outcome == "applied" and ours is not None:
                    voids[ours] = f"stripe {event_type} {event_id}"
                    notes[stripe_note] = (ours, "voided")
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
        resolved = {p.event_id: p.invoice_id for p in pending}
        frame = pl.DataFrame(
            [{"event_id": e, "invoice_id": resolved[e], "outcome": o, "detail": d}
             for e, o, d in decided],
            schema={"event_id": pl.String, "invoice_id": pl.String, "outcome": pl.String,
                    "detail": pl.String})
        con.register("provider_event_outcomes", frame.to_arrow())
        try:
            run_sql(con, "sync/provider_events_outcomes", {"provider": PROVIDER, "now": now})
        finally:
            con.unregister("provider_event_outcomes")
        for _, outcome, _ in decided:
            name = outcome or "waiting"
            counts[name] = counts.get(name, 0) + 1
        return counts


def _credit_note_owners(con: duckdb.DuckDBPyConnection,
                        events: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """Per Stripe credit note of the events that is ours (by the `credit_note` mapping): our
    credit note and its status. A Stripe credit note that is not mapped but names a credit note
    of ours in flight (its sync started, its answer not recorded) maps to that one with status
    None, so its event waits; any other is not ours."""
    objects = [event_object(e) for e in events if event_object(e).get("id")]
    if not objects:
        return {}
    mapped = mapped_ids(con, "credit_note", [o["id"] for o in objects])
    claims = {o["id"]: claim_of("credit_note", o.get("metadata")) for o in objects}
    claimed = claimed_in_ledger(con, "credit_note", [c for c in claims.values() if c])
    owners = {ext: owner_of(ext, claim, mapped, claimed) for ext, claim in claims.items()}
    wanted = [o.internal_id for o in owners.values() if o.internal_id]
    statuses = dict(con.execute(
        "SELECT credit_note_id, status FROM billing.credit_notes "
        "WHERE list_contains($ids, credit_note_id)", {"ids": wanted}).fetchall()) \
        if wanted else {}
    found: dict[str, tuple[str, str | None]] = {}
    for ext, owner in owners.items():
        if owner.internal_id in statuses:
            found[ext] = (owner.internal_id, statuses[owner.internal_id])
        elif owner.pending and owner.claim:
            found[ext] = (owner.claim, None)
    return found


def _ledger_totals_minor(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> dict[str, int]:
    if not ids:
        return {}
    # what the customer owes: Stripe's charges and refunds move amounts including tax
    rows = con.execute("SELECT invoice_id, coalesce(total_including_tax, total), currency "
                       "FROM billing.invoices WHERE list_contains($ids, invoice_id)",
                       {"ids": list(set(ids))}).fetchall()
    return {i: to_minor(total, currency, i) for i, total, currency in rows}
