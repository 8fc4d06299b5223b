"""Invoice items: ``/v1/invoiceitems``, the priced lines a customer is billed.

An item is pending (``invoice`` null) until an invoice takes it; on a draft it is one of the
invoice's lines. Its amount is ``amount``, ``unit_amount_decimal`` times quantity, or a price
(``price_data`` or ``pricing[price]``) times quantity, rounded half away from zero.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .customers import customer_param
from .errors import exclusive, invalid, missing_param
from .fields import apply_changes, merge_metadata, new_metadata, unsupported
from .invoices import draft_invoice, recompute
from .money import currency as check_currency
from .money import decimal_text, round_minor
from .products import new_price, new_product, price_data_plan
from .routes import Body, Params, route
from .state import EXPANDABLE, RequestContext, State
from .taxes import line_taxes
from .templates import Predicate, deleted_answer, list_endpoint, rendered, retrieve_endpoint

EXPANDABLE.update(
    invoiceitem={"customer": None, "invoice": None, "pricing.price_details.price": None}
)
_PRICE_SOURCES = ("amount", "unit_amount_decimal", "price_data", "pricing")


def _item_pricing(
    state: State,
    p: Params,
    cur: str | None,
    param_prefix: str = "",
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """amount, quantity and pricing of an invoice item from its create/update parameters.

    Every check runs before anything is created; ``dry_run`` stops there (returns ``{}``).
    """

    def name(key: str) -> str:
        return f"{param_prefix}[{key}]" if param_prefix else key

    unsupported(p, "discounts", "tax_rates", "tax_code")
    if "quantity" in p and "quantity_decimal" in p:
        raise exclusive(name("quantity"), name("quantity_decimal"))
    if "quantity_decimal" in p:
        quantity = Decimal(p["quantity_decimal"])
    else:
        quantity = Decimal(p.get("quantity", 1))
    if quantity < 0:
        raise invalid("This value must be greater than or equal to 0.", name("quantity"))
    sources = [k for k in _PRICE_SOURCES if k in p]
    if len(sources) > 1:
        raise exclusive(*(name(s) for s in sources))
    if not sources:
        raise missing_param(name("amount"))
    source = sources[0]
    make: Callable[[], str]
    if source in ("amount", "unit_amount_decimal"):
        if source == "amount" and ("quantity" in p or "quantity_decimal" in p) and quantity != 1:
            raise exclusive(name("amount"), name("quantity"))
        if cur is None:
            raise missing_param(name("currency"))
        unit = Decimal(p["amount"]) if source == "amount" else p["unit_amount_decimal"]
        price_cur, description = cur, p.get("description") or "Invoice item"

        def make() -> str:
            product = new_product(state, description, hidden=True)
            return new_price(state, currency=price_cur, product=product, unit_amount_decimal=unit)

    elif source == "price_data":
        price_cur, make = price_data_plan(state, p["price_data"], name("price_data"))
    else:
        if "price" not in p["pricing"]:
            raise missing_param(name("pricing][price"))
        existing = state.get("price", p["pricing"]["price"], name("pricing][price"))
        price_cur = existing["currency"]

        def make() -> str:
            return existing["id"]

    if cur is not None and price_cur != cur:
        raise invalid(
            f"The price's currency ({price_cur}) must match the currency of the invoice "
            f"item ({cur}).",
            name("currency"),
        )
    if dry_run:
        return {}
    price = state.objects[make()]
    amount = round_minor(Decimal(price["unit_amount_decimal"]) * quantity)
    integral = quantity == quantity.to_integral_value()
    return {
        "amount": amount,
        "currency": price["currency"],
        "quantity": int(quantity) if integral else round_minor(quantity),
        "quantity_decimal": decimal_text(quantity),
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "net_amount": amount,
    }


def _period(p: Params, now: int, param: str = "period") -> dict[str, int]:
    if "period" not in p:
        return {"end": now, "start": now}
    period = p["period"]
    if period["end"] < period["start"]:
        raise invalid("The period end must be greater than or equal to the start.", f"{param}[end]")
    return {"end": period["end"], "start": period["start"]}


def new_item(
    state: State,
    ctx: RequestContext,
    p: Params,
    *,
    customer: dict[str, Any],
    invoice: dict[str, Any] | None,
    param_prefix: str = "",
    dry_run: bool = False,
) -> dict[str, Any] | None:
    """Create an invoice item (``dry_run``: only run every check, create nothing)."""
    unsupported(p, "subscription", "customer_account")
    cur = p.get("currency")
    if cur is not None:
        cur = check_currency(cur)
        if invoice is not None and cur != invoice["currency"]:
            raise invalid(
                f"The currency of the invoice item ({cur}) must match the currency of the "
                f"invoice ({invoice['currency']}).",
                "currency",
            )
    elif invoice is not None:
        cur = invoice["currency"]
    elif "price_data" not in p and "pricing" not in p:
        cur = customer["currency"] or state.default_currency
    metadata = new_metadata(p)
    now = state.now()
    period = _period(p, now)
    priced = _item_pricing(state, p, cur, param_prefix, dry_run=dry_run)
    if dry_run:
        if "tax_amounts" in p:  # the amount is known only once priced: check the shape now
            line_taxes(state, p["tax_amounts"], p.get("amount", 0), param_prefix, dry_run=True)
        return None
    taxes = line_taxes(state, p.get("tax_amounts"), priced["amount"], param_prefix)
    item = {
        "id": state.new_id("ii"),
        "object": "invoiceitem",
        "customer": customer["id"],
        "customer_account": None,
        "date": now,
        "description": p.get("description"),
        "discountable": p.get("discountable", priced["amount"] >= 0),
        "discounts": [],
        "invoice": invoice["id"] if invoice else None,
        "livemode": False,
        "metadata": metadata,
        "parent": None,
        "period": period,
        "proration": False,
        "tax_rates": [],
        "test_clock": None,
        **priced,
    }
    if customer["currency"] is None:
        customer["currency"] = item["currency"]
    state.add(item)
    if taxes:
        state.item_taxes[item["id"]] = taxes  # manual tax amounts, shown on its line
    state.line_of_item[item["id"]] = line_id = state.new_id("il")
    state.item_of_line[line_id] = item["id"]
    if invoice is not None:
        state.invoice_items[invoice["id"]].append(item["id"])
        recompute(state, invoice)
    state.emit("invoiceitem.created", item["id"], ctx)
    return item


def update_item(
    state: State,
    ctx: RequestContext,
    item: dict[str, Any],
    p: Params,
    prefix: str = "",
    dry_run: bool = False,
) -> None:
    """Update an invoice item (``dry_run``: only run every check, change nothing)."""
    unsupported(p, "discounts", "tax_rates", "tax_code")
    updates: dict[str, Any] = {}
    if "description" in p:
        updates["description"] = p["description"]
    if "discountable" in p:
        updates["discountable"] = p["discountable"]
    if "period" in p:
        updates["period"] = _period(p, state.now())
    if "metadata" in p:
        updates["metadata"] = merge_metadata(item["metadata"], p["metadata"])
    changes = {k: p[k] for k in (*_PRICE_SOURCES, "quantity", "quantity_decimal") if k in p}
    if changes:
        if not any(k in changes for k in _PRICE_SOURCES):  # a new quantity of the same price
            changes["pricing"] = {"price": item["pricing"]["price_details"]["price"]}
        if "description" in p:
            changes["description"] = p["description"]
        updates.update(_item_pricing(state, changes, item["currency"], prefix, dry_run=dry_run))
    taxes = None
    if "tax_amounts" in p:
        amount = updates.get("amount", p.get("amount", item["amount"]))
        taxes = line_taxes(state, p["tax_amounts"], amount, prefix, dry_run=dry_run)
    if dry_run:
        return
    previous = apply_changes(item, updates)
    if taxes is not None:
        state.item_taxes[item["id"]] = taxes
    if item["invoice"]:
        recompute(state, state.objects[item["invoice"]])
    if previous:
        state.emit("invoiceitem.updated", item["id"], ctx, previous)


def delete_item(state: State, ctx: RequestContext, item: dict[str, Any]) -> None:
    """Delete an invoice item, taking it off its invoice."""
    state.emit("invoiceitem.deleted", item["id"], ctx)
    if item["invoice"]:
        state.invoice_items[item["invoice"]].remove(item["id"])
        recompute(state, state.objects[item["invoice"]])
    state.remove(item["id"])


def _editable_item(state: State, item_id: str, param: str = "id") -> dict[str, Any]:
    item = state.get("invoiceitem", item_id, param)
    if item["invoice"] is not None:
        draft_invoice(state, item["invoice"])
    return item


@route("POST", "/v1/invoiceitems", "InvoiceItemCreateParams")
def create_invoice_item(state: State, ctx: RequestContext, p: Params) -> Body:
    customer = customer_param(state, p)
    invoice = None
    if "invoice" in p:
        invoice = draft_invoice(state, p["invoice"])
        if invoice["customer"] != customer["id"]:
            raise invalid(
                f"The invoice {invoice['id']} belongs to customer {invoice['customer']}, not to "
                f"{customer['id']}.",
                "invoice",
            )
    item = new_item(state, ctx, p, customer=customer, invoice=invoice)
    assert item is not None
    return rendered(state, item["id"], p)


retrieve_endpoint("invoiceitem", "/v1/invoiceitems", "InvoiceItem")


@route("POST", "/v1/invoiceitems/{id}", "InvoiceItemUpdateParams")
def update_invoice_item(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    update_item(state, ctx, _editable_item(state, id), p)
    return rendered(state, id, p)


@route("DELETE", "/v1/invoiceitems/{id}", "InvoiceItemDeleteParams")
def delete_invoice_item(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    delete_item(state, ctx, _editable_item(state, id))
    return deleted_answer("invoiceitem", id)


def _pending_test(p: Params) -> Predicate:
    return lambda o: "pending" not in p or (o["invoice"] is None) == p["pending"]


list_endpoint(
    "invoiceitem",
    "/v1/invoiceitems",
    "InvoiceItem",
    filters=("customer", "invoice"),
    where=_pending_test,
)
