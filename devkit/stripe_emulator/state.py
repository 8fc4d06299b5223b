"""In-memory account state: objects, ids, clock, events, list pagination and ``expand``.

Resource behaviour (what creating an invoice or paying it does) lives in one module per Stripe
object (``customers.py``, ``invoices.py``, ...); this module is the storage and the generic API
mechanics every resource shares. All access happens
under :attr:`State.lock` (the HTTP server holds it around each request's execution).
"""

from __future__ import annotations

import copy
import string
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from random import Random
from typing import Any

from .errors import StripeAPIError, exclusive, invalid, no_such

_ALNUM = string.ascii_letters + string.digits

# Human names used in "No such ..." messages, by object type.
KIND_NAMES = {
    "customer": "customer",
    "invoice": "invoice",
    "invoiceitem": "invoiceitem",
    "line_item": "line item",
    "event": "event",
    "charge": "charge",
    "refund": "refund",
    "payment_intent": "payment_intent",
    "invoice_payment": "invoice payment",
    "credit_note": "credit note",
    "credit_note_line_item": "credit note line item",
    "product": "product",
    "price": "price",
    "webhook_endpoint": "webhook endpoint",
}


@dataclass
class RequestContext:
    """What an operation needs to know about the API request that caused it."""

    request_id: str | None = None
    idempotency_key: str | None = None


class State:
    """Everything one emulated Stripe account holds."""

    def __init__(
        self,
        *,
        api_version: str,
        account_country: str = "US",
        default_currency: str = "usd",
        seed: int | None = None,
        search_lag: Callable[[], float] = lambda: 0.0,
        on_event: Callable[[dict[str, Any]], int] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.api_version = api_version
        self.account_country = account_country
        self.default_currency = default_currency
        self.search_lag = search_lag
        self.on_event = on_event  # webhook fan-out; returns the number of pending deliveries
        self.base_url = ""
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.rng = Random(self._seed)
            self.clock_offset = 0.0
            self.objects: dict[str, dict[str, Any]] = {}
            self.kind: dict[str, str] = {}
            self.order: dict[str, list[str]] = defaultdict(list)
            self.born: dict[str, float] = {}  # monotonic creation time (search visibility lag)
            self.tombstones: dict[str, str] = {}  # deleted id -> kind
            self.hidden: set[str] = set()  # internal objects not listed by their list endpoint
            # relations kept beside the objects
            self.invoice_items: dict[str, list[str]] = defaultdict(list)  # invoice -> items
            self.line_of_item: dict[str, str] = {}  # invoiceitem -> line item id
            self.item_of_line: dict[str, str] = {}  # line item id -> invoiceitem
            self.invoice_payments: dict[str, list[str]] = defaultdict(list)  # invoice -> inpay
            self.charge_refunds: dict[str, list[str]] = defaultdict(list)  # charge -> refunds
            self.credit_note_lines: dict[str, list[dict[str, Any]]] = {}
            # tax_rate_data of manual tax amounts -> the TaxRate made for it (taxes.py)
            self.tax_rate_by_data: dict[tuple[Any, ...], str] = {}
            self.item_taxes: dict[str, list[dict[str, Any]]] = {}  # invoiceitem -> its taxes
            self.overdue_sent: set[str] = set()
            self.invoice_days_until_due: dict[str, int] = {}
            self.webhook_secrets: dict[str, str] = {}

    # ------------------------------------------------------------------ ids, clock

    def new_id(self, prefix: str, length: int = 24) -> str:
        while True:
            candidate = f"{prefix}_{self.token(length)}"
            if candidate not in self.objects and candidate not in self.tombstones:
                return candidate

    def token(self, length: int = 24, alphabet: str = _ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    # ------------------------------------------------------------------ storage

    def add(self, obj: dict[str, Any], *, hidden: bool = False) -> dict[str, Any]:
        oid, kind = obj["id"], obj["object"]
        self.objects[oid] = obj
        self.kind[oid] = kind
        self.order[kind].append(oid)
        self.born[oid] = time.monotonic()
        if hidden:
            self.hidden.add(oid)
        return obj

    def remove(self, oid: str) -> None:
        kind = self.kind.pop(oid)
        self.objects.pop(oid)
        self.item_taxes.pop(oid, None)
        self.order[kind].remove(oid)
        self.tombstones[oid] = kind

    def get(self, kind: str, oid: Any, param: str | None = "id") -> dict[str, Any]:
        if not isinstance(oid, str) or self.kind.get(oid) != kind:
            raise no_such(KIND_NAMES.get(kind, kind), str(oid), param)
        return self.objects[oid]

    def is_deleted(self, kind: str, oid: str) -> bool:
        return self.tombstones.get(oid) == kind

    def count_by_kind(self) -> dict[str, int]:
        """Objects per type, leaving out internal ones (inline prices and products)."""
        counts = {kind: len(self.ids_of(kind)) for kind in sorted(self.order)}
        return {kind: n for kind, n in counts.items() if n}

    # ------------------------------------------------------------------ rendering

    def render(self, oid: str, expand: Iterable[str] = ()) -> dict[str, Any]:
        """The API representation of an object, with ``expand`` applied."""
        out = self._render_plain(oid)
        self.expand_all(out, expand)
        return out

    def _render_plain(self, oid: str) -> dict[str, Any]:
        obj = copy.deepcopy(self.objects[oid])
        renderer = RENDERERS.get(self.kind[oid])
        if renderer is not None:
            renderer(self, obj)
        return obj

    def expand_all(self, out: dict[str, Any], paths: Iterable[str]) -> None:
        """Apply each ``expand`` path to the rendered object or list ``out``."""
        for path in paths:
            self.expand_into(out, path)

    def expand_into(self, out: dict[str, Any], path: str, depth: int = 0) -> None:
        parts = path.split(".")
        if len(parts) + depth > 4:
            raise invalid(
                f"You cannot expand more than 4 levels of a property. Property: {path}", "expand"
            )
        if out.get("object") in ("list", "search_result"):
            if parts[0] != "data" or len(parts) < 2:
                raise _cannot_expand(path, suggest=True)
            for item in out["data"]:
                self.expand_into(item, ".".join(parts[1:]), depth + 1)
            return
        kind = out.get("object", "")
        allowed = EXPANDABLE.get(kind, {})
        for n in range(len(parts), 0, -1):
            field = ".".join(parts[:n])
            if field not in allowed:
                continue
            container = out
            for key in parts[: n - 1]:
                container = container.get(key) or {}
            leaf = parts[n - 1]
            special = allowed[field]
            value = container.get(leaf)
            if special is not None:
                value = special(self, out)
            elif isinstance(value, str) and value in self.objects:
                value = self._render_plain(value)
            elif isinstance(value, str) and value in self.tombstones:
                value = {"id": value, "object": self.tombstones[value], "deleted": True}
            container[leaf] = value
            if n < len(parts) and isinstance(value, dict):
                self.expand_into(value, ".".join(parts[n:]), depth + n)
            return
        raise _cannot_expand(path)

    # ------------------------------------------------------------------ events

    def emit(
        self,
        event_type: str,
        oid: str,
        ctx: RequestContext | None,
        previous_attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": self._render_plain(oid)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": self.api_version,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {
                "id": ctx.request_id if ctx else None,
                "idempotency_key": ctx.idempotency_key if ctx else None,
            },
            "type": event_type,
        }
        self.add(event)
        if self.on_event is not None:
            event["pending_webhooks"] = self.on_event(event)
        return event

    # ------------------------------------------------------------------ lists

    def ids_of(self, kind: str, where: Callable[[dict[str, Any]], bool] | None = None) -> list[str]:
        """Ids of ``kind``, newest first (Stripe's list order)."""
        ids = [i for i in reversed(self.order[kind]) if i not in self.hidden]
        if where is not None:
            ids = [i for i in ids if where(self.objects[i])]
        return ids

    def list_response(
        self,
        ids: list[str],
        params: dict[str, Any],
        url: str,
        render: Callable[[str], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Cursor pagination (``limit``, ``starting_after``, ``ending_before``) over ``ids``."""
        limit = page_limit(params)
        after, before = params.get("starting_after"), params.get("ending_before")
        if after is not None and before is not None:
            raise exclusive("ending_before", "starting_after")
        if "created" in params:
            ids = [i for i in ids if created_matches(self.objects[i]["created"], params["created"])]
        if after is not None:
            pos = _cursor(self, ids, after, "starting_after")
            page = ids[pos + 1 : pos + 1 + limit]
            has_more = pos + 1 + limit < len(ids)
        elif before is not None:
            pos = _cursor(self, ids, before, "ending_before")
            start = max(0, pos - limit)
            page = ids[start:pos]
            has_more = start > 0
        else:
            page = ids[:limit]
            has_more = len(ids) > limit
        draw = render or self._render_plain
        out = list_object([draw(i) for i in page], has_more, url)
        self.expand_all(out, params.get("expand", []))
        return out

    def visible_to_search(self, oid: str) -> bool:
        lag = self.search_lag()
        return lag <= 0 or time.monotonic() - self.born[oid] >= lag


def list_object(data: list[dict[str, Any]], has_more: bool, url: str) -> dict[str, Any]:
    """Stripe's list object: a page of ``data`` and whether more follow."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def page_limit(params: dict[str, Any]) -> int:
    """The ``limit`` of a list or search request (1 to 100, default 10)."""
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise invalid(f"This value must be between 1 and 100 (it currently is '{limit}').", "limit")
    return limit


def _cursor(state: State, ids: list[str], cursor: str, param: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        kind = state.kind.get(cursor) or state.tombstones.get(cursor) or "object"
        raise no_such(KIND_NAMES.get(kind, kind), cursor, param) from None


def created_matches(created: int, cond: Any) -> bool:
    if isinstance(cond, int):
        return created == cond
    return (
        ("gt" not in cond or created > cond["gt"])
        and ("gte" not in cond or created >= cond["gte"])
        and ("lt" not in cond or created < cond["lt"])
        and ("lte" not in cond or created <= cond["lte"])
    )


def _cannot_expand(path: str, suggest: bool = False) -> StripeAPIError:
    message = f"This property cannot be expanded ({path})."
    if suggest:
        message += f" You may want to try expanding 'data.{path}' instead."
    return invalid(message, "expand")


# Filled in by the resource modules: object type -> function completing the stored dict on render
# (e.g. an invoice's embedded ``lines`` list), and object type -> expandable field paths
# (value None: the field holds an id to replace by its object; else a function building it).
RENDERERS: dict[str, Callable[[State, dict[str, Any]], None]] = {}
EXPANDABLE: dict[str, dict[str, Callable[[State, dict[str, Any]], Any] | None]] = {}
