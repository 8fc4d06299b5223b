"""Invoices: ``/v1/invoices`` create, retrieve, update, delete (drafts), list and search.

This module owns the invoice object and its money fields (:func:`recompute`); its lines live in
``invoice_lines.py``, its state machine (finalize, pay, void ...) in ``invoice_lifecycle.py``.
"""

from __future__ import annotations

from typing import Any

from .cards import payment_method
from .customers import customer_param
from .errors import exclusive, invalid, not_editable
from .fields import apply_changes, merge_metadata, nullable, unsupported
from .money import currency as check_currency
from .payments import confirmation_secret, invoice_payments_list
from .routes import Body, Params, route
from .search import search_endpoint
from .state import EXPANDABLE, RequestContext, State, created_matches
from .taxes import totals
from .templates import Predicate, deleted_answer, list_endpoint, rendered, retrieve_endpoint

DAY = 86400
DEFAULT_DAYS_UNTIL_DUE = 30  # Stripe's account-level default for send_invoice
AUTO_FINALIZE_DELAY = 3600  # Stripe finalizes auto_advance drafts about an hour after creation

EXPANDABLE.update(
    invoice={
        "customer": None,
        "payments": invoice_payments_list,
        "confirmation_secret": confirmation_secret,
        "lines.data.pricing.price_details.price": None,
    }
)


def recompute(state: State, inv: dict[str, Any]) -> None:
    """Derive the invoice's money fields from its lines and its state."""
    items = state.invoice_items[inv["id"]]
    inv.update(totals(sum(state.objects[i]["amount"] for i in items),
                      [t for i in items for t in state.item_taxes.get(i, [])]))
    total = inv["total"]  # including exclusive tax: what is due
    if inv["status"] == "draft":
        customer = state.objects.get(inv["customer"])
        if customer is not None:
            inv.update(
                customer_address=customer["address"],
                customer_email=customer["email"],
                customer_name=customer["name"],
                customer_phone=customer["phone"],
                customer_shipping=customer["shipping"],
                customer_tax_exempt=customer["tax_exempt"],
            )
        due = max(0, total)
    else:
        due = max(0, total + inv["starting_balance"] - inv["pre_payment_credit_notes_amount"])
    inv["amount_due"] = due
    inv["amount_remaining"] = 0 if inv["status"] == "paid" else max(0, due - inv["amount_paid"])


def draft_invoice(state: State, invoice_id: str, param: str = "invoice") -> dict[str, Any]:
    """The invoice, which must still be a draft for its lines to change."""
    inv = state.get("invoice", invoice_id, param)
    if inv["status"] != "draft":
        raise not_editable(
            f"Invoice {invoice_id} is no longer a draft: it can no longer be edited. Instead, "
            "consider creating additional invoice items that will be applied to the next invoice.",
            param,
        )
    return inv


def remove_invoice(state: State, invoice_id: str) -> None:
    """Forget the invoice and its items."""
    for item_id in state.invoice_items.pop(invoice_id, []):
        state.remove(item_id)
    state.remove(invoice_id)


def _invoice_fields(state: State, p: Params, inv: dict[str, Any], creating: bool) -> dict[str, Any]:
    unsupported(
        p,
        "application_fee_amount",
        "automatic_tax.enabled",
        "discounts",
        "default_tax_rates",
        "from_invoice",
        "on_behalf_of",
        "shipping_cost",
        "subscription",
        "transfer_data",
        "customer_account",
        "account_tax_ids",
        "default_source",
    )
    updates: dict[str, Any] = {}
    method = p.get("collection_method", inv["collection_method"])
    updates["collection_method"] = method
    for key in ("days_until_due", "due_date"):
        if key in p and method != "send_invoice":
            raise invalid(
                f"Invoices with collection_method=charge_automatically cannot have a {key}. "
                f"Use collection_method=send_invoice to set `{key}`.",
                key,
            )
    if "days_until_due" in p and "due_date" in p:
        raise exclusive("days_until_due", "due_date")
    now = state.now()
    days: int | None = state.invoice_days_until_due.get(inv["id"])  # applied once all is checked
    if method == "send_invoice":
        if "due_date" in p:
            if p["due_date"] < now - DAY:
                raise invalid("The due_date must be in the future.", "due_date")
            updates["due_date"], days = p["due_date"], None
        elif "days_until_due" in p or inv.get("due_date") is None:
            days = p.get("days_until_due", DEFAULT_DAYS_UNTIL_DUE)
            if days < 0:
                raise invalid("This value must be greater than or equal to 0.", "days_until_due")
            start = inv["status_transitions"]["finalized_at"] or inv["created"]
            updates["due_date"] = start + days * DAY
    else:
        updates["due_date"], days = None, None
    if "auto_advance" in p:
        updates["auto_advance"] = p["auto_advance"]
    auto_advance = updates.get("auto_advance", inv["auto_advance"])
    if "automatically_finalizes_at" in p:
        if not auto_advance:
            raise invalid(
                "automatically_finalizes_at requires auto_advance=true.",
                "automatically_finalizes_at",
            )
        updates["automatically_finalizes_at"] = p["automatically_finalizes_at"]
    elif inv["status"] == "draft" and (creating or "auto_advance" in p):
        updates["automatically_finalizes_at"] = (
            inv["created"] + AUTO_FINALIZE_DELAY if auto_advance else None
        )
    for key in ("description", "footer", "statement_descriptor", "number"):
        if key in p:
            updates[key] = nullable(p[key])
    if "custom_fields" in p:
        updates["custom_fields"] = nullable(p["custom_fields"]) or None
    if "effective_at" in p:
        updates["effective_at"] = nullable(p["effective_at"])
    if "default_payment_method" in p:
        updates["default_payment_method"] = payment_method(
            p["default_payment_method"], "default_payment_method"
        )
    if "metadata" in p:
        updates["metadata"] = merge_metadata(inv["metadata"], p["metadata"])
    if days is None:
        state.invoice_days_until_due.pop(inv["id"], None)
    else:
        state.invoice_days_until_due[inv["id"]] = days
    return updates


def _new_invoice(state: State, customer: dict[str, Any], cur: str) -> dict[str, Any]:
    """A fresh draft with Stripe's defaults (not stored yet)."""
    now = state.now()
    return {
        "id": state.new_id("in"),
        "object": "invoice",
        "account_country": state.account_country,
        "account_name": "Stripe Emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": cur,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": None,
        "customer_email": None,
        "customer_name": None,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": None,
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


@route("POST", "/v1/invoices", "InvoiceCreateParams")
def create_invoice(state: State, ctx: RequestContext, p: Params) -> Body:
    customer = customer_param(state, p)
    cur = (
        check_currency(p["currency"])
        if "currency" in p
        else (customer["currency"] or state.default_currency)
    )
    inv = _new_invoice(state, customer, cur)
    inv.update(_invoice_fields(state, p, inv, creating=True))
    if customer["currency"] is None:
        customer["currency"] = cur
    state.add(inv)
    if p.get("pending_invoice_items_behavior") == "include":
        for item_id in reversed(state.ids_of("invoiceitem")):
            item = state.objects[item_id]
            pending = item["customer"] == customer["id"] and item["invoice"] is None
            if pending and item["currency"] == cur:
                item["invoice"] = inv["id"]
                state.invoice_items[inv["id"]].append(item_id)
    recompute(state, inv)
    state.emit("invoice.created", inv["id"], ctx)
    return rendered(state, inv["id"], p)


# before retrieve: "/v1/invoices/search" also fits "/v1/invoices/{id}"
search_endpoint(
    "invoice",
    "invoices",
    "Invoice",
    {
        "created",
        "currency",
        "customer",
        "last_finalization_error_code",
        "last_finalization_error_type",
        "metadata",
        "number",
        "receipt_number",
        "status",
        "subscription",
        "total",
    },
)
retrieve_endpoint("invoice", "/v1/invoices", "Invoice")

_EDITABLE_WHEN_FINALIZED = frozenset(
    {
        "auto_advance",
        "custom_fields",
        "default_payment_method",
        "description",
        "footer",
        "metadata",
        "rendering",
        "statement_descriptor",
        "expand",
        "payment_settings",
        "due_date",
        "days_until_due",
        "issuer",
        "shipping_details",
    }
)


@route("POST", "/v1/invoices/{id}", "InvoiceUpdateParams")
def update_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    inv = state.get("invoice", id)
    if inv["status"] != "draft":
        allowed = {"metadata", "expand"} if inv["status"] == "void" else _EDITABLE_WHEN_FINALIZED
        if inv["status"] != "open":
            allowed = allowed - {"due_date", "days_until_due", "auto_advance"}
        locked = sorted(set(p) - allowed)
        if locked:
            raise not_editable("Finalized invoices can't be updated in this way", locked[0])
    previous = apply_changes(inv, _invoice_fields(state, p, inv, creating=False))
    recompute(state, inv)
    if previous:
        state.emit("invoice.updated", id, ctx, previous)
    return rendered(state, id, p)


@route("DELETE", "/v1/invoices/{id}", "InvoiceDeleteParams")
def delete_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    inv = state.get("invoice", id)
    if inv["status"] != "draft":
        raise invalid("You can only delete draft invoices.", "invoice")
    state.emit("invoice.deleted", id, ctx)
    remove_invoice(state, id)
    return deleted_answer("invoice", id)


def _due_date_test(p: Params) -> Predicate:
    due = p.get("due_date")
    return lambda o: (
        due is None or (o["due_date"] is not None and created_matches(o["due_date"], due))
    )


list_endpoint(
    "invoice",
    "/v1/invoices",
    "Invoice",
    filters=("customer", "status", "collection_method", "subscription"),
    unsupported_params=("customer_account",),
    where=_due_date_test,
)
