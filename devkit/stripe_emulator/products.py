"""Products and prices: ``/v1/products`` and ``/v1/prices`` (one-time, per-unit prices only).

Invoice items priced inline (``amount``, ``price_data``) get a hidden product and price of their
own, as on Stripe; those are not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .errors import exclusive, invalid, missing_param
from .fields import new_metadata, unsupported
from .money import currency as check_currency
from .money import decimal_text
from .routes import Body, Params, route
from .state import EXPANDABLE, RequestContext, State
from .templates import list_endpoint, rendered, retrieve_endpoint

EXPANDABLE.update(price={"product": None})


def new_product(state: State, name: str, p: Params | None = None, hidden: bool = False) -> str:
    """Create a product named ``name`` from the create parameters ``p``; return its id."""
    p = p or {}
    now = state.now()
    obj = {
        "id": p.get("id") or state.new_id("prod", 14),
        "object": "product",
        "active": p.get("active", True),
        "created": now,
        "default_price": None,
        "description": p.get("description"),
        "images": list(p.get("images", [])),
        "livemode": False,
        "marketing_features": [],
        "metadata": new_metadata(p),
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": p.get("statement_descriptor"),
        "tax_code": p.get("tax_code"),
        "unit_label": p.get("unit_label"),
        "updated": now,
        "url": p.get("url"),
    }
    if obj["id"] in state.objects:
        raise invalid("Product already exists.", "id", "resource_already_exists")
    state.add(obj, hidden=hidden)
    return obj["id"]


def new_price(
    state: State,
    *,
    currency: str,
    product: str,
    unit_amount_decimal: Decimal,
    tax_behavior: str = "unspecified",
) -> str:
    """Create a hidden, inactive one-time price (the inline price of an invoice item)."""
    integral = unit_amount_decimal == unit_amount_decimal.to_integral_value()
    unit_amount = int(unit_amount_decimal) if integral else None
    obj = {
        "id": state.new_id("price"),
        "object": "price",
        "active": False,
        "billing_scheme": "per_unit",
        "created": state.now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product,
        "recurring": None,
        "tax_behavior": tax_behavior,
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": decimal_text(unit_amount_decimal),
    }
    state.add(obj, hidden=True)
    return obj["id"]


def price_data_plan(
    state: State, data: dict[str, Any], param: str
) -> tuple[str, Callable[[], str]]:
    """Check ``price_data``; return its currency and a function creating the price."""
    cur = check_currency(data["currency"], f"{param}[currency]")
    if "product" in data and "product_data" in data:
        raise exclusive(f"{param}[product]", f"{param}[product_data]")
    if "product" in data:
        product = state.get("product", data["product"], f"{param}[product]")["id"]
    elif "product_data" not in data:
        raise missing_param(f"{param}[product]")
    if "unit_amount" in data and "unit_amount_decimal" in data:
        raise exclusive(f"{param}[unit_amount]", f"{param}[unit_amount_decimal]")
    if "unit_amount" in data:
        unit = Decimal(data["unit_amount"])
    elif "unit_amount_decimal" in data:
        unit = data["unit_amount_decimal"]
    else:
        raise missing_param(f"{param}[unit_amount]")
    if unit < 0:
        raise invalid("This value must be greater than or equal to 0.", f"{param}[unit_amount]")

    def make() -> str:
        made = (
            product
            if "product" in data
            else new_product(state, data["product_data"]["name"], data["product_data"], hidden=True)
        )
        return new_price(
            state,
            currency=cur,
            product=made,
            unit_amount_decimal=unit,
            tax_behavior=data.get("tax_behavior", "unspecified"),
        )

    return cur, make


@route("POST", "/v1/products", "ProductCreateParams")
def create_product(state: State, ctx: RequestContext, p: Params) -> Body:
    unsupported(p, "default_price_data", "tax_details")
    pid = new_product(state, p["name"], p)
    state.emit("product.created", pid, ctx)
    return rendered(state, pid, p)


retrieve_endpoint("product", "/v1/products", "Product")
list_endpoint("product", "/v1/products", "Product", filters=("active",))


@route("POST", "/v1/prices", "PriceCreateParams")
def create_price(state: State, ctx: RequestContext, p: Params) -> Body:
    unsupported(p, "recurring", "tiers", "tiers_mode", "transform_quantity")
    unsupported(p, "custom_unit_amount", "currency_options")
    if p.get("billing_scheme", "per_unit") != "per_unit":
        unsupported(p, "billing_scheme")
    data = {
        k: p[k]
        for k in (
            "currency",
            "product",
            "product_data",
            "unit_amount",
            "unit_amount_decimal",
            "tax_behavior",
        )
        if k in p
    }
    if "currency" not in data:
        raise missing_param("currency")
    price_id = price_data_plan(state, data, "price")[1]()
    price = state.objects[price_id]
    state.hidden.discard(price_id)
    price.update(
        active=p.get("active", True),
        metadata=new_metadata(p),
        nickname=p.get("nickname"),
        lookup_key=p.get("lookup_key"),
    )
    state.emit("price.created", price_id, ctx)
    return rendered(state, price_id, p)


retrieve_endpoint("price", "/v1/prices", "Price")
