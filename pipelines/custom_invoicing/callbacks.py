"""Applying a custom invoicing integration's callbacks to the ledger (contract sections 5, 9).

The integration API accepted each callback against the state it last saw; the warehouse is the
truth, so every callback is checked again here. An applied callback stores the integration's
numbers and external ids (`sync.external_ids`, provider `custom_invoicing`) and moves the
invoice on through `apply_status_changes`, or the credit note through
`credit_notes.move_credit_notes`. A refused one changes nothing (every check comes before the
first write) and says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from pipelines.api.rules import (
    CREDIT_NOTE_DRAFT_SYNCHRONIZED,
    CREDIT_NOTE_KINDS,
)
from pipelines.custom_invoicing.credit_notes import CreditNoteChange, move_credit_notes
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.rating.lifecycle import (
    CREDIT_NOTE_NUMBER_PREFIX,
    INVOICE_NUMBER_PREFIX,
    PAYMENT_TRIGGERS,
    has_own_number_form,
)
from pipelines.settings import parse_instant

PROVIDER = "custom_invoicing"
DRAFT_SYNCHRONIZED = "custom_invoicing.draft_synchronized"
ISSUING_SYNCHRONIZED = "custom_invoicing.issuing_synchronized"
PAYMENT_STATUS = "custom_invoicing.payment_status"
KINDS = (DRAFT_SYNCHRONIZED, ISSUING_SYNCHRONIZED, PAYMENT_STATUS, *CREDIT_NOTE_KINDS)


@dataclass(frozen=True)
class CallbackResult:
    """`applied`, or `rejected` with the reason (naming the state or the field)."""

    outcome: str
    reason: str | None = None
    status: str | None = None   # the invoice's status afterwards


def _rejected(reason: str, status: str | None = None) -> CallbackResult:
    return CallbackResult("rejected", reason, status)


def apply_callback(con: duckdb.DuckDBPyConnection, kind: str, invoice_id: str,
                   body: Mapping[str, Any], *, actor: str, now: datetime) -> CallbackResult:
    """Apply one callback inside the caller's transaction (`invoice_id`: the credit note's id
    for the credit note callbacks)."""
    if kind in CREDIT_NOTE_KINDS:
        return _credit_note_callback(con, kind, invoice_id, body, actor=actor, now=now)
    found = con.execute("""
        SELECT status, app FROM billing.invoices WHERE invoice_id = $id""",
                        {"id": invoice_id}).fetchall()
    if not found or found[0][1] != PROVIDER:
        return _rejected(f"unknown invoice {invoice_id} (no custom_invoicing invoice has this id)")
    status = found[0][0]
    if kind == DRAFT_SYNCHRONIZED:
        return _draft_synchronized(con, invoice_id, status, body, actor=actor, now=now)
    if kind == ISSUING_SYNCHRONIZED:
        return _issuing_synchronized(con, invoice_id, status, body, actor=actor, now=now)
    if kind == PAYMENT_STATUS:
        return _payment_status(con, invoice_id, status, body, actor=actor, now=now)
    return _rejected(f"unknown callback kind {kind!r}", status)


def _lines_by_kind(con: duckdb.DuckDBPyConnection, invoice_id: str) -> tuple[set[str], set[str]]:
    rows = con.execute("SELECT line_id, line_type FROM billing.invoice_lines "
                       "WHERE invoice_id = $id", {"id": invoice_id}).fetchall()
    return ({lid for lid, kind in rows if kind != "discount"},
            {lid for lid, kind in rows if kind == "discount"})


def _number_taken(con: duckdb.DuckDBPyConnection, number: str, invoice_id: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM billing.invoices WHERE invoice_number = $n AND invoice_id <> $id",
        {"n": number, "id": invoice_id}).fetchall()[0][0])


def _own_number_refusal(field: str, number: Any, prefix: str) -> str | None:
    """Why an integration's number is refused when it has the form of our own numbering (our
    gap-free sequence could give the same number to another document later), else None."""
    if number is None or not has_own_number_form(str(number), prefix):
        return None
    return (f"{field}: {number} has the form of our own {prefix}-YYYYMM-NNNNN numbering and "
            "could collide with a number we give later; send the integration's own number")


def _map(con: duckdb.DuckDBPyConnection, object_type: str, internal_id: str, external_id: str,
         now: datetime) -> None:
    con.execute("""
        INSERT INTO sync.external_ids (provider, object_type, internal_id, external_id, created_at)
        VALUES ($provider, $type, $internal, $external, $now)
        ON CONFLICT (provider, object_type, internal_id)
        DO UPDATE SET external_id = excluded.external_id""",
                {"provider": PROVIDER, "type": object_type, "internal": internal_id,
                 "external": external_id, "now": now}).fetchall()


def _move(con: duckdb.DuckDBPyConnection, invoice_id: str, to_status: str, cause: str,
          actor: str, now: datetime, *, payment_side: bool = False) -> str | None:
    [outcome] = apply_status_changes(
        con, [StatusChange(invoice_id, to_status, cause, actor, payment_side=payment_side)],
        now=now)
    return outcome.status if outcome.outcome in ("applied", "already") else None


def _draft_synchronized(con: duckdb.DuckDBPyConnection, invoice_id: str, status: str,
                        body: Mapping[str, Any], *, actor: str, now: datetime) -> CallbackResult:
    if status != "draft.syncing":
        return _rejected(f"invoice is {status}; draft/synchronized is accepted in draft.syncing",
                         status)
    invoicing = body.get("invoicing") or {}
    external_id = invoicing.get("external_id")
    if not isinstance(external_id, str) or not external_id:
        return _rejected("invoicing.external_id: required", status)
    number = invoicing.get("invoice_number")
    refusal = _own_number_refusal("invoicing.invoice_number", number, INVOICE_NUMBER_PREFIX)
    if refusal is not None:
        return _rejected(refusal, status)
    if number is not None and _number_taken(con, number, invoice_id):
        return _rejected(f"invoicing.invoice_number: {number} is another invoice's number", status)
    charges, discounts = _lines_by_kind(con, invoice_id)
    pairs: list[tuple[str, str, str]] = []
    for field, key, known, object_type in (
            ("line_external_ids", "line_id", charges, "line"),
            ("line_discount_external_ids", "line_discount_id", discounts, "discount")):
        for index, entry in enumerate(invoicing.get(field) or []):
            internal = entry.get(key)
            if internal not in known:
                return _rejected(f"invoicing.{field}[{index}].{key}: {internal!r} is not a "
                                 f"{object_type} of this invoice", status)
            pairs.append((object_type, internal, str(entry.get("external_id"))))
    _map(con, "invoice", invoice_id, external_id, now)
    for object_type, internal, external in pairs:
        _map(con, object_type, internal, external, now)
    if number is not None:
        con.execute("UPDATE billing.invoices SET invoice_number = $n WHERE invoice_id = $id",
                    {"n": number, "id": invoice_id}).fetchall()
    after = _move(con, invoice_id, "issuing", "draft synchronized by the integration", actor, now)
    return CallbackResult("applied", None, after)


def _issuing_synchronized(con: duckdb.DuckDBPyConnection, invoice_id: str, status: str,
                          body: Mapping[str, Any], *, actor: str,
                          now: datetime) -> CallbackResult:
    if status != "issuing.syncing":
        return _rejected(f"invoice is {status}; issuing/synchronized is accepted in "
                         "issuing.syncing", status)
    invoicing = body.get("invoicing") or {}
    sent = invoicing.get("sent_to_customer_at")
    try:
        sent_at = parse_instant(str(sent))
    except ValueError:
        return _rejected("invoicing.sent_to_customer_at: an ISO-8601 instant with offset is "
                         f"required, got {sent!r}", status)
    number = invoicing.get("invoice_number")
    refusal = _own_number_refusal("invoicing.invoice_number", number, INVOICE_NUMBER_PREFIX)
    if refusal is not None:
        return _rejected(refusal, status)
    if number is not None and _number_taken(con, number, invoice_id):
        return _rejected(f"invoicing.invoice_number: {number} is another invoice's number", status)
    payment_id = (body.get("payment") or {}).get("external_id")
    if number is not None:
        con.execute("UPDATE billing.invoices SET invoice_number = $n WHERE invoice_id = $id",
                    {"n": number, "id": invoice_id}).fetchall()
    con.execute("UPDATE billing.invoices SET sent_to_customer_at = $at WHERE invoice_id = $id",
                {"at": sent_at, "id": invoice_id}).fetchall()
    if payment_id:
        _map(con, "payment", invoice_id, str(payment_id), now)
    after = _move(con, invoice_id, "payment_processing.pending",
                  "issuing synchronized by the integration", actor, now)
    return CallbackResult("applied", None, after)


def _payment_status(con: duckdb.DuckDBPyConnection, invoice_id: str, status: str,
                    body: Mapping[str, Any], *, actor: str, now: datetime) -> CallbackResult:
    trigger = body.get("trigger")
    target = PAYMENT_TRIGGERS.get(str(trigger))
    if target is None:
        return _rejected(f"trigger: {trigger!r} is not one of {', '.join(PAYMENT_TRIGGERS)}",
                         status)
    after = _move(con, invoice_id, target, f"payment status {trigger} reported by the "
                  "integration", actor, now, payment_side=True)
    if after is None:
        return _rejected(f"invoice is {status}; trigger {trigger} does not apply "
                         "(no state regresses)", status)
    return CallbackResult("applied", None, after)


def _credit_note_callback(con: duckdb.DuckDBPyConnection, kind: str, credit_note_id: str,
                          body: Mapping[str, Any], *, actor: str,
                          now: datetime) -> CallbackResult:
    """A credit note's draft/synchronized or issuing/synchronized: the integration's ids and
    number kept, the credit note moved on (to `issuing`, or `issued`)."""
    found = con.execute("""
        SELECT status, app FROM billing.credit_notes WHERE credit_note_id = $id""",
                        {"id": credit_note_id}).fetchall()
    if not found or found[0][1] != PROVIDER:
        return _rejected(f"unknown credit note {credit_note_id} (no custom_invoicing credit "
                         "note has this id)")
    status = found[0][0]
    draft = kind == CREDIT_NOTE_DRAFT_SYNCHRONIZED
    hook, wanted = ("draft", "draft.syncing") if draft else ("issuing", "issuing.syncing")
    if status != wanted:
        return _rejected(f"credit note is {status}; {hook}/synchronized is accepted in "
                         f"{wanted}", status)
    invoicing = body.get("invoicing") or {}
    number = invoicing.get("credit_note_number")
    refusal = _own_number_refusal("invoicing.credit_note_number", number,
                                  CREDIT_NOTE_NUMBER_PREFIX)
    if refusal is not None:
        return _rejected(refusal, status)
    if number is not None and con.execute("""
            SELECT count(*) FROM billing.credit_notes
            WHERE credit_note_number = $n AND credit_note_id <> $id""",
                                          {"n": number, "id": credit_note_id}).fetchall()[0][0]:
        return _rejected(f"invoicing.credit_note_number: {number} is another credit note's "
                         "number", status)
    if draft:
        external_id = invoicing.get("external_id")
        if not isinstance(external_id, str) or not external_id:
            return _rejected("invoicing.external_id: required", status)
        lines = {row[0] for row in con.execute(
            "SELECT credit_note_line_id FROM billing.credit_note_lines "
            "WHERE credit_note_id = $id", {"id": credit_note_id}).fetchall()}
        pairs = []
        for index, entry in enumerate(invoicing.get("line_external_ids") or []):
            line_id = entry.get("credit_note_line_id")
            if line_id not in lines:
                return _rejected(f"invoicing.line_external_ids[{index}].credit_note_line_id: "
                                 f"{line_id!r} is not a line of this credit note", status)
            pairs.append((line_id, str(entry.get("external_id"))))
        _map(con, "credit_note", credit_note_id, external_id, now)
        for line_id, external in pairs:
            _map(con, "credit_note_line", line_id, external, now)
    else:
        sent = invoicing.get("sent_to_customer_at")
        try:
            sent_at = parse_instant(str(sent))
        except ValueError:
            return _rejected("invoicing.sent_to_customer_at: an ISO-8601 instant with offset "
                             f"is required, got {sent!r}", status)
        con.execute("UPDATE billing.credit_notes SET sent_to_customer_at = $at "
                    "WHERE credit_note_id = $id", {"at": sent_at, "id": credit_note_id}).fetchall()
    if number is not None:
        con.execute("UPDATE billing.credit_notes SET credit_note_number = $n "
                    "WHERE credit_note_id = $id", {"n": number, "id": credit_note_id}).fetchall()
    after = move_credit_notes(con, [CreditNoteChange(
        credit_note_id, "issuing" if draft else "issued",
        f"{hook} synchronized by the integration", actor)], now=now)
    return CallbackResult("applied", None, after[credit_note_id])


def record_callback(con: duckdb.DuckDBPyConnection, *, item_id: int, kind: str,
                    invoice_id: str, body: Mapping[str, Any], received_at: datetime,
                    result: CallbackResult, now: datetime) -> None:
    """Keep the callback with its outcome in sync.provider_events (event id `inbox:<item>`), so
    an inbox item is applied once even when the pipeline stops before telling the API store.
    A credit note's callback is kept with the credit note as its object and the credited
    invoice as its invoice."""
    credited = invoice_id
    if kind in CREDIT_NOTE_KINDS:
        rows = con.execute("SELECT invoice_id FROM billing.credit_notes "
                           "WHERE credit_note_id = $id", {"id": invoice_id}).fetchall()
        credited = rows[0][0] if rows else None
    con.execute("""
        INSERT INTO sync.provider_events
            (provider, event_id, event_type, object_id, invoice_id, created_at, received_at,
             received_via, payload, applied_at, outcome, detail)
        VALUES ($provider, $event_id, $kind, $object_id, $invoice_id, $received, $received,
                'api', $payload, $now, $outcome, $detail)""",
                {"provider": PROVIDER, "event_id": inbox_event_id(item_id), "kind": kind,
                 "object_id": invoice_id, "invoice_id": credited, "received": received_at,
                 "payload": json.dumps(body, sort_keys=True), "now": now,
                 "outcome": result.outcome, "detail": result.reason}).fetchall()


def inbox_event_id(item_id: int) -> str:
    """The provider event id under which an inbox item is kept in sync.provider_events."""
    return f"inbox:{item_id}"
