"""Applying a custom invoicing integration's invoice statement (`sync.provider_invoices`).

A custom invoicing integration (an ERP) cannot be polled: it reports its complete current view of
our invoices through the integration API (`POST /api/v1/apps/custom-invoicing/statement`). The
statement replaces the `custom_invoicing` rows of `sync.provider_invoices`, as Stripe's snapshot
replaces the `stripe` ones (same SQL, sql/sync/provider_invoices.sql, same exact amounts), so
reconciliation compares every ledger invoice with the integration's latest view. The credit
notes it lists (`credit_notes`, optional: absent means none) replace the `custom_invoicing` rows
of `sync.provider_credit_notes` the same way (sql/sync/provider_credit_notes.sql, as Stripe's
credit notes), for the reconciliation of credit notes.

Tax (docs/tax.md): a statement's `total` is, like ours, before an exclusive tax; its optional
`tax_total` and `total_including_tax` say what the integration billed on top. The row's `total`
is the total **including tax** (`rules.statement_total_including_tax`), as a Stripe snapshot's
`total` is Stripe's total including tax, so reconciliation compares both providers with the
ledger's `total_including_tax`; `amount_remaining` is counted from it. Lines keep their amounts
(before an exclusive tax, as the ledger's and Stripe's lines) and their `tax_amount` when given.

Statements can arrive out of order (a retry, two senders): one older (`as_of`) than the statement
already applied is recorded in `sync.provider_events` but replaces nothing. Each statement is kept
there (event type `custom_invoicing.statement`, no invoice id) with `created_at` = its `as_of`,
which is how the latest applied one is found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from pipelines.api.rules import STATEMENT, statement_total_including_tax, validate_statement
from pipelines.custom_invoicing.callbacks import PROVIDER, CallbackResult, inbox_event_id
from pipelines.settings import parse_instant
from pipelines.warehouse import run_sql, scratch

MONEY = pl.Decimal(38, 12)
FRAME_SCHEMA = {
    "provider": pl.String, "external_id": pl.String, "invoice_id": pl.String,
    "external_customer_id": pl.String, "number": pl.String, "status": pl.String,
    "currency": pl.String, "total": MONEY, "amount_paid": MONEY, "amount_remaining": MONEY,
    "amount_refunded": MONEY, "line_count": pl.Int32, "lines": pl.String,
    "snapshot_at": pl.Datetime("us", "UTC")}
"""The temp frame sql/sync/provider_invoices.sql reads (as the Stripe snapshot's)."""
CREDIT_NOTE_FRAME_SCHEMA = {
    "provider": pl.String, "external_id": pl.String, "credit_note_id": pl.String,
    "external_invoice_id": pl.String, "invoice_id": pl.String, "number": pl.String,
    "status": pl.String, "currency": pl.String, "total": MONEY, "line_count": pl.Int32,
    "lines": pl.String, "snapshot_at": pl.Datetime("us", "UTC")}
"""The temp frame sql/sync/provider_credit_notes.sql reads (as Stripe's credit notes')."""


def _line_tax(line: Mapping[str, Any]) -> dict[str, Any]:
    """A statement line's `tax_amount`, when the integration gives one (reconciliation then
    compares it with the ledger line's tax)."""
    return {"tax_amount": line["tax_amount"]} if line.get("tax_amount") is not None else {}


def statement_rows(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One `sync.provider_invoices` row per invoice of a (valid) statement body: amounts as
    exact Decimals, `total` including tax, `snapshot_at` = the statement's `as_of`, lines as
    JSON `[{external_id, line_id, amount, tax_amount}]` like Stripe's rows (amounts as the
    integration wrote them; `tax_amount` only when given). `amount_remaining` is what the
    integration still expects to collect: nothing once paid or void, else the total including
    tax less paid (never below zero)."""
    snapshot_at = parse_instant(str(body["as_of"]))
    rows = []
    for invoice in body["invoices"]:
        total = statement_total_including_tax(invoice)
        paid = Decimal(invoice["amount_paid"])
        status = invoice["status"]
        remaining = (Decimal(0) if status in ("paid", "void")
                     else max(total - paid, Decimal(0)))
        lines = invoice["lines"]
        rows.append({
            "provider": PROVIDER, "external_id": invoice["external_id"],
            "invoice_id": invoice.get("invoice_id"),
            "external_customer_id": invoice.get("external_customer_id"),
            "number": invoice.get("invoice_number"), "status": status,
            "currency": str(invoice["currency"]).upper(), "total": total,
            "amount_paid": paid, "amount_remaining": remaining,
            "amount_refunded": Decimal(invoice["amount_refunded"]),
            "line_count": len(lines),
            "lines": json.dumps([{"external_id": line["external_id"],
                                  "line_id": line.get("line_id"),
                                  "amount": line["amount"], **_line_tax(line)}
                                 for line in lines]),
            "snapshot_at": snapshot_at})
    return rows


def statement_credit_note_rows(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One `sync.provider_credit_notes` row per credit note of a (valid) statement: the amount
    credited including tax (positive, exact), `snapshot_at` = the statement's `as_of`, lines as
    JSON `[{external_id, credit_note_line_id, amount, tax_amount}]`."""
    snapshot_at = parse_instant(str(body["as_of"]))
    return [{
        "provider": PROVIDER, "external_id": note["external_id"],
        "credit_note_id": note.get("credit_note_id"),
        "external_invoice_id": note.get("external_invoice_id"),
        "invoice_id": note.get("invoice_id"), "number": note.get("credit_note_number"),
        "status": note["status"], "currency": str(note["currency"]).upper(),
        "total": statement_total_including_tax(note), "line_count": len(note["lines"]),
        "lines": json.dumps([{"external_id": line["external_id"],
                              "credit_note_line_id": line.get("credit_note_line_id"),
                              "amount": line["amount"], **_line_tax(line)}
                             for line in note["lines"]]),
        "snapshot_at": snapshot_at} for note in body.get("credit_notes") or []]


def latest_applied_as_of(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The `as_of` of the statement whose rows `sync.provider_invoices` holds, or None."""
    [(latest,)] = con.execute("""
        SELECT max(created_at) FROM sync.provider_events
        WHERE provider = $provider AND event_type = $kind AND outcome = 'applied'""",
                              {"provider": PROVIDER, "kind": STATEMENT}).fetchall()
    return latest


def apply_statement(con: duckdb.DuckDBPyConnection, body: Mapping[str, Any]) -> CallbackResult:
    """Replace the `custom_invoicing` rows of `sync.provider_invoices` and
    `sync.provider_credit_notes` with the statement's, inside the caller's transaction;
    `ignored` (nothing written) when a newer statement is already applied, `rejected` when the
    body is not a valid statement."""
    problems = validate_statement(body)
    if problems:
        return CallbackResult("rejected", "; ".join(str(p) for p in problems[:10]))
    as_of = parse_instant(str(body["as_of"]))
    latest = latest_applied_as_of(con)
    if latest is not None and as_of < latest:
        return CallbackResult("ignored", f"superseded: the statement as of {as_of.isoformat()} "
                              f"is older than the one already applied (as of "
                              f"{latest.isoformat()}); recorded, not applied")
    frame = pl.DataFrame(statement_rows(body), schema=FRAME_SCHEMA)
    credit_notes = pl.DataFrame(statement_credit_note_rows(body),
                                schema=CREDIT_NOTE_FRAME_SCHEMA)
    con.register("provider_invoices_frame", frame.to_arrow())
    con.register("provider_credit_notes_frame", credit_notes.to_arrow())
    with scratch(con, frames=("provider_invoices_frame", "provider_credit_notes_frame")):
        run_sql(con, "sync/provider_invoices", {"provider": PROVIDER, "snapshot_at": as_of})
        run_sql(con, "sync/provider_credit_notes", {"provider": PROVIDER})
    return CallbackResult("applied", None)


def complete_record(con: duckdb.DuckDBPyConnection, item_id: int,
                    body: Mapping[str, Any]) -> None:
    """Finish the statement's record in `sync.provider_events` (event `inbox:<item>`, written by
    record_callback): about no single invoice (NULL ids), and dated (`created_at`) by its
    `as_of`, when the integration says its view was taken."""
    try:
        as_of: datetime | None = parse_instant(str(body.get("as_of")))
    except ValueError:
        as_of = None
    con.execute("""
        UPDATE sync.provider_events
        SET created_at = coalesce($as_of, created_at), object_id = NULL, invoice_id = NULL
        WHERE provider = $provider AND event_id = $event_id""",
                {"as_of": as_of, "provider": PROVIDER,
                 "event_id": inbox_event_id(item_id)}).fetchall()
