"""A snapshot of Stripe's invoices and credit notes for reconciliation
(`sync.provider_invoices`, `sync.provider_credit_notes`).

Every Stripe invoice the sync mapped to one of ours, every one whose metadata names an invoice
id, and those of a Stripe customer we mapped (made by hand at Stripe, say), with their totals in
major units and their lines, as Stripe has them now; the same for credit notes (mapped, naming a
credit note id, crediting an invoice of ours, or of a customer we mapped). Which of ours a row
is comes from the mapping (`ownership`): a Stripe invoice made by hand naming one of ours that
the sync issued as another is a row of no invoice of ours, an orphan for reconciliation. Finance
compares them with the ledger.

The warehouse is never held while Stripe is listed (`recording`): what is mapped is read, the
warehouse released, Stripe listed, then both snapshots replaced in one writer session.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from pipelines.providers.stripe_sync.client import StripeGateway, metadata
from pipelines.providers.stripe_sync.issue_plan import from_minor
from pipelines.providers.stripe_sync.ownership import (
    claim_of,
    claimed_in_ledger,
    mapped_ids,
    owner_of,
)
from pipelines.providers.stripe_sync.paging import invoice_lines, list_all
from pipelines.providers.stripe_sync.recording import MakeGateway, OpenWriter, recording_gateway
from pipelines.providers.stripe_sync.stripe_tax import stripe_tax_minor
from pipelines.warehouse import run_sql, scratch, transaction

PROVIDER = "stripe"


def _all_invoices(gateway: StripeGateway) -> Iterator[Any]:
    """Every invoice of the account, with its payments (not included by default)."""
    v1 = gateway.client.v1
    return list_all(gateway, "snapshot.invoices.list", None,
                    lambda params, options: v1.invoices.list(params=params, options=options),
                    {"expand": ["data.payments"]})


def refunded_by_payment_intent(gateway: StripeGateway) -> dict[str, int]:
    """Refunded minor units per payment intent, from Stripe's refunds list (a refund made in
    the Dashboard shows here before its event is polled). Failed and canceled refunds are not
    money back."""
    v1 = gateway.client.v1
    out: dict[str, int] = {}
    for refund in list_all(gateway, "snapshot.refunds.list", None,
                           lambda params, options: v1.refunds.list(params=params,
                                                                   options=options)):
        intent = refund.payment_intent
        intent_id = intent if isinstance(intent, str) or intent is None else intent.id
        if intent_id and refund.status in ("succeeded", "pending", "requires_action"):
            out[intent_id] = out.get(intent_id, 0) + int(refund.amount)
    return out


def _payment_intents(invoice: Any) -> list[str]:
    payments = getattr(invoice, "payments", None)
    intents = []
    for entry in (payments.data if payments is not None else []):
        if entry.status != "paid":
            continue
        intent = getattr(entry.payment, "payment_intent", None) if entry.payment else None
        if intent:
            intents.append(intent if isinstance(intent, str) else intent.id)
    return intents


def snapshot_rows(gateway: StripeGateway, known: KnownAtStripe, *,
                  now: datetime) -> list[dict[str, Any]]:
    """One row per Stripe invoice that is ours, names one of ours or is of a customer we
    mapped; `invoice_id` is what its metadata names (`resolve_owners` puts ours in its place).
    A charge refund does not show on the invoice object: the refunded amount is the largest of
    the invoice's post-payment credit notes, the refunds of its payment intents, and the
    refunds seen in events (`known.refunded_minor`, per Stripe invoice id)."""
    rows = []
    invoices = list(_all_invoices(gateway))
    by_intent = (refunded_by_payment_intent(gateway)
                 if any(int(i.amount_paid or 0) > 0 for i in invoices) else {})
    for invoice in invoices:
        claim = claim_of("invoice", metadata(invoice))
        customer = invoice.customer if isinstance(invoice.customer, str) else invoice.customer.id
        if (claim is None and invoice.id not in known.invoices
                and customer not in known.customers):
            continue
        currency = invoice.currency
        lines = invoice_lines(gateway, "snapshot.invoices.lines.list", invoice.id, invoice)
        credited = int(getattr(invoice, "post_payment_credit_notes_amount", 0) or 0)
        refunds = sum(by_intent.get(intent, 0) for intent in _payment_intents(invoice))
        refunded = max(credited, refunds, known.refunded_minor.get(invoice.id, 0))
        rows.append({
            "provider": PROVIDER, "external_id": invoice.id, "invoice_id": claim,
            "external_customer_id": customer, "number": invoice.number,
            "status": invoice.status, "currency": currency.upper(),
            "total": from_minor(invoice.total, currency),
            "amount_paid": from_minor(invoice.amount_paid, currency),
            "amount_remaining": from_minor(invoice.amount_remaining, currency),
            "amount_refunded": from_minor(refunded, currency),
            "line_count": len(lines),
            "lines": json.dumps([{"external_id": line.id,
                                  "line_id": metadata(line).get("line_id"),
                                  "amount": str(from_minor(line.amount, currency)),
                                  "tax_amount": str(from_minor(stripe_tax_minor(
                                      getattr(line, "taxes", None)), currency))}
                                 for line in lines]),
            "snapshot_at": now})
    return rows


@dataclass(frozen=True)
class KnownAtStripe:
    """What the warehouse knows of Stripe before listing it: the Stripe invoices the sync
    mapped (-> ours), the Stripe customers it mapped, and the refunded minor units seen in
    `charge.refunded` events per Stripe invoice."""

    invoices: dict[str, str]
    customers: set[str]
    refunded_minor: dict[str, int]


def load_known(con: duckdb.DuckDBPyConnection) -> KnownAtStripe:
    """Read what `KnownAtStripe` holds (one short warehouse session before Stripe is listed)."""
    invoices = dict(con.execute(
        "SELECT external_id, internal_id FROM sync.external_ids WHERE provider = 'stripe' "
        "AND object_type = 'invoice'").fetchall())
    customers = {row[0] for row in con.execute(
        "SELECT external_id FROM sync.external_ids WHERE provider = 'stripe' "
        "AND object_type = 'customer'").fetchall()}
    refunded = dict(con.execute("""
        SELECT x.external_id,
               max(CAST(json_extract(e.payload, '$.data.object.amount_refunded') AS BIGINT))
        FROM sync.provider_events e
        JOIN sync.external_ids x ON x.provider = 'stripe' AND x.object_type = 'invoice'
             AND x.internal_id = e.invoice_id
        WHERE e.provider = 'stripe' AND e.event_type = 'charge.refunded'
        GROUP BY x.external_id""").fetchall())
    return KnownAtStripe(invoices, customers, refunded)


def _all_credit_notes(gateway: StripeGateway) -> Iterator[Any]:
    v1 = gateway.client.v1
    return list_all(gateway, "snapshot.credit_notes.list", None,
                    lambda params, options: v1.credit_notes.list(params=params,
                                                                 options=options))


def _credit_note_lines(gateway: StripeGateway, note: Any) -> list[Any]:
    """Every line of a Stripe credit note (the object embeds only the first ten)."""
    if not note.lines.has_more:
        return list(note.lines.data)
    v1 = gateway.client.v1
    return list(list_all(
        gateway, "snapshot.credit_notes.lines.list", note.id,
        lambda params, options: v1.credit_notes.line_items.list(note.id, params=params,
                                                                options=options)))


def credit_note_snapshot_rows(gateway: StripeGateway, known: KnownAtStripe, *,
                              now: datetime) -> list[dict[str, Any]]:
    """One row per Stripe credit note that names a credit note id, credits one of our invoices
    or is of a customer we mapped (a note made in the Dashboard: an orphan for reconciliation);
    `credit_note_id` is what its metadata names (`resolve_owners` puts ours in its place),
    `invoice_id` our invoice it credits (by the mapping). Totals in major units, positive;
    status `issued` or `void` as Stripe says."""
    rows = []
    for note in _all_credit_notes(gateway):
        invoice = note.invoice if isinstance(note.invoice, str) else note.invoice.id
        customer = note.customer if isinstance(note.customer, str) else note.customer.id
        claim = claim_of("credit_note", metadata(note))
        if claim is None and invoice not in known.invoices and customer not in known.customers:
            continue
        currency = note.currency
        lines = _credit_note_lines(gateway, note)
        rows.append({
            "provider": PROVIDER, "external_id": note.id, "credit_note_id": claim,
            "external_invoice_id": invoice, "invoice_id": known.invoices.get(invoice),
            "number": note.number, "status": note.status, "currency": currency.upper(),
            "total": from_minor(note.total, currency),
            "line_count": len(lines),
            "lines": json.dumps([{"external_id": line.id,
                                  "credit_note_line_id": metadata(line).get(
                                      "credit_note_line_id"),
                                  "amount": str(from_minor(line.amount, currency)),
                                  "tax_amount": str(from_minor(stripe_tax_minor(
                                      getattr(line, "taxes", None)), currency))}
                                 for line in lines]),
            "snapshot_at": now})
    return rows


def resolve_owners(con: duckdb.DuckDBPyConnection, object_type: str,
                   rows: list[dict[str, Any]], id_column: str) -> None:
    """Put in each row's `id_column` (what the metadata names) the id of ours the Stripe
    object is (`ownership`): the mapped one; the claim while that one of ours is in flight, or
    when it names nothing of ours at Stripe (an orphan naming it); else none."""
    mapped = mapped_ids(con, object_type, [row["external_id"] for row in rows])
    claimed = claimed_in_ledger(con, object_type,
                                [row[id_column] for row in rows if row[id_column]])
    for row in rows:
        row[id_column] = owner_of(row["external_id"], row[id_column], mapped,
                                  claimed).snapshot_id


MONEY = pl.Decimal(38, 12)
INVOICE_SNAPSHOT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "provider": pl.String, "external_id": pl.String, "invoice_id": pl.String,
    "external_customer_id": pl.String, "number": pl.String, "status": pl.String,
    "currency": pl.String, "total": MONEY, "amount_paid": MONEY, "amount_remaining": MONEY,
    "amount_refunded": MONEY, "line_count": pl.Int32, "lines": pl.String,
    "snapshot_at": pl.Datetime("us", "UTC")}
CREDIT_NOTE_SNAPSHOT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "provider": pl.String, "external_id": pl.String, "credit_note_id": pl.String,
    "external_invoice_id": pl.String, "invoice_id": pl.String, "number": pl.String,
    "status": pl.String, "currency": pl.String, "total": MONEY, "line_count": pl.Int32,
    "lines": pl.String, "snapshot_at": pl.Datetime("us", "UTC")}


def write_snapshots(con: duckdb.DuckDBPyConnection, invoices: list[dict[str, Any]],
                    credit_notes: list[dict[str, Any]], *, now: datetime) -> None:
    """Replace the Stripe rows of `sync.provider_invoices` and `sync.provider_credit_notes`
    with the listed ones, whose ids of ours are resolved here. Run it inside the caller's
    transaction."""
    resolve_owners(con, "invoice", invoices, "invoice_id")
    resolve_owners(con, "credit_note", credit_notes, "credit_note_id")
    con.register("provider_invoices_frame",
                 pl.DataFrame(invoices, schema=INVOICE_SNAPSHOT_SCHEMA).to_arrow())
    con.register("provider_credit_notes_frame",
                 pl.DataFrame(credit_notes, schema=CREDIT_NOTE_SNAPSHOT_SCHEMA).to_arrow())
    with scratch(con, frames=("provider_invoices_frame", "provider_credit_notes_frame")):
        run_sql(con, "sync/provider_invoices", {"provider": PROVIDER, "snapshot_at": now})
        run_sql(con, "sync/provider_credit_notes", {"provider": PROVIDER})


@dataclass
class SnapshotSummary:
    """Counts for the asset's metadata."""

    invoices: int
    credit_notes: int
    api_calls: int
    retries: int
    rate_limited: int


def refresh_snapshots(open_writer: OpenWriter, make_gateway: MakeGateway, *, now: datetime,
                      run_id: str) -> SnapshotSummary:
    """Replace Stripe's rows of both snapshots with Stripe's current invoices and credit notes.
    The warehouse writer is opened (`open_writer`) to read what is mapped and, after Stripe is
    listed, to write the snapshots and the attempts in one transaction; never while Stripe is
    called."""
    gateway, calls = recording_gateway(make_gateway, run_id=run_id, now=now)
    with open_writer() as con:
        known = load_known(con)
    invoices = snapshot_rows(gateway, known, now=now)
    credit_notes = credit_note_snapshot_rows(gateway, known, now=now)
    with open_writer() as con, transaction(con):
        calls.write_calls(con)
        write_snapshots(con, invoices, credit_notes, now=now)
    counts = calls.summary
    return SnapshotSummary(len(invoices), len(credit_notes), counts.api_calls, counts.retries,
                           counts.rate_limited)
