"""Accepting a call, exactly once: the stored answer for a replay of the same call; 404, 422
or 409 (nothing stored); or the inbox item and its 202 answer, committed in one transaction
that re-read the invoice's state, before the answer is sent.

A call is known again by its request key (from the Idempotency-Key, or derived from the call)
and its fingerprint (method, path and canonical body): the same key with another fingerprint is
a 409, never a replay.

The body is validated before the write transaction is taken, against the document as read
just before; inside it, the body is validated again only if the document changed meanwhile. So
the store's write lock is never held while a long statement is checked.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.api import rules
from pipelines.api.store.database import StoreFile, stored_instant
from pipelines.api.store.publication import (
    PublishedInvoice,
    document_of,
    projected,
    projected_invoice,
    published_row,
)

MAX_MESSAGE_PROBLEMS = 10    # a 422 message names the first problems...
MAX_DETAILS = 100            # ...and `details` lists at most this many (a statement is long)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer decided by the store: status code and JSON body; `replayed` when it is the
    stored answer of an earlier identical call."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Call:
    """A call to accept into the inbox, once authenticated."""

    kind: str
    invoice_id: str | None
    body: Any                 # parsed JSON
    token_name: str
    token_id: int             # tokens.id of the caller: unique, unlike the name
    request_key: str
    fingerprint: str
    received_at: datetime
    event_id: str | None = None


def error_body(code: str, message: str, *, field: str | None = None,
               current_state: str | None = None,
               details: Sequence[rules.FieldError] = ()) -> dict[str, Any]:
    """The one error body shape of the API."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field,
                             "current_state": current_state}
    if details:
        error["details"] = [{"field": d.field, "message": d.message} for d in details]
    return {"error": error}


def canonical_json(value: Any) -> str:
    """A JSON text that is the same for equal documents (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(*parts: str) -> str:
    """A digest of the parts, length-prefixed so that no two part lists collide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part.encode()).to_bytes(8, "big"))
        digest.update(part.encode())
    return digest.hexdigest()


class CallAcceptance(StoreFile):
    """The inbox and responses tables as the API writes them."""

    def accept(self, call: Call) -> Answer:
        """Decide a call in one transaction: the stored answer for a replay; 404, 422 or 409
        (nothing stored); or insert the inbox item and store its 202 answer, both committed
        before this returns."""
        checked = self._check_before_writing(call)
        body_text = json.dumps(call.body, sort_keys=True)
        with self._write() as con:
            replay = _replay(con, call)
            if replay is not None:
                return replay
            if call.kind == rules.STRIPE_EVENT:
                state = None
            elif call.kind == rules.STATEMENT:
                # about every invoice at once: no invoice to find (404) nor state (409)
                if checked.problems:
                    return _invalid(checked.problems)
                state = None
            else:
                row = published_row(con, call.invoice_id or "")
                document = rules.document_type_of(call.kind)
                if (row is None or row[2] != rules.CUSTOM_INVOICING_APP
                        or document_of(row) != document):
                    what = document.replace("_", " ")
                    return Answer(404, error_body(
                        f"{document}_not_found", f"no custom invoicing {what} {call.invoice_id} "
                        "is published for the API (yet)"))
                invoice = projected_invoice(con, row)
                problems = (checked.problems if checked.against == _validated_on(invoice)
                            else _validate(call.kind, call.body, invoice))
                if problems:
                    return _invalid(problems)
                current = projected(con, row)
                conflict = rules.state_conflict(current, call.kind, call.body)
                if conflict is not None:
                    return Answer(409, error_body(conflict.code, conflict.message,
                                                  current_state=current))
                state = (current if call.kind == rules.UPDATE_INVOICE
                         else rules.callback_target(call.kind, call.body))
            item_id = con.execute("""
                INSERT INTO inbox (kind, invoice_id, event_id, body, token_name, token_id,
                                   request_key, received_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                                  (call.kind, call.invoice_id, call.event_id, body_text,
                                   call.token_name, call.token_id, call.request_key,
                                   stored_instant(call.received_at))).lastrowid
            body: dict[str, Any] = {"status": "accepted", "inbox_item_id": item_id,
                                    "kind": call.kind,
                                    "received_at": stored_instant(call.received_at)}
            if call.kind == rules.STRIPE_EVENT:
                body["event_id"] = call.event_id
            elif call.kind == rules.STATEMENT:
                body["as_of"] = call.body["as_of"]
                body["invoice_count"] = len(call.body["invoices"])
            else:
                body[f"{rules.document_type_of(call.kind)}_id"] = call.invoice_id
                body["projected_state"] = state
                if call.kind == rules.UPDATE_INVOICE:
                    body["adjustment_line_ids"] = rules.update_line_ids(
                        call.invoice_id or "", item_id, call.body)
            con.execute("""
                INSERT INTO responses (request_key, fingerprint, status_code, body,
                                       inbox_item_id, created_at)
                VALUES (?, ?, 202, ?, ?, ?)""",
                        (call.request_key, call.fingerprint, json.dumps(body), item_id,
                         stored_instant(call.received_at)))
            return Answer(202, body)

    def _check_before_writing(self, call: Call) -> _Checked:
        """The body's problems, found before the write transaction: a statement's alone; a
        callback's against its document as read now (with what they were found against)."""
        if call.kind == rules.STATEMENT:
            return _Checked(rules.validate_statement(call.body), None)
        if call.kind == rules.STRIPE_EVENT:
            return _Checked([], None)
        with self._read() as con:
            row = published_row(con, call.invoice_id or "")
            if row is None:
                return _Checked([], None)
            invoice = projected_invoice(con, row)
        return _Checked(_validate(call.kind, call.body, invoice), _validated_on(invoice))


@dataclass(frozen=True)
class _Checked:
    """A body's problems and what of its document they were found against (None: nothing)."""

    problems: list[rules.FieldError]
    against: tuple[Any, ...] | None


def _validated_on(invoice: PublishedInvoice) -> tuple[Any, ...]:
    """All a body's validation reads of its document: its kind, currency and lines."""
    return (invoice.document_type, invoice.currency,
            tuple((line.line_id, line.line_type) for line in invoice.lines))


def _replay(con: sqlite3.Connection, call: Call) -> Answer | None:
    """The stored answer of an earlier call with this request key; a 409 when that call was
    another one; None for a new call."""
    row = con.execute("SELECT fingerprint, status_code, body FROM responses "
                      "WHERE request_key = ?", (call.request_key,)).fetchone()
    if row is None:
        return None
    fingerprint, status_code, body = row
    if fingerprint != call.fingerprint:
        return Answer(409, error_body(
            "idempotency_key_reused", "this Idempotency-Key was used for a different call "
            "(method, path or body); use a new key for a new call"))
    return Answer(status_code, json.loads(body), replayed=True)


def _validate(kind: str, body: Any, invoice: PublishedInvoice) -> list[rules.FieldError]:
    if kind == rules.DRAFT_SYNCHRONIZED:
        return rules.validate_draft_synchronized(
            body, {line.line_id: line.line_type for line in invoice.lines})
    if kind == rules.ISSUING_SYNCHRONIZED:
        return rules.validate_issuing_synchronized(body)
    if kind == rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED:
        return rules.validate_credit_note_draft_synchronized(
            body, (line.line_id for line in invoice.lines))
    if kind == rules.CREDIT_NOTE_ISSUING_SYNCHRONIZED:
        return rules.validate_credit_note_issuing_synchronized(body)
    if kind == rules.UPDATE_INVOICE:
        return rules.validate_update_invoice(
            body, {line.line_id: line.line_type for line in invoice.lines}, invoice.currency)
    return rules.validate_payment_status(body)


def _invalid(problems: Sequence[rules.FieldError]) -> Answer:
    """The 422 answer naming the first problem's field, every problem (up to a limit) in
    `details`."""
    message = "; ".join(str(p) for p in problems[:MAX_MESSAGE_PROBLEMS])
    if len(problems) > MAX_MESSAGE_PROBLEMS:
        message += f" (and {len(problems) - MAX_MESSAGE_PROBLEMS} more problems)"
    return Answer(422, error_body("validation_error", message, field=problems[0].field,
                                  details=problems[:MAX_DETAILS]))
