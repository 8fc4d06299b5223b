"""An invoice's lines: ``/v1/invoices/{id}/lines`` and the bulk line endpoints of a draft.

A line is the view of an invoice item on its invoice (``il_`` id, ``line_item`` object). The bulk
endpoints (``add_lines``, ``remove_lines``, ``update_lines``) change several lines in one
request; as on Stripe, a request that fails changes nothing: a first pass runs every check (dry
run), the second applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import invalid, no_such
from .fields import apply_changes, merge_metadata
from .invoice_items import delete_item, new_item, update_item
from .invoices import draft_invoice, recompute
from .routes import Body, Params, route
from .state import EXPANDABLE, RENDERERS, RequestContext, State
from .templates import embedded_list, rendered

_EMBEDDED_LINES = 10  # an invoice embeds its first lines; the rest are paged from /lines


def render_line(state: State, item_id: str) -> dict[str, Any]:
    """The ``line_item`` of an invoice item, as the API answers it."""
    item = state.objects[item_id]
    return {
        "id": state.line_of_item[item_id],
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": item["invoice"],
        "livemode": False,
        "metadata": dict(item["metadata"]),
        "parent": {
            "invoice_item_details": {
                "invoice_item": item_id,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": None,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": dict(item["pricing"]["price_details"]),
            "type": "price_details",
            "unit_amount_decimal": item["pricing"]["unit_amount_decimal"],
        },
        "quantity": item["quantity"],
        "quantity_decimal": item["quantity_decimal"],
        "subscription": None,
        "subtotal": item["amount"],
        "taxes": [dict(t, tax_rate_details=dict(t["tax_rate_details"]))
                  for t in state.item_taxes.get(item_id, [])],
    }


def _render_invoice(state: State, obj: dict[str, Any]) -> None:
    obj["lines"] = embedded_list(
        state.invoice_items.get(obj["id"], []),
        f"/v1/invoices/{obj['id']}/lines",
        lambda item_id: render_line(state, item_id),
        limit=_EMBEDDED_LINES,
    )


RENDERERS.update(invoice=_render_invoice)
EXPANDABLE.update(line_item={"pricing.price_details.price": None})


def line_item(state: State, invoice_id: str, line_id: Any, param: str) -> dict[str, Any]:
    """The invoice item behind line ``line_id`` of the invoice (404 if it is not on it)."""
    item_id = state.item_of_line.get(line_id) if isinstance(line_id, str) else None
    if item_id is None or state.objects.get(item_id, {}).get("invoice") != invoice_id:
        raise no_such("line item", str(line_id), param)
    return state.objects[item_id]


def _distinct_lines(
    state: State, invoice_id: str, lines: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        item = line_item(state, invoice_id, line["id"], f"lines[{n}][id]")
        if item in items:
            raise invalid(f"The line {line['id']} appears more than once.", f"lines[{n}][id]")
        items.append(item)
    return items


def _invoice_metadata(inv: dict[str, Any], p: Params) -> dict[str, Any]:
    """The ``invoice_metadata`` update of the line endpoints, checked before anything changes."""
    if "invoice_metadata" not in p:
        return {}
    return {"metadata": merge_metadata(inv["metadata"], p["invoice_metadata"], "invoice_metadata")}


def _lines_done(
    state: State, ctx: RequestContext, inv: dict[str, Any], updates: dict[str, Any]
) -> None:
    previous = apply_changes(inv, updates)
    recompute(state, inv)
    state.emit("invoice.updated", inv["id"], ctx, previous)


def _attach_item(
    state: State, inv: dict[str, Any], line: dict[str, Any], prefix: str, attaching: set[str]
) -> dict[str, Any]:
    """The pending invoice item ``line[invoice_item]`` that ``add_lines`` may attach."""
    extra = sorted(set(line) - {"invoice_item"})
    if extra:
        raise invalid(
            f"You cannot pass `{prefix}[{extra[0]}]` with `{prefix}[invoice_item]`.",
            f"{prefix}[{extra[0]}]",
        )
    item = state.get("invoiceitem", line["invoice_item"], f"{prefix}[invoice_item]")
    if item["invoice"] is not None or item["id"] in attaching:
        raise invalid(
            f"The invoice item {item['id']} is already attached to an invoice.",
            f"{prefix}[invoice_item]",
        )
    if item["customer"] != inv["customer"] or item["currency"] != inv["currency"]:
        raise invalid(
            f"The invoice item {item['id']} must belong to the invoice's customer and currency.",
            f"{prefix}[invoice_item]",
        )
    return item


@route("POST", "/v1/invoices/{id}/add_lines", "InvoiceAddLinesParams")
def add_lines(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    inv = draft_invoice(state, id, "invoice")
    customer = state.get("customer", inv["customer"], "customer")
    updates = _invoice_metadata(inv, p)
    for dry_run in (True, False):
        attaching: set[str] = set()
        for n, line in enumerate(p["lines"]):
            prefix = f"lines[{n}]"
            if "invoice_item" not in line:
                new_item(
                    state,
                    ctx,
                    line,
                    customer=customer,
                    invoice=inv,
                    param_prefix=prefix,
                    dry_run=dry_run,
                )
                continue
            item = _attach_item(state, inv, line, prefix, attaching)
            attaching.add(item["id"])
            if not dry_run:
                item["invoice"] = id
                state.invoice_items[id].append(item["id"])
    _lines_done(state, ctx, inv, updates)
    return rendered(state, id, p)


LineChange = Callable[[list[tuple[dict[str, Any], dict[str, Any]]]], None]


def _change_named_lines(
    state: State, ctx: RequestContext, p: Params, invoice_id: str, change: LineChange
) -> Body:
    """``remove_lines``/``update_lines``: ``change`` the (line parameters, item) pairs."""
    inv = draft_invoice(state, invoice_id, "invoice")
    updates = _invoice_metadata(inv, p)
    items = _distinct_lines(state, invoice_id, p["lines"])
    change(list(zip(p["lines"], items, strict=True)))
    _lines_done(state, ctx, inv, updates)
    return rendered(state, invoice_id, p)


@route("POST", "/v1/invoices/{id}/remove_lines", "InvoiceRemoveLinesParams")
def remove_lines(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    def remove(named: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for line, item in named:
            if line["behavior"] == "delete":
                delete_item(state, ctx, item)
            else:
                state.invoice_items[id].remove(item["id"])
                item["invoice"] = None

    return _change_named_lines(state, ctx, p, id, remove)


@route("POST", "/v1/invoices/{id}/update_lines", "InvoiceUpdateLinesParams")
def update_lines(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    def update(named: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for dry_run in (True, False):
            for n, (line, item) in enumerate(named):
                changes = {k: v for k, v in line.items() if k != "id"}
                update_item(state, ctx, item, changes, f"lines[{n}]", dry_run=dry_run)

    return _change_named_lines(state, ctx, p, id, update)


@route("GET", "/v1/invoices/{id}/lines", "InvoiceLineItemListParams")
def list_lines(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    state.get("invoice", id, "invoice")
    items = state.invoice_items.get(id, [])
    line_ids = [state.line_of_item[i] for i in items]
    return state.list_response(
        line_ids,
        p,
        f"/v1/invoices/{id}/lines",
        render=lambda lid: render_line(state, state.item_of_line[lid]),
    )


@route("POST", "/v1/invoices/{id}/lines/{line}", "InvoiceLineItemUpdateParams")
def update_line(state: State, ctx: RequestContext, p: Params, id: str, line: str) -> Body:
    draft_invoice(state, id, "invoice")
    item = line_item(state, id, line, "line_item_id")
    update_item(state, ctx, item, {k: v for k, v in p.items() if k != "expand"})
    out = render_line(state, item["id"])
    state.expand_all(out, p.get("expand", []))
    return out
