"""Credit notes: ``/v1/credit_notes`` create, retrieve, update, list, ``void`` and ``GET lines``.

A line of type ``invoice_line_item`` credits at most what of its invoice line no earlier credit
note (not voided) credited; ``custom_line_item`` lines credit ``unit_amount`` x ``quantity``.
A line's ``tax_amounts`` name TaxRates Stripe made for the invoice's manual tax amounts
(``taxes.py``); an ``invoice_line_item`` line without them takes its share of the invoice line's
taxes. The note's ``total`` (= ``amount``) includes the exclusive tax, as do the refund, credit
and out-of-band amounts that settle it.

On an open invoice (pre-payment) a credit note lowers what is due, and the invoice is paid when
nothing remains; on a paid invoice (post-payment) ``refund_amount`` refunds the charge,
``credit_amount`` (the default) credits the customer's balance and ``out_of_band_amount``
records money returned elsewhere.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .errors import exclusive, invalid, missing_param
from .fields import merge_metadata, new_metadata, nullable, unsupported
from .invoice_lifecycle import settle
from .invoice_lines import line_item
from .invoices import recompute
from .money import decimal_text, display, round_minor
from .payments import cancel_open_payments, invoice_charges
from .refunds import refund_charge
from .routes import Body, Params, route
from .state import EXPANDABLE, RENDERERS, RequestContext, State
from .taxes import credit_line_taxes, prorated_taxes, totals
from .templates import (
    embedded_list,
    list_endpoint,
    rendered,
    retrieve_endpoint,
    update_and_emit,
)

_EMBEDDED_LINES = 10  # a credit note embeds its first lines; the rest are paged from /lines


def _render_credit_note(state: State, obj: dict[str, Any]) -> None:
    obj["lines"] = embedded_list(
        state.credit_note_lines.get(obj["id"], []),
        f"/v1/credit_notes/{obj['id']}/lines",
        dict,
        limit=_EMBEDDED_LINES,
    )


RENDERERS.update(credit_note=_render_credit_note)
EXPANDABLE.update(credit_note={"customer": None, "invoice": None})


def _note_line(
    line: dict[str, Any],
    kind: str,
    *,
    amount: int,
    description: str | None,
    unit_amount: int | None,
    unit_amount_decimal: str | None,
    invoice_line_item: str | None = None,
    taxes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``credit_note_line_item``: what every credit note line has, whatever it credits."""
    out: dict[str, Any] = {
        "object": "credit_note_line_item",
        "amount": amount,
        "description": description,
        "discount_amount": 0,
        "discount_amounts": [],
    }
    if invoice_line_item is not None:
        out["invoice_line_item"] = invoice_line_item
    out.update(
        livemode=False,
        metadata=line.get("metadata"),
        pretax_credit_amounts=[],
        quantity=line.get("quantity", 1),
        tax_rates=[],
        taxes=taxes or [],
        type=kind,
        unit_amount=unit_amount,
        unit_amount_decimal=unit_amount_decimal,
    )
    return out


def credited_on_line(state: State, invoice_id: str, line_id: str) -> int:
    """What the invoice's credit notes (not voided) already credit on line ``line_id``."""
    return sum(
        line["amount"]
        for note_id in state.ids_of(
            "credit_note", lambda o: o["invoice"] == invoice_id and o["status"] != "void"
        )
        for line in state.credit_note_lines.get(note_id, [])
        if line.get("invoice_line_item") == line_id
    )


def _credit_line(
    state: State, inv: dict[str, Any], line: dict[str, Any], param: str
) -> dict[str, Any]:
    unsupported(line, "tax_rates")
    quantity = line.get("quantity", 1)
    if line["type"] == "invoice_line_item":
        if "invoice_line_item" not in line:
            raise missing_param(f"{param}[invoice_line_item]")
        item = line_item(state, inv["id"], line["invoice_line_item"], f"{param}[invoice_line_item]")
        if "amount" in line:
            amount = line["amount"]
        elif "quantity" in line:
            amount = round_minor(Decimal(item["pricing"]["unit_amount_decimal"]) * quantity)
        else:
            amount = item["amount"]
        if amount < 0:
            raise invalid("The credit note line amount must be positive.", f"{param}[amount]")
        line_id = state.line_of_item[item["id"]]
        if amount + credited_on_line(state, inv["id"], line_id) > item["amount"]:
            raise invalid(
                "The credit note line amount cannot be greater than the amount of the invoice "
                "line that has not been credited yet.",
                f"{param}[amount]",
            )
        item_taxes = state.item_taxes.get(item["id"], [])
        if "tax_amounts" in line:
            allowed = [t["tax_rate_details"]["tax_rate"] for t in item_taxes]
            taxes = credit_line_taxes(state, line["tax_amounts"], amount, param, allowed)
        else:
            taxes = prorated_taxes(item_taxes, amount, item["amount"])
        return _note_line(
            line,
            "invoice_line_item",
            amount=amount,
            description=line.get("description", item["description"]),
            unit_amount=None,
            unit_amount_decimal=None,
            invoice_line_item=line_id,
            taxes=taxes,
        )
    if "unit_amount" in line and "unit_amount_decimal" in line:
        raise exclusive(f"{param}[unit_amount]", f"{param}[unit_amount_decimal]")
    if "unit_amount" not in line and "unit_amount_decimal" not in line:
        raise missing_param(f"{param}[unit_amount]")
    unit = Decimal(line.get("unit_amount", line.get("unit_amount_decimal")))
    if unit < 0:
        raise invalid("The unit amount must be positive.", f"{param}[unit_amount]")
    amount = round_minor(unit * quantity)
    return _note_line(
        line,
        "custom_line_item",
        amount=amount,
        taxes=credit_line_taxes(state, line.get("tax_amounts"), amount, param, None),
        description=line.get("description"),
        unit_amount=int(unit) if unit == int(unit) else None,
        unit_amount_decimal=decimal_text(unit),
    )


def _credit_amounts(
    inv: dict[str, Any], p: Params, lines_total: int, has_lines: bool
) -> tuple[int, int, int, int, str]:
    """Check the note's amounts against the invoice.

    Returns (amount, refund_amount, credit_amount, out_of_band_amount, type).
    """
    if "amount" in p and has_lines and p["amount"] != lines_total:
        raise invalid(
            f"The amount ({p['amount']}) must equal the sum of the line amounts and their "
            f"exclusive tax ({lines_total}).",
            "amount",
        )
    amount = p.get("amount", lines_total)
    refund_amount = p.get("refund_amount", 0)
    credit_amount = p.get("credit_amount", 0)
    out_of_band = p.get("out_of_band_amount", 0)
    if not has_lines and "amount" not in p:
        amount = refund_amount + credit_amount + out_of_band
    if amount <= 0:
        raise invalid("The credit note amount must be greater than 0.", "amount")
    if inv["status"] == "open":
        if refund_amount or out_of_band:
            raise invalid(
                "You cannot refund or credit out of band an invoice that has not been paid.",
                "refund_amount" if refund_amount else "out_of_band_amount",
            )
        available = inv["amount_remaining"]
        if credit_amount and credit_amount != amount:
            raise invalid("credit_amount must equal the credit note amount.", "credit_amount")
        credit_amount = 0  # a pre-payment note reduces what is due
        note_type = "pre_payment"
    else:
        available = inv["amount_paid"] - inv["post_payment_credit_notes_amount"]
        if refund_amount + credit_amount + out_of_band == 0:
            credit_amount = amount
        if refund_amount + credit_amount + out_of_band != amount:
            raise invalid(
                "The sum of refund_amount, credit_amount and out_of_band_amount must equal the "
                "credit note amount.",
                "amount",
            )
        note_type = "post_payment"
    if amount > available:
        raise invalid(
            f"The credit note amount ({display(amount, inv['currency'])}) is greater than the "
            f"amount that can be credited on this invoice ({display(available, inv['currency'])}).",
            "amount",
        )
    return amount, refund_amount, credit_amount, out_of_band, note_type


def _refund_invoice(
    state: State, ctx: RequestContext, inv: dict[str, Any], refund_amount: int
) -> list[dict[str, Any]]:
    """Refund ``refund_amount`` of the invoice's charge; the note's ``refunds`` entries."""
    if not refund_amount:
        return []
    charges = invoice_charges(state, inv)
    if not charges:
        raise invalid(
            "This invoice was not paid with a charge that can be refunded; use "
            "out_of_band_amount or credit_amount instead.",
            "refund_amount",
        )
    refund = refund_charge(state, ctx, charges[0], refund_amount, param="refund_amount")
    return [
        {
            "amount_refunded": refund_amount,
            "payment_record_refund": None,
            "refund": refund["id"],
            "type": "refund",
        }
    ]


@route("POST", "/v1/credit_notes", "CreditNoteCreateParams")
def create_credit_note(state: State, ctx: RequestContext, p: Params) -> Body:
    unsupported(p, "refunds", "shipping_cost")
    inv = state.get("invoice", p["invoice"], "invoice")
    if inv["status"] not in ("open", "paid"):
        raise invalid(
            f"You can only create credit notes for open or paid invoices; this invoice is "
            f"{inv['status']}.",
            "invoice",
        )
    lines = [
        _credit_line(state, inv, line, f"lines[{n}]") for n, line in enumerate(p.get("lines", []))
    ]
    money = totals(sum(line["amount"] for line in lines),
                   [t for line in lines for t in line["taxes"]])
    amounts = _credit_amounts(inv, p, money["total"], bool(lines))
    amount, refund_amount, credit_amount, out_of_band, note_type = amounts
    refunds = _refund_invoice(state, ctx, inv, refund_amount)
    customer = state.objects.get(inv["customer"])
    balance_tx = None
    if credit_amount and customer is not None:
        customer["balance"] -= credit_amount
        balance_tx = state.new_id("cbtxn")
    existing = len(state.ids_of("credit_note", lambda o: o["invoice"] == inv["id"]))
    now = state.now()
    note = {
        "id": state.new_id("cn"),
        "object": "credit_note",
        "amount": amount,
        "amount_shipping": 0,
        "created": now,
        "currency": inv["currency"],
        "customer": inv["customer"],
        "customer_account": None,
        "customer_balance_transaction": balance_tx,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": p.get("effective_at", now),
        "invoice": inv["id"],
        "livemode": False,
        "memo": p.get("memo"),
        "metadata": new_metadata(p),
        "number": f"{inv['number']}-CN-{existing + 1:02d}",
        "out_of_band_amount": out_of_band or None,
        "pdf": f"{inv['hosted_invoice_url']}&credit_note={existing + 1}",
        "post_payment_amount": amount if note_type == "post_payment" else 0,
        "pre_payment_amount": amount if note_type == "pre_payment" else 0,
        "pretax_credit_amounts": [],
        "reason": p.get("reason"),
        "refunds": refunds,
        "shipping_cost": None,
        "status": "issued",
        "subtotal": amount,
        "subtotal_excluding_tax": amount,
        "total": amount,
        "total_excluding_tax": amount,
        "total_taxes": [],
        **(money if lines else {}),  # with lines: their amounts and taxes
        "type": note_type,
        "voided_at": None,
    }
    state.add(note)
    for line in lines:
        line["id"] = state.new_id("cnli")
    state.credit_note_lines[note["id"]] = lines
    if note_type == "pre_payment":
        inv["pre_payment_credit_notes_amount"] += amount
        recompute(state, inv)
    else:
        inv["post_payment_credit_notes_amount"] += amount
    state.emit("credit_note.created", note["id"], ctx)
    if note_type == "pre_payment" and inv["amount_remaining"] == 0:
        cancel_open_payments(state, inv, "automatic")
        settle(state, ctx, inv, off_stripe=0)
    return rendered(state, note["id"], p)


retrieve_endpoint("credit_note", "/v1/credit_notes", "CreditNote")


@route("POST", "/v1/credit_notes/{id}", "CreditNoteUpdateParams")
def update_credit_note(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    """Only the memo and the metadata of an issued credit note change (``credit_note.updated``)."""
    note = state.get("credit_note", id)
    updates: dict[str, Any] = {}
    if "memo" in p:
        updates["memo"] = nullable(p["memo"])
    if "metadata" in p:
        updates["metadata"] = merge_metadata(note["metadata"], p["metadata"])
    update_and_emit(state, ctx, note, updates, "credit_note.updated")
    return rendered(state, id, p)


@route("GET", "/v1/credit_notes/{id}/lines", "CreditNoteLineItemListParams")
def list_credit_note_lines(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    state.get("credit_note", id, "credit_note")
    lines = {line["id"]: line for line in state.credit_note_lines.get(id, [])}
    return state.list_response(
        list(lines), p, f"/v1/credit_notes/{id}/lines", render=lambda i: dict(lines[i])
    )


list_endpoint("credit_note", "/v1/credit_notes", "CreditNote", filters=("invoice", "customer"))


@route("POST", "/v1/credit_notes/{id}/void", "CreditNoteVoidCreditNoteParams")
def void_credit_note(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    note = state.get("credit_note", id)
    if note["status"] == "void":
        raise invalid("This credit note has already been voided.", "id")
    if note["refunds"]:
        raise invalid("You cannot void a credit note that has refunds.", "id")
    inv = state.objects[note["invoice"]]
    if inv["status"] == "void":
        raise invalid("You cannot void a credit note of a voided invoice.", "id")
    note["status"] = "void"
    note["voided_at"] = state.now()
    if note["type"] == "pre_payment":
        if inv["status"] == "paid":
            raise invalid("You cannot void a pre-payment credit note of a paid invoice.", "id")
        inv["pre_payment_credit_notes_amount"] -= note["amount"]
        recompute(state, inv)
    else:
        inv["post_payment_credit_notes_amount"] -= note["amount"]
        customer = state.objects.get(note["customer"])
        if note["customer_balance_transaction"] and customer is not None:
            customer["balance"] += note["amount"] - (note["out_of_band_amount"] or 0)
    state.emit("credit_note.voided", id, ctx)
    return rendered(state, id, p)
