"""The emulated v1 endpoints and the object lifecycles behind them.

Each handler is registered with :func:`route` under its method, path template and the SDK
parameter TypedDict that validates its parameters. A handler receives the :class:`State`
(locked by the caller), the request context, the validated parameters and the path ids, and
returns the response body (status 200) or raises :class:`StripeAPIError`.
"""

from __future__ import annotations

import contextlib
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import search
from .errors import StripeAPIError, exclusive, invalid, missing_param, no_such, not_editable
from .money import currency as check_currency
from .money import display, minimum_charge, round_minor
from .state import EXPANDABLE, RENDERERS, RequestContext, State, created_matches

Handler = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/v1/invoices/{id}/finalize"
    regex: re.Pattern[str]
    params_class: str  # name in stripe.params
    handler: Handler

    @property
    def targets_object(self) -> bool:
        """Whether the route acts on an existing object (lock_timeout applies)."""
        return "{" in self.template


ROUTES: list[Route] = []


def route(method: str, template: str, params_class: str) -> Callable[[Handler], Handler]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, template, re.compile(f"^{pattern}$"), params_class, fn))
        return fn

    return register


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for r in ROUTES:
        if r.method == method:
            m = r.regex.match(path)
            if m:
                return r, m.groupdict()
    return None


# ====================================================================== shared helpers

_MAX_METADATA_KEYS, _MAX_KEY, _MAX_VALUE = 50, 40, 500


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's metadata semantics: ``""`` clears everything, a key set to ``""`` is removed."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in update.items():
        if len(key) > _MAX_KEY:
            raise invalid(
                f"Metadata keys can have up to {_MAX_KEY} characters, but you passed in a key "
                f"that is {len(key)} characters. Invalid key: {key}",
                f"{param}[{key}]",
            )
        if value == "":
            merged.pop(key, None)
            continue
        if len(value) > _MAX_VALUE:
            raise invalid(
                f"Metadata values can have up to {_MAX_VALUE} characters, but you passed in a "
                f"value that is {len(value)} characters. Invalid value: {value}",
                f"{param}[{key}]",
            )
        merged[key] = value
    if len(merged) > _MAX_METADATA_KEYS:
        raise invalid(
            f"You can have up to {_MAX_METADATA_KEYS} metadata keys, but you passed {len(merged)}.",
            param,
        )
    return merged


def unsupported(p: dict[str, Any], *names: str) -> None:
    """Reject parameters the API accepts but the emulator does not model (money would differ)."""
    for name in names:
        head, _, sub = name.partition(".")
        value = p.get(head)
        if sub and isinstance(value, dict):
            value = value.get(sub)
        if value in (None, "", [], {}, False):
            continue
        raise StripeAPIError(
            400,
            f"The Stripe emulator does not support `{name.replace('.', '[')}"
            f"{']' if sub else ''}`; remove it or test against Stripe test mode.",
            code="emulator_unsupported_parameter",
            param=name,
        )


def _expand(p: dict[str, Any]) -> list[str]:
    return list(p.get("expand", []))


def _nullable(value: Any) -> Any:
    return None if value == "" else value


def _changed(obj: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Apply ``updates`` to ``obj``; return Stripe's ``previous_attributes`` for what changed."""
    previous: dict[str, Any] = {}
    for key, value in updates.items():
        if obj.get(key) != value:
            previous[key] = obj.get(key)
            obj[key] = value
    return previous


_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def _address(value: Any) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    return {k: value.get(k) for k in _ADDRESS_KEYS}


def _shipping(value: Any) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    return {
        "address": _address(value.get("address") or {}),
        "name": value.get("name"),
        "phone": value.get("phone"),
    }


# ====================================================================== test cards


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    outcome: str  # succeeded | declined | requires_action
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


_DECLINED = "Your card was declined."
TEST_CARDS = {
    "pm_card_visa": TestCard("visa", "4242", "succeeded"),
    "pm_card_mastercard": TestCard("mastercard", "4444", "succeeded"),
    "pm_card_amex": TestCard("amex", "8431", "succeeded"),
    "pm_card_visa_debit": TestCard("visa", "5556", "succeeded"),
    "pm_card_chargeDeclined": TestCard(
        "visa", "0002", "declined", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_visa_chargeDeclined": TestCard(
        "visa", "0341", "declined", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa",
        "9995",
        "declined",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", "declined", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard(
        "visa",
        "0127",
        "declined",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa",
        "0119",
        "declined",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_authenticationRequired": TestCard("visa", "3184", "requires_action"),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", "requires_action"),
}
# A card the customer "uses" on the hosted invoice page in the test actions.
_HOSTED_PAGE_CARD = "pm_card_visa"


def _payment_method(pm: Any, param: str = "payment_method") -> str | None:
    if pm in (None, ""):
        return None
    if pm not in TEST_CARDS:
        raise invalid(f"No such PaymentMethod: '{pm}'", param, "resource_missing", status=404)
    return pm


# ====================================================================== customers


def _customer_fields(state: State, p: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "cash_balance", "source", "tax", "tax_id_data", "test_clock", "default_source")
    updates: dict[str, Any] = {}
    for key in ("description", "email", "name", "phone", "business_name", "individual_name"):
        if key in p:
            updates[key] = _nullable(p[key])
    if "address" in p:
        updates["address"] = _address(p["address"])
    if "shipping" in p:
        updates["shipping"] = _shipping(p["shipping"])
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
            settings["default_payment_method"] = _payment_method(
                given["default_payment_method"], "invoice_settings[default_payment_method]"
            )
        for key in ("custom_fields", "footer", "rendering_options"):
            if key in given:
                settings[key] = _nullable(given[key])
        updates["invoice_settings"] = settings
    if "metadata" in p:
        updates["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    return updates


@route("POST", "/v1/customers", "CustomerCreateParams")
def create_customer(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
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
    _payment_method(p.get("payment_method"))
    obj.update(_customer_fields(state, p, obj))
    state.add(obj)
    state.emit("customer.created", obj["id"], ctx)
    return state.render(obj["id"], _expand(p))


@route("GET", "/v1/customers/search", "CustomerSearchParams")
def search_customers(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return _search(
        state,
        p,
        "customer",
        "customers",
        frozenset({"created", "email", "metadata", "name", "phone"}),
    )


@route("GET", "/v1/customers/{id}", "CustomerRetrieveParams")
def retrieve_customer(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    if state.is_deleted("customer", id):
        return {"id": id, "object": "customer", "deleted": True}
    state.get("customer", id)
    return state.render(id, _expand(p))


@route("POST", "/v1/customers/{id}", "CustomerUpdateParams")
def update_customer(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    obj = state.get("customer", id)
    previous = _changed(obj, _customer_fields(state, p, obj))
    if previous:
        state.emit("customer.updated", id, ctx, previous)
    return state.render(id, _expand(p))


@route("DELETE", "/v1/customers/{id}", "CustomerDeleteParams")
def delete_customer(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("customer", id)
    state.emit("customer.deleted", id, ctx)
    state.remove(id)
    return {"id": id, "object": "customer", "deleted": True}


@route("GET", "/v1/customers", "CustomerListParams")
def list_customers(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "test_clock")
    email = p.get("email")
    ids = state.ids_of("customer", lambda o: email is None or o["email"] == email)
    return state.list_response(ids, p, "/v1/customers")


def _search(
    state: State, p: dict[str, Any], kind: str, resource: str, fields: frozenset[str]
) -> dict[str, Any]:
    query = search.parse(p["query"], fields, resource)
    limit = p.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"This value must be between 1 and 100 (it currently is '{limit}').", "limit")
    offset = 0
    if "page" in p:
        token = p["page"]
        if not re.fullmatch(r"page_\d+", token):
            raise invalid(f"Invalid page: {token}", "page")
        offset = int(token[5:])
    ids = [
        i
        for i in state.ids_of(kind)
        if state.visible_to_search(i) and search.matches(query, state.objects[i])
    ]
    page = ids[offset : offset + limit]
    has_more = offset + limit < len(ids)
    out: dict[str, Any] = {
        "object": "search_result",
        "data": [state.render(i) for i in page],
        "has_more": has_more,
        "next_page": f"page_{offset + limit}" if has_more else None,
        "url": f"/v1/{resource}/search",
    }
    for path in _expand(p):
        if path == "total_count":
            out["total_count"] = len(ids)
        else:
            state.expand_into(out, path)
    return out


# ====================================================================== products and prices


def _product(state: State, name: str, p: dict[str, Any] | None = None, hidden: bool = False) -> str:
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
        "metadata": merge_metadata({}, p.get("metadata", {})),
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


def _price(
    state: State,
    *,
    currency: str,
    product: str,
    unit_amount_decimal: Decimal,
    metadata: dict[str, str] | None = None,
    nickname: str | None = None,
    lookup_key: str | None = None,
    active: bool = False,
    tax_behavior: str = "unspecified",
    hidden: bool = True,
) -> str:
    integral = unit_amount_decimal == unit_amount_decimal.to_integral_value()
    unit_amount = int(unit_amount_decimal) if integral else None
    obj = {
        "id": state.new_id("price"),
        "object": "price",
        "active": active,
        "billing_scheme": "per_unit",
        "created": state.now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": lookup_key,
        "metadata": metadata or {},
        "nickname": nickname,
        "product": product,
        "recurring": None,
        "tax_behavior": tax_behavior,
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": _decimal_str(unit_amount_decimal),
    }
    state.add(obj, hidden=hidden)
    return obj["id"]


def _decimal_str(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def _price_data_plan(
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
            else _product(state, data["product_data"]["name"], data["product_data"], hidden=True)
        )
        return _price(
            state,
            currency=cur,
            product=made,
            unit_amount_decimal=unit,
            tax_behavior=data.get("tax_behavior", "unspecified"),
        )

    return cur, make


@route("POST", "/v1/products", "ProductCreateParams")
def create_product(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "default_price_data", "tax_details")
    pid = _product(state, p["name"], p)
    state.emit("product.created", pid, ctx)
    return state.render(pid, _expand(p))


@route("GET", "/v1/products/{id}", "ProductRetrieveParams")
def retrieve_product(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("product", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/products", "ProductListParams")
def list_products(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    active = p.get("active")
    ids = state.ids_of("product", lambda o: active is None or o["active"] == active)
    return state.list_response(ids, p, "/v1/products")


@route("POST", "/v1/prices", "PriceCreateParams")
def create_price(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(
        p,
        "recurring",
        "tiers",
        "tiers_mode",
        "transform_quantity",
        "custom_unit_amount",
        "currency_options",
    )
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
    price_id = _price_data_plan(state, data, "price")[1]()
    price = state.objects[price_id]
    state.hidden.discard(price_id)
    price.update(
        active=p.get("active", True),
        metadata=merge_metadata({}, p.get("metadata", {})),
        nickname=p.get("nickname"),
        lookup_key=p.get("lookup_key"),
    )
    state.emit("price.created", price_id, ctx)
    return state.render(price_id, _expand(p))


@route("GET", "/v1/prices/{id}", "PriceRetrieveParams")
def retrieve_price(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    state.get("price", id)
    return state.render(id, _expand(p))


# ====================================================================== invoice items


def _item_pricing(
    state: State,
    p: dict[str, Any],
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

    unsupported(p, "discounts", "tax_rates", "tax_amounts", "tax_code")
    if "quantity" in p and "quantity_decimal" in p:
        raise exclusive(name("quantity"), name("quantity_decimal"))
    if "quantity_decimal" in p:
        quantity = Decimal(p["quantity_decimal"])
    else:
        quantity = Decimal(p.get("quantity", 1))
    if quantity < 0:
        raise invalid("This value must be greater than or equal to 0.", name("quantity"))
    sources = [k for k in ("amount", "unit_amount_decimal", "price_data", "pricing") if k in p]
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
            product = _product(state, description, hidden=True)
            return _price(state, currency=price_cur, product=product, unit_amount_decimal=unit)

    elif source == "price_data":
        price_cur, make = _price_data_plan(state, p["price_data"], name("price_data"))
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
        "quantity_decimal": _decimal_str(quantity),
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "net_amount": amount,
    }


def _period(p: dict[str, Any], now: int, param: str = "period") -> dict[str, int]:
    if "period" not in p:
        return {"end": now, "start": now}
    period = p["period"]
    if period["end"] < period["start"]:
        raise invalid("The period end must be greater than or equal to the start.", f"{param}[end]")
    return {"end": period["end"], "start": period["start"]}


def _draft_invoice(state: State, invoice_id: str, param: str = "invoice") -> dict[str, Any]:
    inv = state.get("invoice", invoice_id, param)
    if inv["status"] != "draft":
        raise not_editable(
            f"Invoice {invoice_id} is no longer a draft: it can no longer be edited. Instead, "
            "consider creating additional invoice items that will be applied to the next invoice.",
            param,
        )
    return inv


def _new_item(
    state: State,
    ctx: RequestContext,
    p: dict[str, Any],
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
    metadata = merge_metadata({}, p.get("metadata", {}))
    now = state.now()
    period = _period(p, now)
    priced = _item_pricing(state, p, cur, param_prefix, dry_run=dry_run)
    if dry_run:
        return None
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
    state.line_of_item[item["id"]] = line_id = state.new_id("il")
    state.item_of_line[line_id] = item["id"]
    if invoice is not None:
        state.invoice_items[invoice["id"]].append(item["id"])
        _recompute(state, invoice)
    state.emit("invoiceitem.created", item["id"], ctx)
    return item


@route("POST", "/v1/invoiceitems", "InvoiceItemCreateParams")
def create_invoice_item(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    if "customer" not in p:
        unsupported(p, "customer_account")
        raise missing_param("customer")
    customer = state.get("customer", p["customer"], "customer")
    invoice = None
    if "invoice" in p:
        invoice = _draft_invoice(state, p["invoice"])
        if invoice["customer"] != customer["id"]:
            raise invalid(
                f"The invoice {invoice['id']} belongs to customer {invoice['customer']}, not to "
                f"{customer['id']}.",
                "invoice",
            )
    item = _new_item(state, ctx, p, customer=customer, invoice=invoice)
    assert item is not None
    return state.render(item["id"], _expand(p))


@route("GET", "/v1/invoiceitems/{id}", "InvoiceItemRetrieveParams")
def retrieve_invoice_item(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("invoiceitem", id)
    return state.render(id, _expand(p))


def _editable_item(state: State, item_id: str, param: str = "id") -> dict[str, Any]:
    item = state.get("invoiceitem", item_id, param)
    if item["invoice"] is not None:
        _draft_invoice(state, item["invoice"])
    return item


def _update_item(
    state: State,
    ctx: RequestContext,
    item: dict[str, Any],
    p: dict[str, Any],
    prefix: str = "",
    dry_run: bool = False,
) -> None:
    """Update an invoice item (``dry_run``: only run every check, change nothing)."""
    unsupported(p, "discounts", "tax_rates", "tax_amounts", "tax_code")
    updates: dict[str, Any] = {}
    if "description" in p:
        updates["description"] = p["description"]
    if "discountable" in p:
        updates["discountable"] = p["discountable"]
    if "period" in p:
        updates["period"] = _period(p, state.now())
    if "metadata" in p:
        updates["metadata"] = merge_metadata(item["metadata"], p["metadata"])
    sources = ("amount", "unit_amount_decimal", "price_data", "pricing")
    changes = {k: p[k] for k in (*sources, "quantity", "quantity_decimal") if k in p}
    if changes:
        if not any(k in changes for k in sources):  # a new quantity of the same price
            changes["pricing"] = {"price": item["pricing"]["price_details"]["price"]}
        if "description" in p:
            changes["description"] = p["description"]
        updates.update(_item_pricing(state, changes, item["currency"], prefix, dry_run=dry_run))
    if dry_run:
        return
    previous = _changed(item, updates)
    if item["invoice"]:
        _recompute(state, state.objects[item["invoice"]])
    if previous:
        state.emit("invoiceitem.updated", item["id"], ctx, previous)


@route("POST", "/v1/invoiceitems/{id}", "InvoiceItemUpdateParams")
def update_invoice_item(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    item = _editable_item(state, id)
    _update_item(state, ctx, item, p)
    return state.render(id, _expand(p))


def _delete_item(state: State, ctx: RequestContext, item: dict[str, Any]) -> None:
    state.emit("invoiceitem.deleted", item["id"], ctx)
    if item["invoice"]:
        state.invoice_items[item["invoice"]].remove(item["id"])
        _recompute(state, state.objects[item["invoice"]])
    state.remove(item["id"])


@route("DELETE", "/v1/invoiceitems/{id}", "InvoiceItemDeleteParams")
def delete_invoice_item(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    _delete_item(state, ctx, _editable_item(state, id))
    return {"id": id, "object": "invoiceitem", "deleted": True}


@route("GET", "/v1/invoiceitems", "InvoiceItemListParams")
def list_invoice_items(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any]) -> bool:
        return (
            ("customer" not in p or o["customer"] == p["customer"])
            and ("invoice" not in p or o["invoice"] == p["invoice"])
            and ("pending" not in p or (o["invoice"] is None) == p["pending"])
        )

    return state.list_response(state.ids_of("invoiceitem", keep), p, "/v1/invoiceitems")


# ====================================================================== invoices

_DAY = 86400
_DEFAULT_DAYS_UNTIL_DUE = 30  # Stripe's account-level default for send_invoice
_AUTO_FINALIZE_DELAY = 3600  # Stripe finalizes auto_advance drafts about an hour after creation
_RETRY_DELAY = 3 * _DAY
_MAX_ATTEMPTS = 4


def _render_line(state: State, item_id: str) -> dict[str, Any]:
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
        "taxes": [],
    }


def _render_invoice(state: State, obj: dict[str, Any]) -> None:
    items = state.invoice_items.get(obj["id"], [])
    obj["lines"] = {
        "object": "list",
        "data": [_render_line(state, i) for i in items[:10]],
        "has_more": len(items) > 10,
        "url": f"/v1/invoices/{obj['id']}/lines",
    }


def _invoice_payments_list(state: State, inv: dict[str, Any]) -> dict[str, Any]:
    ids = list(reversed(state.invoice_payments.get(inv["id"], [])))
    return {
        "object": "list",
        "data": [state.render(i) for i in ids],
        "has_more": False,
        "url": f"/v1/invoice_payments?invoice={inv['id']}",
    }


def _confirmation_secret(state: State, inv: dict[str, Any]) -> dict[str, Any] | None:
    for pay_id in state.invoice_payments.get(inv["id"], []):
        pi_id = state.objects[pay_id]["payment"].get("payment_intent")
        if pi_id:
            secret = state.objects[pi_id]["client_secret"]
            return {"client_secret": secret, "type": "payment_intent"}
    return None


def _render_charge(state: State, obj: dict[str, Any]) -> None:
    refunds = list(reversed(state.charge_refunds.get(obj["id"], [])))
    obj["refunds"] = {
        "object": "list",
        "data": [state.render(r) for r in refunds],
        "has_more": False,
        "url": f"/v1/charges/{obj['id']}/refunds",
    }


def _render_credit_note(state: State, obj: dict[str, Any]) -> None:
    lines = state.credit_note_lines.get(obj["id"], [])
    obj["lines"] = {
        "object": "list",
        "data": [dict(line) for line in lines[:10]],
        "has_more": len(lines) > 10,
        "url": f"/v1/credit_notes/{obj['id']}/lines",
    }


RENDERERS.update(invoice=_render_invoice, charge=_render_charge, credit_note=_render_credit_note)
EXPANDABLE.update(
    invoice={
        "customer": None,
        "payments": _invoice_payments_list,
        "confirmation_secret": _confirmation_secret,
        "lines.data.pricing.price_details.price": None,
    },
    invoiceitem={"customer": None, "invoice": None, "pricing.price_details.price": None},
    line_item={"pricing.price_details.price": None},
    charge={"customer": None, "payment_intent": None, "refunds.data.charge": None},
    refund={"charge": None, "payment_intent": None},
    payment_intent={"customer": None, "latest_charge": None},
    invoice_payment={"invoice": None, "payment.payment_intent": None, "payment.charge": None},
    credit_note={"customer": None, "invoice": None},
    price={"product": None},
    event={},
    customer={},
    product={},
    webhook_endpoint={},
)


def _recompute(state: State, inv: dict[str, Any]) -> None:
    """Derive the invoice's money fields from its lines and its state."""
    total = sum(state.objects[i]["amount"] for i in state.invoice_items[inv["id"]])
    inv.update(subtotal=total, subtotal_excluding_tax=total, total=total, total_excluding_tax=total)
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


def _invoice_fields(
    state: State, p: dict[str, Any], inv: dict[str, Any], creating: bool
) -> dict[str, Any]:
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
            if p["due_date"] < now - _DAY:
                raise invalid("The due_date must be in the future.", "due_date")
            updates["due_date"], days = p["due_date"], None
        elif "days_until_due" in p or inv.get("due_date") is None:
            days = p.get("days_until_due", _DEFAULT_DAYS_UNTIL_DUE)
            if days < 0:
                raise invalid("This value must be greater than or equal to 0.", "days_until_due")
            start = inv["status_transitions"]["finalized_at"] or inv["created"]
            updates["due_date"] = start + days * _DAY
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
            inv["created"] + _AUTO_FINALIZE_DELAY if auto_advance else None
        )
    for key in ("description", "footer", "statement_descriptor", "number"):
        if key in p:
            updates[key] = _nullable(p[key])
    if "custom_fields" in p:
        updates["custom_fields"] = _nullable(p["custom_fields"]) or None
    if "effective_at" in p:
        updates["effective_at"] = _nullable(p["effective_at"])
    if "default_payment_method" in p:
        updates["default_payment_method"] = _payment_method(
            p["default_payment_method"], "default_payment_method"
        )
    if "metadata" in p:
        updates["metadata"] = merge_metadata(inv["metadata"], p["metadata"])
    if days is None:
        state.invoice_days_until_due.pop(inv["id"], None)
    else:
        state.invoice_days_until_due[inv["id"]] = days
    return updates


@route("POST", "/v1/invoices", "InvoiceCreateParams")
def create_invoice(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    if "customer" not in p:
        unsupported(p, "customer_account")
        raise missing_param("customer")
    customer = state.get("customer", p["customer"], "customer")
    cur = (
        check_currency(p["currency"])
        if "currency" in p
        else (customer["currency"] or state.default_currency)
    )
    now = state.now()
    inv: dict[str, Any] = {
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
    _recompute(state, inv)
    state.emit("invoice.created", inv["id"], ctx)
    return state.render(inv["id"], _expand(p))


@route("GET", "/v1/invoices/search", "InvoiceSearchParams")
def search_invoices(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    return _search(
        state,
        p,
        "invoice",
        "invoices",
        frozenset(
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
            }
        ),
    )


@route("GET", "/v1/invoices/{id}", "InvoiceRetrieveParams")
def retrieve_invoice(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("invoice", id)
    return state.render(id, _expand(p))


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
def update_invoice(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = state.get("invoice", id)
    if inv["status"] != "draft":
        allowed = {"metadata", "expand"} if inv["status"] == "void" else _EDITABLE_WHEN_FINALIZED
        if inv["status"] != "open":
            allowed = allowed - {"due_date", "days_until_due", "auto_advance"}
        locked = sorted(set(p) - allowed)
        if locked:
            raise not_editable("Finalized invoices can't be updated in this way", locked[0])
    previous = _changed(inv, _invoice_fields(state, p, inv, creating=False))
    _recompute(state, inv)
    if previous:
        state.emit("invoice.updated", id, ctx, previous)
    return state.render(id, _expand(p))


@route("DELETE", "/v1/invoices/{id}", "InvoiceDeleteParams")
def delete_invoice(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = state.get("invoice", id)
    if inv["status"] != "draft":
        raise invalid("You can only delete draft invoices.", "invoice")
    state.emit("invoice.deleted", id, ctx)
    for item_id in list(state.invoice_items.pop(id, [])):
        state.remove(item_id)
    state.remove(id)
    return {"id": id, "object": "invoice", "deleted": True}


@route("GET", "/v1/invoices", "InvoiceListParams")
def list_invoices(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "customer_account")

    def keep(o: dict[str, Any]) -> bool:
        due = p.get("due_date")
        return (
            ("customer" not in p or o["customer"] == p["customer"])
            and ("status" not in p or o["status"] == p["status"])
            and ("collection_method" not in p or o["collection_method"] == p["collection_method"])
            and ("subscription" not in p or o["subscription"] == p["subscription"])
            and (due is None or (o["due_date"] is not None and created_matches(o["due_date"], due)))
        )

    return state.list_response(state.ids_of("invoice", keep), p, "/v1/invoices")


# ---------------------------------------------------------------------- lines


def _invoice_metadata(inv: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The ``invoice_metadata`` update of the line endpoints, checked before anything changes."""
    if "invoice_metadata" not in p:
        return {}
    return {"metadata": merge_metadata(inv["metadata"], p["invoice_metadata"], "invoice_metadata")}


def _lines_done(
    state: State, ctx: RequestContext, inv: dict[str, Any], updates: dict[str, Any]
) -> None:
    previous = _changed(inv, updates)
    _recompute(state, inv)
    state.emit("invoice.updated", inv["id"], ctx, previous)


# The line endpoints change several lines in one request. As on Stripe, a request that fails
# changes nothing: a first pass runs every check (dry run), the second applies.


@route("POST", "/v1/invoices/{id}/add_lines", "InvoiceAddLinesParams")
def add_lines(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = _draft_invoice(state, id, "invoice")
    customer = state.get("customer", inv["customer"], "customer")
    updates = _invoice_metadata(inv, p)
    for dry_run in (True, False):
        attaching: set[str] = set()
        for n, line in enumerate(p["lines"]):
            prefix = f"lines[{n}]"
            if "invoice_item" not in line:
                _new_item(
                    state,
                    ctx,
                    line,
                    customer=customer,
                    invoice=inv,
                    param_prefix=prefix,
                    dry_run=dry_run,
                )
                continue
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
                    f"The invoice item {item['id']} must belong to the invoice's customer and "
                    "currency.",
                    f"{prefix}[invoice_item]",
                )
            attaching.add(item["id"])
            if not dry_run:
                item["invoice"] = id
                state.invoice_items[id].append(item["id"])
    _lines_done(state, ctx, inv, updates)
    return state.render(id, _expand(p))


def _line_item(state: State, invoice_id: str, line_id: Any, param: str) -> dict[str, Any]:
    item_id = state.item_of_line.get(line_id) if isinstance(line_id, str) else None
    if item_id is None or state.objects.get(item_id, {}).get("invoice") != invoice_id:
        raise no_such("line item", str(line_id), param)
    return state.objects[item_id]


def _distinct_lines(
    state: State, invoice_id: str, lines: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        item = _line_item(state, invoice_id, line["id"], f"lines[{n}][id]")
        if item in items:
            raise invalid(f"The line {line['id']} appears more than once.", f"lines[{n}][id]")
        items.append(item)
    return items


@route("POST", "/v1/invoices/{id}/remove_lines", "InvoiceRemoveLinesParams")
def remove_lines(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = _draft_invoice(state, id, "invoice")
    updates = _invoice_metadata(inv, p)
    items = _distinct_lines(state, id, p["lines"])
    for line, item in zip(p["lines"], items, strict=True):
        if line["behavior"] == "delete":
            _delete_item(state, ctx, item)
        else:
            state.invoice_items[id].remove(item["id"])
            item["invoice"] = None
    _lines_done(state, ctx, inv, updates)
    return state.render(id, _expand(p))


@route("POST", "/v1/invoices/{id}/update_lines", "InvoiceUpdateLinesParams")
def update_lines(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = _draft_invoice(state, id, "invoice")
    updates = _invoice_metadata(inv, p)
    items = _distinct_lines(state, id, p["lines"])
    for dry_run in (True, False):
        for n, (line, item) in enumerate(zip(p["lines"], items, strict=True)):
            changes = {k: v for k, v in line.items() if k != "id"}
            _update_item(state, ctx, item, changes, f"lines[{n}]", dry_run=dry_run)
    _lines_done(state, ctx, inv, updates)
    return state.render(id, _expand(p))


@route("GET", "/v1/invoices/{id}/lines", "InvoiceLineItemListParams")
def list_lines(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    state.get("invoice", id, "invoice")
    items = state.invoice_items.get(id, [])
    line_ids = [state.line_of_item[i] for i in items]
    return state.list_response(
        line_ids,
        p,
        f"/v1/invoices/{id}/lines",
        render=lambda lid: _render_line(state, state.item_of_line[lid]),
    )


@route("POST", "/v1/invoices/{id}/lines/{line}", "InvoiceLineItemUpdateParams")
def update_line(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str, line: str
) -> dict[str, Any]:
    _draft_invoice(state, id, "invoice")
    item = _line_item(state, id, line, "line_item_id")
    _update_item(state, ctx, item, {k: v for k, v in p.items() if k != "expand"})
    out = _render_line(state, item["id"])
    for path in _expand(p):
        state.expand_into(out, path)
    return out


# ---------------------------------------------------------------------- lifecycle


def finalize(state: State, ctx: RequestContext | None, inv: dict[str, Any]) -> None:
    if inv["status"] != "draft":
        raise invalid(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            "invoice",
        )
    now = state.now()
    customer = state.objects.get(inv["customer"])
    if customer is None:
        raise no_such("customer", inv["customer"], "customer")
    if inv["number"] is None:
        inv["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
        customer["next_invoice_sequence"] += 1
    _recompute(state, inv)  # copies the customer's details one last time
    total = inv["total"]
    balance = customer["balance"]
    inv["starting_balance"] = balance
    inv["ending_balance"] = min(0, total + balance)
    customer["balance"] = inv["ending_balance"]
    token = state.token(40)
    base = state.base_url or "http://127.0.0.1"
    inv.update(
        status="open",
        effective_at=inv["effective_at"] or now,
        hosted_invoice_url=f"{base}/_emulator/invoices/{inv['id']}/hosted?token={token}",
        invoice_pdf=f"{base}/_emulator/invoices/{inv['id']}/hosted?token={token}&format=pdf",
        automatically_finalizes_at=None,
        webhooks_delivered_at=now,
    )
    inv["status_transitions"]["finalized_at"] = now
    days = state.invoice_days_until_due.get(inv["id"])
    if inv["collection_method"] == "send_invoice" and days is not None:
        inv["due_date"] = now + days * _DAY
    if inv["collection_method"] == "charge_automatically" and inv["auto_advance"]:
        inv["next_payment_attempt"] = now + _AUTO_FINALIZE_DELAY
    _recompute(state, inv)
    below_minimum = 0 < inv["amount_due"] < minimum_charge(inv["currency"])
    if below_minimum:
        # Stripe cannot charge less than the currency's minimum: it marks the invoice paid and
        # carries the amount to the customer's balance, to be added to the next invoice.
        inv["ending_balance"] = inv["amount_due"]
        customer["balance"] += inv["amount_due"]
        inv["amount_remaining"] = 0
    elif inv["amount_due"] > 0:
        _open_payment(state, inv)
    state.emit("invoice.finalized", inv["id"], ctx)
    if inv["amount_remaining"] == 0:
        # Zero-amount (and below-minimum) invoices are marked paid as they finalize.
        _settle(state, ctx, inv, off_stripe=0)


@route("POST", "/v1/invoices/{id}/finalize", "InvoiceFinalizeInvoiceParams")
def finalize_invoice(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    inv = state.get("invoice", id)
    if "auto_advance" in p and inv["status"] == "draft":
        inv["auto_advance"] = p["auto_advance"]
    finalize(state, ctx, inv)
    return state.render(id, _expand(p))


@route("POST", "/v1/invoices/{id}/send", "InvoiceSendInvoiceParams")
def send_invoice(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = state.get("invoice", id)
    if inv["status"] == "void":
        raise invalid("You cannot send a voided invoice.", "invoice")
    if inv["collection_method"] != "send_invoice":
        raise invalid(
            "You can only manually send an invoice if its collection method is 'send_invoice'.",
            "invoice",
        )
    if inv["status"] == "draft":
        finalize(state, ctx, inv)
    state.emit("invoice.sent", id, ctx)
    return state.render(id, _expand(p))


@route("POST", "/v1/invoices/{id}/void", "InvoiceVoidInvoiceParams")
def void_invoice(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    inv = state.get("invoice", id)
    void(state, ctx, inv)
    return state.render(id, _expand(p))


def void(state: State, ctx: RequestContext | None, inv: dict[str, Any]) -> None:
    if inv["status"] == "draft":
        raise invalid(
            "You can only void open or uncollectible invoices; delete a draft invoice instead.",
            "invoice",
        )
    if inv["status"] not in ("open", "uncollectible"):
        raise invalid(f"You cannot void an invoice whose status is {inv['status']}.", "invoice")
    now = state.now()
    inv["status"] = "void"
    inv["status_transitions"]["voided_at"] = now
    inv["next_payment_attempt"] = None
    _cancel_open_payments(state, inv, "void_invoice")
    _recompute(state, inv)
    state.emit("invoice.voided", inv["id"], ctx)


@route("POST", "/v1/invoices/{id}/mark_uncollectible", "InvoiceMarkUncollectibleParams")
def mark_uncollectible(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    inv = state.get("invoice", id)
    if inv["status"] != "open":
        raise invalid(
            f"You can only mark an open invoice as uncollectible; this invoice is {inv['status']}.",
            "invoice",
        )
    inv["status"] = "uncollectible"
    inv["status_transitions"]["marked_uncollectible_at"] = state.now()
    inv["next_payment_attempt"] = None
    state.emit("invoice.marked_uncollectible", id, ctx)
    return state.render(id, _expand(p))


@route("POST", "/v1/invoices/{id}/pay", "InvoicePayParams")
def pay_invoice(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    unsupported(p, "source", "mandate")
    inv = state.get("invoice", id)
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid", "invoice")
    if inv["status"] == "void":
        raise invalid("This invoice has been voided and can no longer be paid.", "invoice")
    if "payment_method" in p and p.get("paid_out_of_band"):
        raise exclusive("paid_out_of_band", "payment_method")
    pm = _payment_method(p.get("payment_method"))
    if inv["status"] == "draft":
        finalize(state, ctx, inv)
        if inv["status"] == "paid":
            return state.render(id, _expand(p))
    if p.get("paid_out_of_band"):
        _cancel_open_payments(state, inv, "automatic")
        _settle(state, ctx, inv, off_stripe=inv["amount_remaining"])
        return state.render(id, _expand(p))
    pm = pm or inv["default_payment_method"] or _customer_default_pm(state, inv)
    if pm is None:
        raise invalid(
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method. For more information, visit "
            "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
            "#payment-method-priority.",
            "payment_method",
        )
    charge_invoice(state, ctx, inv, pm)
    return state.render(id, _expand(p))


def _customer_default_pm(state: State, inv: dict[str, Any]) -> str | None:
    customer = state.objects.get(inv["customer"])
    return customer["invoice_settings"]["default_payment_method"] if customer else None


# ---------------------------------------------------------------------- payments

_CARD_CHECKS = {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"}


def _open_payment(state: State, inv: dict[str, Any]) -> dict[str, Any]:
    """The invoice's default PaymentIntent and its invoice_payment record (created at finalize)."""
    for pay_id in state.invoice_payments.get(inv["id"], []):
        record = state.objects[pay_id]
        if record["status"] == "open":
            return state.objects[record["payment"]["payment_intent"]]
    now = state.now()
    pi_id = state.new_id("pi")
    pi = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": inv["amount_due"],
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{state.token(25)}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": inv["currency"],
        "customer": inv["customer"],
        "customer_account": None,
        "description": f"Payment for Invoice {inv['number']}",
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }
    state.add(pi)
    record = {
        "id": state.new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": inv["amount_due"],
        "created": now,
        "currency": inv["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }
    state.add(record)
    state.invoice_payments[inv["id"]].append(record["id"])
    return pi


def _cancel_open_payments(state: State, inv: dict[str, Any], reason: str) -> None:
    now = state.now()
    for pay_id in state.invoice_payments.get(inv["id"], []):
        record = state.objects[pay_id]
        if record["status"] != "open":
            continue
        record["status"] = "canceled"
        record["status_transitions"]["canceled_at"] = now
        pi = state.objects[record["payment"]["payment_intent"]]
        pi.update(status="canceled", canceled_at=now, cancellation_reason=reason)


def _new_charge(
    state: State, inv: dict[str, Any], pi: dict[str, Any], pm: str, card: TestCard, ok: bool
) -> dict[str, Any]:
    amount = inv["amount_remaining"]
    charge = {
        "id": state.new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if ok else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": state.new_id("txn") if ok else None,
        "billing_details": {
            "address": {k: None for k in _ADDRESS_KEYS},
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "calculated_statement_descriptor": "STRIPE EMULATOR",
        "captured": ok,
        "created": state.now(),
        "currency": inv["currency"],
        "customer": inv["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None if ok else card.code,
        "failure_message": None if ok else card.message,
        "fraud_details": {},
        "livemode": False,
        "metadata": {},
        "on_behalf_of": None,
        "outcome": {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network" if ok else "declined_by_network",
            "reason": None if ok else card.decline_code,
            "risk_level": "normal",
            "seller_message": "Payment complete."
            if ok
            else "The bank did not return any further details with this decline.",
            "type": "authorized" if ok else "issuer_declined",
        },
        "paid": ok,
        "payment_intent": pi["id"],
        "payment_method": pm,
        "payment_method_details": {
            "card": {
                "brand": card.brand,
                "checks": dict(_CARD_CHECKS),
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "fingerprint": "EmuLat0rF1ngerPr",
                "funding": "credit",
                "last4": card.last4,
                "network": card.brand,
                "three_d_secure": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": inv["hosted_invoice_url"],
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded" if ok else "failed",
        "transfer_data": None,
        "transfer_group": None,
    }
    state.add(charge)
    pi["latest_charge"] = charge["id"]
    pi["payment_method"] = pm
    return charge


def charge_invoice(state: State, ctx: RequestContext | None, inv: dict[str, Any], pm: str) -> None:
    """Attempt a card payment of the invoice's remaining amount with a test card."""
    card = TEST_CARDS[pm]
    pi = _open_payment(state, inv)
    pi["amount"] = inv["amount_remaining"]
    inv["attempted"] = True
    inv["attempt_count"] += 1
    if card.outcome == "succeeded":
        charge = _new_charge(state, inv, pi, pm, card, ok=True)
        pi.update(status="succeeded", amount_received=charge["amount"], last_payment_error=None)
        state.emit("charge.succeeded", charge["id"], ctx)
        state.emit("payment_intent.succeeded", pi["id"], ctx)
        _settle(state, ctx, inv, off_stripe=0)
        return
    retry = inv["auto_advance"] and inv["attempt_count"] < _MAX_ATTEMPTS
    inv["next_payment_attempt"] = state.now() + _RETRY_DELAY if retry else None
    if card.outcome == "requires_action":
        pi.update(
            status="requires_action",
            payment_method=pm,
            next_action={"type": "use_stripe_sdk", "use_stripe_sdk": {}},
        )
        state.emit("payment_intent.requires_action", pi["id"], ctx)
        state.emit("invoice.payment_action_required", inv["id"], ctx)
        raise StripeAPIError(
            402,
            "This payment requires additional user action before it can be completed "
            "successfully. Payment can be completed using the PaymentIntent associated with the "
            "invoice. For more details see: "
            "https://stripe.com/docs/billing/subscriptions/overview#requires-action",
            type="card_error",
            code="invoice_payment_intent_requires_action",
            extra={"payment_intent": state.render(pi["id"])},
        )
    charge = _new_charge(state, inv, pi, pm, card, ok=False)
    error = {
        "charge": charge["id"],
        "code": card.code,
        "decline_code": card.decline_code,
        "message": card.message,
        "type": "card_error",
    }
    pi.update(status="requires_payment_method", last_payment_error=error)
    state.emit("charge.failed", charge["id"], ctx)
    state.emit("payment_intent.payment_failed", pi["id"], ctx)
    state.emit("invoice.payment_failed", inv["id"], ctx)
    raise StripeAPIError(
        402,
        card.message or _DECLINED,
        type="card_error",
        code=card.code,
        extra={"charge": charge["id"], "decline_code": card.decline_code},
    )


def _settle(state: State, ctx: RequestContext | None, inv: dict[str, Any], off_stripe: int) -> None:
    """Mark an open/uncollectible invoice paid (the money is already accounted for)."""
    now = state.now()
    paid_now = inv["amount_remaining"]
    inv["amount_paid"] += paid_now
    inv["amount_paid_off_stripe"] += off_stripe
    inv["status"] = "paid"
    inv["status_transitions"]["paid_at"] = now
    inv["next_payment_attempt"] = None
    inv["attempted"] = inv["attempted"] or paid_now > 0
    _recompute(state, inv)
    for pay_id in state.invoice_payments.get(inv["id"], []):
        record = state.objects[pay_id]
        if record["status"] == "open":
            pi = state.objects[record["payment"]["payment_intent"]]
            if pi["status"] == "succeeded":
                record.update(status="paid", amount_paid=pi["amount_received"])
                record["status_transitions"]["paid_at"] = now
                state.emit("invoice_payment.paid", pay_id, ctx)
    state.emit("invoice.paid", inv["id"], ctx)
    if off_stripe == 0 and paid_now > 0:
        state.emit("invoice.payment_succeeded", inv["id"], ctx)


# ====================================================================== charges, intents, payments


@route("GET", "/v1/charges/{id}", "ChargeRetrieveParams")
def retrieve_charge(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("charge", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/charges", "ChargeListParams")
def list_charges(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any]) -> bool:
        return ("customer" not in p or o["customer"] == p["customer"]) and (
            "payment_intent" not in p or o["payment_intent"] == p["payment_intent"]
        )

    return state.list_response(state.ids_of("charge", keep), p, "/v1/charges")


@route("GET", "/v1/payment_intents/{id}", "PaymentIntentRetrieveParams")
def retrieve_payment_intent(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("payment_intent", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/invoice_payments/{id}", "InvoicePaymentRetrieveParams")
def retrieve_invoice_payment(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("invoice_payment", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/invoice_payments", "InvoicePaymentListParams")
def list_invoice_payments(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    payment = p.get("payment") or {}

    def keep(o: dict[str, Any]) -> bool:
        return (
            ("invoice" not in p or o["invoice"] == p["invoice"])
            and ("status" not in p or o["status"] == p["status"])
            and all(o["payment"].get(k) == v for k, v in payment.items())
        )

    return state.list_response(state.ids_of("invoice_payment", keep), p, "/v1/invoice_payments")


# ====================================================================== refunds


def refund_charge(
    state: State,
    ctx: RequestContext | None,
    charge: dict[str, Any],
    amount: int | None,
    *,
    reason: str | None = None,
    metadata: dict[str, str] | None = None,
    param: str = "amount",
) -> dict[str, Any]:
    if charge["status"] != "succeeded":
        raise invalid(f"Charge {charge['id']} has not succeeded and cannot be refunded.", "charge")
    remaining = charge["amount"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", "charge", "charge_already_refunded"
        )
    amount = remaining if amount is None else amount
    if amount <= 0:
        raise invalid("Refund amount must be greater than 0.", param)
    if amount > remaining:
        raise invalid(
            f"Refund amount ({display(amount, charge['currency'])}) is greater than unrefunded "
            f"amount on charge ({display(remaining, charge['currency'])})",
            param,
            "amount_too_large",
        )
    refund = {
        "id": state.new_id("re"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": state.new_id("txn"),
        "charge": charge["id"],
        "created": state.now(),
        "currency": charge["currency"],
        "customer": charge["customer"],
        "customer_account": None,
        "description": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": None,
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata or {},
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    state.add(refund)
    state.charge_refunds[charge["id"]].append(refund["id"])
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    state.emit("refund.created", refund["id"], ctx)
    state.emit("charge.refunded", charge["id"], ctx, previous)
    return refund


@route("POST", "/v1/refunds", "RefundCreateParams")
def create_refund(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(
        p,
        "origin",
        "customer",
        "instructions_email",
        "reverse_transfer",
        "refund_application_fee",
        "currency",
    )
    if "charge" in p and "payment_intent" in p:
        raise exclusive("charge", "payment_intent")
    if "charge" in p:
        charge = state.get("charge", p["charge"], "charge")
    elif "payment_intent" in p:
        pi = state.get("payment_intent", p["payment_intent"], "payment_intent")
        if pi["status"] != "succeeded" or pi["latest_charge"] is None:
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "payment_intent",
            )
        charge = state.objects[pi["latest_charge"]]
    else:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent or "
            "charge.",
        )
    refund = refund_charge(
        state,
        ctx,
        charge,
        p.get("amount"),
        reason=p.get("reason"),
        metadata=merge_metadata({}, p.get("metadata", {})),
    )
    return state.render(refund["id"], _expand(p))


@route("GET", "/v1/refunds/{id}", "RefundRetrieveParams")
def retrieve_refund(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("refund", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/refunds", "RefundListParams")
def list_refunds(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any]) -> bool:
        return ("charge" not in p or o["charge"] == p["charge"]) and (
            "payment_intent" not in p or o["payment_intent"] == p["payment_intent"]
        )

    return state.list_response(state.ids_of("refund", keep), p, "/v1/refunds")


# ====================================================================== credit notes


@route("POST", "/v1/credit_notes", "CreditNoteCreateParams")
def create_credit_note(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    unsupported(p, "refunds", "shipping_cost")
    inv = state.get("invoice", p["invoice"], "invoice")
    if inv["status"] not in ("open", "paid"):
        raise invalid(
            f"You can only create credit notes for open or paid invoices; this invoice is "
            f"{inv['status']}.",
            "invoice",
        )
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(p.get("lines", [])):
        lines.append(_credit_line(state, inv, line, f"lines[{n}]"))
    lines_total = sum(line["amount"] for line in lines)
    if "amount" in p and lines and p["amount"] != lines_total:
        raise invalid(
            f"The amount ({p['amount']}) must equal the sum of the line amounts ({lines_total}).",
            "amount",
        )
    amount = p.get("amount", lines_total)
    refund_amount = p.get("refund_amount", 0)
    credit_amount = p.get("credit_amount", 0)
    out_of_band = p.get("out_of_band_amount", 0)
    if not lines and "amount" not in p:
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
    refunds: list[dict[str, Any]] = []
    if refund_amount:
        charges = _invoice_charges(state, inv)
        if not charges:
            raise invalid(
                "This invoice was not paid with a charge that can be refunded; use "
                "out_of_band_amount or credit_amount instead.",
                "refund_amount",
            )
        refund = refund_charge(state, ctx, charges[0], refund_amount, param="refund_amount")
        refunds.append(
            {
                "amount_refunded": refund_amount,
                "payment_record_refund": None,
                "refund": refund["id"],
                "type": "refund",
            }
        )
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
        "metadata": merge_metadata({}, p.get("metadata", {})),
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
        "type": note_type,
        "voided_at": None,
    }
    state.add(note)
    for line in lines:
        line["id"] = state.new_id("cnli")
    state.credit_note_lines[note["id"]] = lines
    if note_type == "pre_payment":
        inv["pre_payment_credit_notes_amount"] += amount
        _recompute(state, inv)
    else:
        inv["post_payment_credit_notes_amount"] += amount
    state.emit("credit_note.created", note["id"], ctx)
    if note_type == "pre_payment" and inv["amount_remaining"] == 0:
        _cancel_open_payments(state, inv, "automatic")
        _settle(state, ctx, inv, off_stripe=0)
    return state.render(note["id"], _expand(p))


def _credit_line(
    state: State, inv: dict[str, Any], line: dict[str, Any], param: str
) -> dict[str, Any]:
    unsupported(line, "tax_amounts", "tax_rates")
    quantity = line.get("quantity", 1)
    if line["type"] == "invoice_line_item":
        if "invoice_line_item" not in line:
            raise missing_param(f"{param}[invoice_line_item]")
        item = _line_item(
            state, inv["id"], line["invoice_line_item"], f"{param}[invoice_line_item]"
        )
        if "amount" in line:
            amount = line["amount"]
        elif "quantity" in line:
            amount = round_minor(Decimal(item["pricing"]["unit_amount_decimal"]) * quantity)
        else:
            amount = item["amount"]
        if amount > item["amount"]:
            raise invalid(
                "The credit note line amount cannot be greater than the invoice line amount.",
                f"{param}[amount]",
            )
        return {
            "object": "credit_note_line_item",
            "amount": amount,
            "description": line.get("description", item["description"]),
            "discount_amount": 0,
            "discount_amounts": [],
            "invoice_line_item": state.line_of_item[item["id"]],
            "livemode": False,
            "metadata": line.get("metadata"),
            "pretax_credit_amounts": [],
            "quantity": quantity,
            "tax_rates": [],
            "taxes": [],
            "type": "invoice_line_item",
            "unit_amount": None,
            "unit_amount_decimal": None,
        }
    if "unit_amount" in line and "unit_amount_decimal" in line:
        raise exclusive(f"{param}[unit_amount]", f"{param}[unit_amount_decimal]")
    if "unit_amount" not in line and "unit_amount_decimal" not in line:
        raise missing_param(f"{param}[unit_amount]")
    unit = Decimal(line.get("unit_amount", line.get("unit_amount_decimal")))
    return {
        "object": "credit_note_line_item",
        "amount": round_minor(unit * quantity),
        "description": line.get("description"),
        "discount_amount": 0,
        "discount_amounts": [],
        "livemode": False,
        "metadata": line.get("metadata"),
        "pretax_credit_amounts": [],
        "quantity": quantity,
        "tax_rates": [],
        "taxes": [],
        "type": "custom_line_item",
        "unit_amount": int(unit) if unit == int(unit) else None,
        "unit_amount_decimal": _decimal_str(unit),
    }


def _invoice_charges(state: State, inv: dict[str, Any]) -> list[dict[str, Any]]:
    charges = []
    for pay_id in state.invoice_payments.get(inv["id"], []):
        pi = state.objects[state.objects[pay_id]["payment"]["payment_intent"]]
        if pi["status"] == "succeeded" and pi["latest_charge"]:
            charges.append(state.objects[pi["latest_charge"]])
    return charges


@route("GET", "/v1/credit_notes/{id}", "CreditNoteRetrieveParams")
def retrieve_credit_note(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("credit_note", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/credit_notes/{id}/lines", "CreditNoteLineItemListParams")
def list_credit_note_lines(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
    state.get("credit_note", id, "credit_note")
    lines = {line["id"]: line for line in state.credit_note_lines.get(id, [])}
    return state.list_response(
        list(lines), p, f"/v1/credit_notes/{id}/lines", render=lambda i: dict(lines[i])
    )


@route("GET", "/v1/credit_notes", "CreditNoteListParams")
def list_credit_notes(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    def keep(o: dict[str, Any]) -> bool:
        return ("invoice" not in p or o["invoice"] == p["invoice"]) and (
            "customer" not in p or o["customer"] == p["customer"]
        )

    return state.list_response(state.ids_of("credit_note", keep), p, "/v1/credit_notes")


@route("POST", "/v1/credit_notes/{id}/void", "CreditNoteVoidCreditNoteParams")
def void_credit_note(
    state: State, ctx: RequestContext, p: dict[str, Any], id: str
) -> dict[str, Any]:
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
        _recompute(state, inv)
    else:
        inv["post_payment_credit_notes_amount"] -= note["amount"]
        customer = state.objects.get(note["customer"])
        if note["customer_balance_transaction"] and customer is not None:
            customer["balance"] += note["amount"] - (note["out_of_band_amount"] or 0)
    state.emit("credit_note.voided", id, ctx)
    return state.render(id, _expand(p))


# ====================================================================== events


@route("GET", "/v1/events/{id}", "EventRetrieveParams")
def retrieve_event(state: State, ctx: RequestContext, p: dict[str, Any], id: str) -> dict[str, Any]:
    state.get("event", id)
    return state.render(id, _expand(p))


@route("GET", "/v1/events", "EventListParams")
def list_events(state: State, ctx: RequestContext, p: dict[str, Any]) -> dict[str, Any]:
    if "type" in p and "types" in p:
        raise invalid("You may pass either `type` or `types`, but not both.", "types")
    types = p.get("types")
    if types is not None and len(types) > 20:
        raise invalid("You may pass at most 20 event types.", "types")
    wanted = p.get("type")
    pattern = re.compile("^" + re.escape(wanted).replace(r"\*", ".*") + "$") if wanted else None

    def keep(o: dict[str, Any]) -> bool:
        if types is not None and o["type"] not in types:
            return False
        if pattern is not None and not pattern.match(o["type"]):
            return False
        delivered = o["pending_webhooks"] == 0
        return "delivery_success" not in p or delivered == p["delivery_success"]

    return state.list_response(state.ids_of("event", keep), p, "/v1/events")


# ====================================================================== test actions


def action(state: State, name: str, invoice_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The /_emulator/invoices/{id}/{name} test actions (no Stripe endpoint does these)."""
    inv = state.get("invoice", invoice_id)
    if name in ("pay", "payment_failed", "payment_action_required"):
        if inv["status"] not in ("open", "uncollectible"):
            raise invalid(f"Invoice {invoice_id} is {inv['status']}; it must be open.", "invoice")
        pm = {
            "pay": body.get("payment_method", _HOSTED_PAGE_CARD),
            "payment_failed": {
                "generic_decline": "pm_card_chargeDeclined",
                "insufficient_funds": "pm_card_chargeDeclinedInsufficientFunds",
                "expired_card": "pm_card_chargeDeclinedExpiredCard",
                "incorrect_cvc": "pm_card_chargeDeclinedIncorrectCvc",
                "processing_error": "pm_card_chargeDeclinedProcessingError",
            }.get(body.get("decline_code", "generic_decline"), "pm_card_chargeDeclined"),
            "payment_action_required": "pm_card_authenticationRequired",
        }[name]
        _payment_method(pm)
        if inv["amount_remaining"] == 0:
            raise invalid("This invoice has nothing left to pay.", "invoice")
        try:
            charge_invoice(state, None, inv, pm)
        except StripeAPIError as exc:
            if name == "pay":
                raise
            return {"invoice": state.render(invoice_id), "error": exc.body()["error"]}
    elif name == "overdue":
        if inv["status"] != "open":
            raise invalid(f"Invoice {invoice_id} is {inv['status']}; it must be open.", "invoice")
        state.overdue_sent.add(invoice_id)
        state.emit("invoice.overdue", invoice_id, None)
    elif name == "refund":
        charges = _invoice_charges(state, inv)
        if not charges:
            raise invalid(f"Invoice {invoice_id} has no successful charge to refund.", "invoice")
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
            raise invalid("amount must be an integer amount in minor units.", "amount")
        refund = refund_charge(state, None, charges[0], amount, reason=body.get("reason"))
        return {"invoice": state.render(invoice_id), "refund": state.render(refund["id"])}
    elif name == "void":
        void(state, None, inv)
    elif name == "mark_uncollectible":
        if inv["status"] != "open":
            raise invalid(f"Invoice {invoice_id} is {inv['status']}; it must be open.", "invoice")
        inv["status"] = "uncollectible"
        inv["status_transitions"]["marked_uncollectible_at"] = state.now()
        state.emit("invoice.marked_uncollectible", invoice_id, None)
    elif name == "finalize":
        finalize(state, None, inv)
    elif name == "delete":
        # Stripe deletes only drafts; this removes any invoice, for reconciliation tests of an
        # invoice gone from the account (deleted draft, wrong account, lost data)
        for item_id in state.invoice_items.pop(invoice_id, []):
            state.remove(item_id)
        state.remove(invoice_id)
        return {"deleted": True, "id": invoice_id}
    elif name == "set_line_amount":
        # an out-of-band edit Stripe's API refuses on a finalized invoice: the line carrying
        # metadata line_id = body["line_id"] gets body["amount"] (minor units), totals follow
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise invalid("amount must be an integer amount in minor units.", "amount")
        items = [state.objects[i] for i in state.invoice_items.get(invoice_id, [])
                 if (state.objects[i].get("metadata") or {}).get("line_id") == body.get("line_id")]
        if not items:
            raise invalid(f"Invoice {invoice_id} has no line with metadata line_id "
                          f"{body.get('line_id')!r}.", "line_id")
        items[0]["amount"] = amount
        _recompute(state, inv)
    else:
        raise invalid(f"Unknown test action: {name}", "action", status=404)
    return {"invoice": state.render(invoice_id)}


ACTIONS = (
    "pay",
    "payment_failed",
    "payment_action_required",
    "overdue",
    "refund",
    "void",
    "mark_uncollectible",
    "finalize",
    "delete",
    "set_line_amount",
)


def run_automations(state: State) -> list[str]:
    """What Stripe's schedulers do as time passes: auto-finalize, retry, overdue."""
    now = state.now()
    done: list[str] = []
    for inv_id in reversed(state.ids_of("invoice")):
        inv = state.objects[inv_id]
        at = inv["automatically_finalizes_at"]
        if inv["status"] == "draft" and inv["auto_advance"] and at is not None and at <= now:
            finalize(state, None, inv)
            done.append(f"finalized {inv_id}")
        next_try = inv["next_payment_attempt"]
        if (
            inv["status"] == "open"
            and inv["collection_method"] == "charge_automatically"
            and inv["auto_advance"]
            and next_try is not None
            and next_try <= now
            and inv["amount_remaining"] > 0
        ):
            pm = inv["default_payment_method"] or _customer_default_pm(state, inv)
            if pm is None:
                inv["attempted"] = True
                inv["attempt_count"] += 1
                retry = inv["attempt_count"] < _MAX_ATTEMPTS
                inv["next_payment_attempt"] = now + _RETRY_DELAY if retry else None
                state.emit("invoice.payment_failed", inv_id, None)
            else:
                with contextlib.suppress(StripeAPIError):  # a decline is recorded as events
                    charge_invoice(state, None, inv, pm)
            done.append(f"attempted payment of {inv_id}")
        due = inv["due_date"]
        overdue = inv["status"] == "open" and due is not None and due < now
        if overdue and inv_id not in state.overdue_sent:
            state.overdue_sent.add(inv_id)
            state.emit("invoice.overdue", inv_id, None)
            done.append(f"overdue {inv_id}")
    return done
