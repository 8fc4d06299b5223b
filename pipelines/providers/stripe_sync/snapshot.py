"""A snapshot of Stripe's invoices and credit notes for reconciliation
(`sync.provider_invoices`, `sync.provider_credit_notes`).

Every Stripe invoice that carries our `metadata.invoice_id`, and those without it that belong
to a Stripe customer we mapped (made by hand at Stripe, say), with their totals in major units
and their lines, as Stripe has them now; the same for credit notes (ours by
`metadata.credit_note_id`, or crediting an invoice of ours, or of a customer we mapped). Finance
compares them with the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from pipelines.providers.stripe_sync.client import StripeGateway, metadata
from pipelines.providers.stripe_sync.issue_plan import from_minor
from pipelines.providers.stripe_sync.paging import invoice_lines, list_all
from pipelines.warehouse import run_sql, transaction

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


def snapshot_rows(gateway: StripeGateway, mapped_customers: set[str],
                  refunded_minor: dict[str, int], *, now: datetime) -> list[dict[str, Any]]:
    """One row per Stripe invoice of ours. A charge refund does not show on the invoice
    object: the refunded amount is the largest of the invoice's post-payment credit notes, the
    refunds of its payment intents, and `refunded_minor` (refunds seen in events per Stripe
    invoice id)."""
    rows = []
    invoices = list(_all_invoices(gateway))
    by_intent = (refunded_by_payment_intent(gateway)
                 if any(int(i.amount_paid or 0) > 0 for i in invoices) else {})
    for invoice in invoices:
        ours = metadata(invoice).get("invoice_id")
        customer = invoice.customer if isinstance(invoice.customer, str) else invoice.customer.id
        if ours is None and customer not in mapped_customers:
            continue
        currency = invoice.currency
        lines = invoice_lines(gateway, "snapshot.invoices.lines.list", invoice.id, invoice)
        credited = int(getattr(invoice, "post_payment_credit_notes_amount", 0) or 0)
        refunds = sum(by_intent.get(intent, 0) for intent in _payment_intents(invoice))
        refunded = max(credited, refunds, refunded_minor.get(invoice.id, 0))
        rows.append({
            "provider": PROVIDER, "external_id": invoice.id, "invoice_id": ours,
            "external_customer_id": customer, "number": invoice.number,
            "status": invoice.status, "currency": currency.upper(),
            "total": from_minor(invoice.total, currency),
            "amount_paid": from_minor(invoice.amount_paid, currency),
            "amount_remaining": from_minor(invoice.amount_remaining, currency),
            "amount_refunded": from_minor(refunded, currency),
            "line_count": len(lines),
            "lines": json.dumps([{"external_id": line.id,
                                  "line_id": metadata(line).get("line_id"),
                                  "amount": str(from_minor(line.amount, currency))}
                                 for line in lines]),
            "snapshot_at": now})
    return rows


def refresh_snapshot(con: duckdb.DuckDBPyConnection, gateway: StripeGateway, *,
                     now: datetime) -> int:
    """Replace the Stripe rows of `sync.provider_invoices` with Stripe's current invoices;
    returns how many rows the snapshot has."""
    mapped = {row[0] for row in con.execute(
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
    rows = snapshot_rows(gateway, mapped, refunded, now=now)
    money = pl.Decimal(38, 12)
    frame = pl.DataFrame(rows, schema={
        "provider": pl.String, "external_id": pl.String, "invoice_id": pl.String,
        "external_customer_id": pl.String, "number": pl.String, "status": pl.String,
        "currency": pl.String, "total": money, "amount_paid": money,
        "amount_remaining": money, "amount_refunded": money, "line_count": pl.Int32,
        "lines": pl.String, "snapshot_at": pl.Datetime("us", "UTC")})
    with transaction(con):
        con.register("provider_invoices_frame", frame.to_arrow())
        try:
            run_sql(con, "sync/provider_invoices", {"provider": PROVIDER, "snapshot_at": now})
        finally:
            con.unregister("provider_invoices_frame")
    return frame.height


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


def credit_note_snapshot_rows(gateway: StripeGateway, our_invoices: dict[str, str],
                              mapped_customers: set[str], *,
                              now: datetime) -> list[dict[str, Any]]:
    """One row per Stripe credit note of ours: by its `metadata.credit_note_id`, or because it
    credits one of our invoices (`our_invoices`: Stripe invoice id -> ours) or a customer we
    mapped (a note made in the Dashboard: an orphan for reconciliation). Totals in major units,
    positive; status `issued` or `void` as Stripe says."""
    rows = []
    for note in _all_credit_notes(gateway):
        meta = metadata(note)
        invoice = note.invoice if isinstance(note.invoice, str) else note.invoice.id
        customer = note.customer if isinstance(note.customer, str) else note.customer.id
        ours = meta.get("credit_note_id")
        if ours is None and invoice not in our_invoices and customer not in mapped_customers:
            continue
        currency = note.currency
        lines = _credit_note_lines(gateway, note)
        rows.append({
            "provider": PROVIDER, "external_id": note.id, "credit_note_id": ours,
            "external_invoice_id": invoice,
            "invoice_id": our_invoices.get(invoice) or meta.get("invoice_id"),
            "number": note.number, "status": note.status, "currency": currency.upper(),
            "total": from_minor(note.total, currency), "line_count": len(lines),
            "lines": json.dumps([{"external_id": line.id,
                                  "credit_note_line_id": metadata(line).get(
                                      "credit_note_line_id"),
                                  "amount": str(from_minor(line.amount, currency))}
                                 for line in lines]),
            "snapshot_at": now})
    return rows


def refresh_credit_note_snapshot(con: duckdb.DuckDBPyConnection, gateway: StripeGateway, *,
                                 now: datetime) -> int:
    """Replace the Stripe rows of `sync.provider_credit_notes` with Stripe's current credit
    notes; returns how many rows the snapshot has."""
    mapped = {row[0] for row in con.execute(
        "SELECT external_id FROM sync.external_ids WHERE provider = 'stripe' "
        "AND object_type = 'customer'").fetchall()}
    invoices = dict(con.execute(
        "SELECT external_id, internal_id FROM sync.external_ids WHERE provider = 'stripe' "
        "AND object_type = 'invoice'").fetchall())
    rows = credit_note_snapshot_rows(gateway, invoices, mapped, now=now)
    frame = pl.DataFrame(rows, schema={
        "provider": pl.String, "external_id": pl.String, "credit_note_id": pl.String,
        "external_invoice_id": pl.String, "invoice_id": pl.String, "number": pl.String,
        "status": pl.String, "currency": pl.String, "total": pl.Decimal(38, 12),
        "line_count": pl.Int32, "lines": pl.String, "snapshot_at": pl.Datetime("us", "UTC")})
    with transaction(con):
        con.register("provider_credit_notes_frame", frame.to_arrow())
        try:
            run_sql(con, "sync/provider_credit_notes", {"provider": PROVIDER})
        finally:
            con.unregister("provider_credit_notes_frame")
    return frame.height
