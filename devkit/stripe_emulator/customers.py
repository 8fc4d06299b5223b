"""Customers: ``/v1/customers`` create, retrieve, update, delete, list and search.

A customer carries what invoices copy at finalization: name, email, address, the invoice number
prefix and sequence, the default payment method and the balance invoices draw on.
"""

from __future__ import annotations

import re
import string
from typing import Any

from .cards import payment_method
from .errors import invalid, missing_param
from .fields import address, merge_metadata, nullable, shipping, unsupported
from .routes import Body, Params, route
from .search import search_endpoint
from .state import RequestContext, State
from .templates import (
    delete_endpoint,
    list_endpoint,
    rendered,
    retrieve_endpoint,
    update_and_emit,
)


def _customer_fields(state: State, p: Params, obj: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "cash_balance", "source", "tax", "tax_id_data", "test_clock", "default_source")
    updates: dict[str, Any] = {}
    for key in ("description", "email", "name", "phone", "business_name", "individual_name"):
        if key in p:
            updates[key] = nullable(p[key])
    if "address" in p:
        updates["address"] = address(p["address"])
    if "shipping" in p:
        updates["shipping"] = shipping(p["shipping"])
    if "balance" in p:
        updates["balance"] = p["balance"]
    if "preferred_locales" in p:
        updates["preferred_locales"] = list(p["preferred_locales"])
    if "tax_exempt" in p:
        updates["tax_exempt"] = p["tax_exempt"] or "none"
    if "next_invoice_sequence" in p:
        if p["next_invoice_sequence"] < 1:
            raise invalid("next_invoice_sequence must be greater than 0.", "next_invoice_sequence")
        updates["next_invoice_sequence"] = p["next_invoice_sequence"]
    if "invoice_prefix" in p:
        prefix = p["invoice_prefix"]
        if not re.fullmatch(r"[A-Z0-9]{3,12}", prefix):
            raise invalid(
                "Invoice prefix must be between 3 and 12 uppercase letters and numbers.",
                "invoice_prefix",
            )
        updates["invoice_prefix"] = prefix
    if "invoice_settings" in p:
        settings = dict(obj["invoice_settings"])
        given = p["invoice_settings"]
        if "default_payment_method" in given:
            settings["default_payment_method"] = payment_method(
                given["default_payment_method"], "invoice_settings[default_payment_method]"
            )
        for key in ("custom_fields", "footer", "rendering_options"):
            if key in given:
                settings[key] = nullable(given[key])
        updates["invoice_settings"] = settings
    if "metadata" in p:
        updates["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    return updates


def customer_param(state: State, p: Params) -> dict[str, Any]:
    """The customer a create request names in its required ``customer`` parameter."""
    if "customer" not in p:
        unsupported(p, "customer_account")
        raise missing_param("customer")
    return state.get("customer", p["customer"], "customer")


@route("POST", "/v1/customers", "CustomerCreateParams")
def create_customer(state: State, ctx: RequestContext, p: Params) -> Body:
    obj: dict[str, Any] = {
        "id": state.new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "business_name": None,
        "created": state.now(),
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "individual_name": None,
        "invoice_prefix": state.token(8, string.ascii_uppercase + string.digits),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    payment_method(p.get("payment_method"))
    obj.update(_customer_fields(state, p, obj))
    state.add(obj)
    state.emit("customer.created", obj["id"], ctx)
    return rendered(state, obj["id"], p)


# before retrieve: "/v1/customers/search" also fits "/v1/customers/{id}"
search_endpoint(
    "customer", "customers", "Customer", {"created", "email", "metadata", "name", "phone"}
)
retrieve_endpoint("customer", "/v1/customers", "Customer", answer_deleted=True)


@route("POST", "/v1/customers/{id}", "CustomerUpdateParams")
def update_customer(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    obj = state.get("customer", id)
    update_and_emit(state, ctx, obj, _customer_fields(state, p, obj), "customer.updated")
    return rendered(state, id, p)


delete_endpoint("customer", "/v1/customers", "Customer", event="customer.deleted")


list_endpoint(
    "customer", "/v1/customers", "Customer", filters=("email",), unsupported_params=("test_clock",)
)
