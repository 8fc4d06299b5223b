"""Draft adjustments in the warehouse (contract section 9): amounts added by hand to an invoice
while it is `draft` or `draft.syncing`, by an operator (`billing invoice adjust`) or a custom
invoicing integration (`PATCH .../invoices/{invoice_id}`, applied from the API's inbox).

An adjustment is a row of `billing.invoice_adjustments` (what was asked, who added it and when,
who removed it) and an input of every rating of its invoice: the billing run gives each re-rated
draft its active adjustments with `pipelines.rating.invoices.adjust_draft`
(`apply_stored_adjustments`), so the draft keeps them with the same line ids, and its discounts
and totals follow the rating's own rules. Adjusting a draft by hand prices it the same way at
once (`adjust_invoice`): its rated lines stay exactly as they are; its adjustment and discount
lines and its totals are written again. Rated lines are never edited by hand, and after the
draft nothing is adjusted: an issued invoice is corrected by a credit note or a supplementary
invoice.

Callers hold the warehouse writer; each function runs inside the caller's transaction and checks
everything before its first write, so a refusal writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import duckdb
import polars as pl

from pipelines.catalog.models import Catalog, Plan, Subscription
from pipelines.invoicing.document_tax import fill_document_tax
from pipelines.invoicing.next_invoice import bill_on_next_invoices
from pipelines.rating.invoices import (
    Adjustment,
    InvoiceDraft,
    InvoiceLine,
    adjust_draft,
    adjustment_amount,
    adjustment_line_id,
)
from pipelines.rating.money import round_money
from pipelines.rating.pricing import TierCharge
from pipelines.warehouse import run_sql, scratch

ADJUSTABLE_STATUSES = ("draft", "draft.syncing")
MONEY = pl.Decimal(38, 12)


class AdjustmentError(ValueError):
    """An adjustment the ledger refuses, saying why; ``field`` names the part of the request at
    fault (``add[0].amount``, ``remove[1]``) when one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AdjustmentRequest:
    """One adjustment to add: a description and either an amount or a quantity and a unit price
    (positive, or negative for a credit). ``key`` makes its line id: the API gives its inbox item
    and position; without one (the CLI) it derives from what is asked, so the same command run
    twice is refused rather than charged twice. ``field`` is where it sits in the request."""

    description: str
    amount: Decimal | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    key: str | None = None
    field: str = "add[0]"


@dataclass(frozen=True)
class AdjustmentOutcome:
    """What an adjustment did to its invoice."""

    invoice_id: str
    status: str
    currency: str
    added: tuple[InvoiceLine, ...]
    removed: tuple[Adjustment, ...]
    total_before: Decimal
    draft: InvoiceDraft           # the invoice as priced now


def adjust_invoice(con: duckdb.DuckDBPyConnection, catalog: Catalog, invoice_id: str, *,
                   add: Sequence[AdjustmentRequest] = (), remove: Sequence[str] = (),
                   source: str, actor: str, now: datetime) -> AdjustmentOutcome:
    """Add and remove adjustment lines of a draft, and price it again by the rating's rules.

    Refused with an AdjustmentError, before anything is written, when: the invoice is unknown,
    a supplementary invoice, or past `draft` / `draft.syncing`; its subscription left the
    catalog; an amount is missing, of two kinds or rounds to zero; a line to remove is not an
    adjustment of this invoice; the same adjustment is already on it; or a credit would take the
    invoice below zero.
    """
    invoice = _invoice(con, invoice_id)
    if not add and not remove:
        raise AdjustmentError("nothing to do: add an adjustment or remove one", "add")
    subscription, plan = _catalog_entries(catalog, invoice)
    draft = stored_draft(con, invoice_id)
    active = _active_adjustments(con, invoice_id, invoice["currency"])
    by_id = {adjustment.line_id: adjustment for adjustment in active}

    removed: list[Adjustment] = []
    lines = {line.line_id: line for line in draft.lines}
    for index, line_id in enumerate(remove):
        field = f"remove[{index}]"
        if line_id in by_id:
            if any(a.line_id == line_id for a in removed):
                raise AdjustmentError(f"{field}: {line_id} is given more than once", field)
            removed.append(by_id[line_id])
        elif line_id in lines:
            raise AdjustmentError(
                f"{field}: {line_id} is a {lines[line_id].line_type} line; only adjustment lines "
                "can be removed (rated lines are never edited by hand)", field)
        else:
            raise AdjustmentError(f"{field}: {line_id} is not a line of invoice {invoice_id}",
                                  field)

    removed_ids = {a.line_id for a in removed}
    kept = [a for a in active if a.line_id not in removed_ids]
    asked = [_new_adjustment(con, invoice_id, invoice["currency"], request) for request in add]
    new = [adjustment for adjustment, _ in asked]
    taken = {a.line_id for a in kept}
    for adjustment, request in zip(new, add, strict=True):
        if adjustment.line_id in taken or _ever_added(con, adjustment.line_id):
            raise AdjustmentError(
                f"{request.field}: the same adjustment ({adjustment.description!r}, "
                f"{adjustment.amount} {invoice['currency']}) is already on invoice {invoice_id} "
                f"as line {adjustment.line_id}; give another description to add a second one",
                request.field)
        taken.add(adjustment.line_id)

    before = adjust_draft(draft, subscription, plan, active)
    after = adjust_draft(draft, subscription, plan, kept + new)
    _refuse_credit_beyond_total(before, after, kept + new, invoice["currency"], add, new)

    position = _next_position(con, invoice_id)
    for offset, (adjustment, key) in enumerate(asked):
        con.execute("""
            INSERT INTO billing.invoice_adjustments
                (line_id, invoice_id, request_key, description, quantity, unit_price, amount,
                 position, source, added_by, added_at)
            VALUES ($line_id, $invoice_id, $key, $description, $quantity, $unit_price, $amount,
                    $position, $source, $actor, $now)""", {
            "line_id": adjustment.line_id, "invoice_id": invoice_id,
            "key": key, "description": adjustment.description,
            "quantity": adjustment.quantity, "unit_price": adjustment.unit_price,
            "amount": adjustment.amount, "position": position + offset, "source": source,
            "actor": actor, "now": now}).fetchall()
    if removed_ids:
        con.execute("""
            UPDATE billing.invoice_adjustments SET removed_by = $actor, removed_at = $now
            WHERE list_contains($ids, line_id) AND removed_at IS NULL""",
                    {"actor": actor, "now": now, "ids": sorted(removed_ids)}).fetchall()
    write_adjusted_draft(con, after)
    # correction lines and the credit balance line settled again, the totals from every line
    bill_on_next_invoices(con, now=now)
    fill_document_tax(con)  # the new lines' tax at the draft's rate, the tax totals again
    added_ids = {a.line_id for a in new}
    return AdjustmentOutcome(
        invoice_id=invoice_id, status=invoice["status"], currency=invoice["currency"],
        added=tuple(line for line in after.lines if line.line_id in added_ids),
        removed=tuple(removed), total_before=before.total, draft=after)


def apply_stored_adjustments(con: duckdb.DuckDBPyConnection, drafts: Sequence[InvoiceDraft],
                             catalog: Catalog) -> list[InvoiceDraft]:
    """The rated drafts, each with the active adjustments stored for its invoice priced in by
    the rating's rules (`adjust_draft`); drafts without adjustments are returned as they are.

    Applied to every rated cut, drafts and invoices past draft alike, so the latest rating of an
    issued invoice has the adjustment lines it was issued with (and their discounts): an
    adjustment is never mistaken for a difference to correct."""
    if not drafts:
        return list(drafts)
    rows = con.execute("""
        SELECT invoice_id, line_id, description, quantity, unit_price, amount
        FROM billing.invoice_adjustments
        WHERE removed_at IS NULL AND list_contains($ids, invoice_id)
        ORDER BY invoice_id, position, line_id""",
                       {"ids": [d.invoice_id for d in drafts]}).fetchall()
    stored: dict[str, list[Adjustment]] = {}
    currency = {d.invoice_id: d.currency for d in drafts}
    for invoice_id, line_id, description, quantity, unit_price, amount in rows:
        stored.setdefault(invoice_id, []).append(Adjustment(
            line_id, description, round_money(amount, currency[invoice_id]), quantity,
            unit_price))
    adjusted = []
    for draft in drafts:
        if draft.invoice_id in stored:
            subscription = catalog.subscriptions[draft.subscription_id]
            draft = adjust_draft(draft, subscription, catalog.plans[subscription.plan],
                                 stored[draft.invoice_id])
        adjusted.append(draft)
    return adjusted


def stored_draft(con: duckdb.DuckDBPyConnection, invoice_id: str) -> InvoiceDraft:
    """The invoice and its lines as the warehouse holds them, as a rating draft (amounts in the
    currency's minor units, tier breakdowns included)."""
    (customer_id, subscription_id, plan_key, billing_month, boundary, period_start, period_end,
     currency, subtotal, discount_total, total, collection_method, due_date), = con.execute("""
        SELECT customer_id, subscription_id, plan_key, billing_month, boundary, period_start,
               period_end, currency, subtotal, discount_total, total, collection_method, due_date
        FROM billing.invoices WHERE invoice_id = $id""", {"id": invoice_id}).fetchall()
    rows = con.execute("""
        SELECT line_id, line_type, price_key, meter_key, description, quantity, unit_price,
               amount, period_start, period_end, CAST(tiers AS VARCHAR)
        FROM billing.invoice_lines WHERE invoice_id = $id
        ORDER BY position, line_id""", {"id": invoice_id}).fetchall()
    lines = tuple(
        InvoiceLine(line_id, line_type, price_key, meter_key, description, quantity, unit_price,
                    round_money(amount, currency), line_start, line_end, _tiers(tiers))
        for (line_id, line_type, price_key, meter_key, description, quantity, unit_price, amount,
             line_start, line_end, tiers) in rows)
    return InvoiceDraft(
        invoice_id=invoice_id, customer_id=customer_id, subscription_id=subscription_id,
        plan_key=plan_key, billing_month=billing_month, boundary=boundary,
        period_start=period_start, period_end=period_end, currency=currency,
        subtotal=round_money(subtotal, currency),
        discount_total=round_money(discount_total, currency),
        total=round_money(total, currency), collection_method=collection_method,
        due_date=due_date, lines=lines)


def write_adjusted_draft(con: duckdb.DuckDBPyConnection, draft: InvoiceDraft) -> None:
    """Write an adjusted draft's adjustment and discount lines and its totals
    (sql/billing/adjusted_draft.sql); its other lines are left as they are."""
    frame = pl.DataFrame([{
        "line_id": line.line_id, "invoice_id": draft.invoice_id, "line_type": line.line_type,
        "price_key": line.price_key, "meter_key": line.meter_key,
        "description": line.description, "quantity": line.quantity,
        "unit_price": line.unit_price, "amount": line.amount, "period_start": line.period_start,
        "period_end": line.period_end,
        "tiers": json.dumps([t.to_dict() for t in line.tiers]) if line.tiers else None,
        "position": position,
    } for position, line in enumerate(draft.lines)], schema={
        "line_id": pl.String, "invoice_id": pl.String, "line_type": pl.String,
        "price_key": pl.String, "meter_key": pl.String, "description": pl.String,
        "quantity": MONEY, "unit_price": MONEY, "amount": MONEY, "period_start": pl.Date,
        "period_end": pl.Date, "tiers": pl.String, "position": pl.Int32})
    con.register("adjusted_lines_frame", frame.to_arrow())
    with scratch(con, frames=("adjusted_lines_frame",), tables=("adjusted_lines",)):
        con.execute("CREATE OR REPLACE TEMP TABLE adjusted_lines AS "
                    "SELECT * FROM adjusted_lines_frame")
        run_sql(con, "billing/adjusted_draft", {"invoice_id": draft.invoice_id})


def _invoice(con: duckdb.DuckDBPyConnection, invoice_id: str) -> dict:
    rows = con.execute("""
        SELECT invoice_id, status, currency, subscription_id, plan_key, corrects_invoice_id,
               invoice_number
        FROM billing.invoices WHERE invoice_id = $id""", {"id": invoice_id}).fetchall()
    if not rows:
        raise AdjustmentError(f"unknown invoice {invoice_id}")
    columns = ("invoice_id", "status", "currency", "subscription_id", "plan_key",
               "corrects_invoice_id", "invoice_number")
    invoice = dict(zip(columns, rows[0], strict=True))
    if invoice["corrects_invoice_id"] is not None:
        raise AdjustmentError(
            f"invoice {invoice_id} is a supplementary invoice correcting "
            f"{invoice['corrects_invoice_id']}: it carries corrections only and is not adjusted")
    if invoice["status"] not in ADJUSTABLE_STATUSES:
        number = f" ({invoice['invoice_number']})" if invoice["invoice_number"] else ""
        raise AdjustmentError(
            f"invoice {invoice_id}{number} is {invoice['status']}: adjustments are only possible "
            f"while it is {' or '.join(ADJUSTABLE_STATUSES)}; an issued invoice is corrected by "
            "a credit note or a supplementary invoice, never changed")
    return invoice


def _catalog_entries(catalog: Catalog, invoice: dict) -> tuple[Subscription, Plan]:
    subscription = catalog.subscriptions.get(invoice["subscription_id"])
    if subscription is None or subscription.plan != invoice["plan_key"]:
        raise AdjustmentError(
            f"invoice {invoice['invoice_id']}: subscription {invoice['subscription_id']} on plan "
            f"{invoice['plan_key']} is no longer in the catalog, so the draft cannot be priced "
            "(the next billing run discards or re-rates it)")
    return subscription, catalog.plans[subscription.plan]


def _active_adjustments(con: duckdb.DuckDBPyConnection, invoice_id: str,
                        currency: str) -> list[Adjustment]:
    rows = con.execute("""
        SELECT line_id, description, quantity, unit_price, amount
        FROM billing.invoice_adjustments
        WHERE invoice_id = $id AND removed_at IS NULL
        ORDER BY position, line_id""", {"id": invoice_id}).fetchall()
    return [Adjustment(line_id, description, round_money(amount, currency), quantity, unit_price)
            for line_id, description, quantity, unit_price, amount in rows]


def _request_key(con: duckdb.DuckDBPyConnection, invoice_id: str,
                 request: AdjustmentRequest, adjustment: Adjustment) -> str:
    """The key an adjustment's line id derives from: the one given (the API's), else what was
    asked (description, amount, quantity, unit price) and how many of the same adjustment were
    removed before, so one added again after its removal is a new line."""
    if request.key is not None:
        return request.key
    asked = "|".join(format(v.normalize(), "f") if isinstance(v, Decimal) else str(v)
                     for v in (adjustment.description, adjustment.amount, adjustment.quantity,
                               adjustment.unit_price))
    base = "content:" + hashlib.sha256(asked.encode()).hexdigest()[:24]
    [(removed,)] = con.execute("""
        SELECT count(*) FROM billing.invoice_adjustments
        WHERE invoice_id = $id AND starts_with(request_key, $base || ':')
          AND removed_at IS NOT NULL""", {"id": invoice_id, "base": base}).fetchall()
    return f"{base}:{removed}"


def _new_adjustment(con: duckdb.DuckDBPyConnection, invoice_id: str, currency: str,
                    request: AdjustmentRequest) -> tuple[Adjustment, str]:
    """The adjustment asked (its amount rounded once, its line id given) and its key."""
    description = request.description.strip() if isinstance(request.description, str) else ""
    if not description:
        raise AdjustmentError(f"{request.field}.description: required, a non-empty text",
                              f"{request.field}.description")
    try:
        amount = adjustment_amount(currency, amount=request.amount, quantity=request.quantity,
                                   unit_price=request.unit_price)
    except ValueError as exc:
        name = str(exc).split(":", 1)[0]
        raise AdjustmentError(f"{request.field}.{exc}", f"{request.field}.{name}") from None
    priced_by_units = request.amount is None
    asked = Adjustment("", description, amount,
                       request.quantity if priced_by_units else None,
                       request.unit_price if priced_by_units else None)
    key = _request_key(con, invoice_id, request, asked)
    return replace(asked, line_id=adjustment_line_id(invoice_id, key)), key


def _ever_added(con: duckdb.DuckDBPyConnection, line_id: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM billing.invoice_adjustments "
                            "WHERE line_id = $id", {"id": line_id}).fetchall()[0][0])


def _next_position(con: duckdb.DuckDBPyConnection, invoice_id: str) -> int:
    return int(con.execute("SELECT coalesce(max(position) + 1, 0) FROM "
                           "billing.invoice_adjustments WHERE invoice_id = $id",
                           {"id": invoice_id}).fetchall()[0][0])


def _refuse_credit_beyond_total(before: InvoiceDraft, after: InvoiceDraft,
                                adjustments: Sequence[Adjustment], currency: str,
                                add: Sequence[AdjustmentRequest],
                                new: Sequence[Adjustment]) -> None:
    """A credit takes at most what is left of an invoice (no total goes below zero). A change
    that leaves a credit carrying less than was asked, or less than it did before, is refused
    and says how much can be credited."""
    def shortfalls(draft: InvoiceDraft) -> dict[str, Decimal]:
        applied = {line.line_id: line.amount for line in draft.lines
                   if line.line_type == "adjustment"}
        return {a.line_id: applied[a.line_id] - a.amount for a in adjustments
                if a.line_id in applied}

    was, now = shortfalls(before), shortfalls(after)
    fields = {a.line_id: f"{r.field}.{'amount' if r.amount is not None else 'unit_price'}"
              for a, r in zip(new, add, strict=True)}
    for adjustment in adjustments:
        short = now.get(adjustment.line_id, Decimal(0))
        if short > was.get(adjustment.line_id, Decimal(0)):
            room = -(adjustment.amount + short)
            field = fields.get(adjustment.line_id)
            raise AdjustmentError(
                f"{field + ': ' if field else ''}the credit {adjustment.description!r} of "
                f"{adjustment.amount} {currency} would take invoice {after.invoice_id} below "
                f"zero: at most {room} {currency} can be credited on it"
                f"{'' if field else ' once the removed lines are gone'}",
                field or "remove")


def _tiers(text: str | None) -> tuple[TierCharge, ...]:
    if not text:
        return ()
    return tuple(TierCharge(
        tier_index=int(t["tier_index"]), from_units=Decimal(t["from_units"]),
        to_units=None if t["to_units"] is None else Decimal(t["to_units"]),
        units=Decimal(t["units"]), unit_price=Decimal(t["unit_price"]),
        flat_fee=Decimal(t["flat_fee"]), amount=Decimal(t["amount"]))
        for t in json.loads(text))
