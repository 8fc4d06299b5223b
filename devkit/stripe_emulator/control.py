"""The ``/_emulator`` control API (JSON, no auth) and the hosted invoice page.

Tests and the demo drive the emulator through it over HTTP: health, fault knobs, statistics and
the request log, reset, the clock, webhook delivery attempts and the invoice test actions.
"""

from __future__ import annotations

import html
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import levers
from .errors import StripeAPIError, invalid
from .faults import Faults
from .money import display
from .routes import encode_body
from .state import State

if TYPE_CHECKING:
    from .server import StripeEmulator


def handle_control(
    emulator: StripeEmulator, method: str, path: str, query: str, body: str
) -> tuple[int, bytes, str]:
    """Answer one ``/_emulator`` request: (status, body, content type)."""
    try:
        data = json.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
    except ValueError as exc:
        return (
            400,
            encode_body({"error": {"type": "invalid_request_error", "message": str(exc)}}),
            ("application/json"),
        )
    try:
        status, payload = _control(emulator, method, path, query, data)
    except StripeAPIError as exc:
        return exc.status, encode_body(exc.body()), "application/json"
    except ValueError as exc:
        body_ = {"error": {"type": "invalid_request_error", "message": str(exc)}}
        return 400, encode_body(body_), "application/json"
    if isinstance(payload, str):
        return status, payload.encode(), "text/html; charset=utf-8"
    return status, encode_body(payload), "application/json"


def _control(
    emulator: StripeEmulator, method: str, path: str, query: str, data: dict[str, Any]
) -> tuple[int, dict[str, Any] | str]:
    parts = [p for p in path.split("/") if p][1:]  # drop "_emulator"
    q = dict(urllib.parse.parse_qsl(query))
    state = emulator.state
    match method, parts:
        case "GET", ["health"]:
            return 200, {"status": "ok", "base_url": emulator.base_url}
        case "GET", ["faults"]:
            return 200, emulator.faults.to_dict()
        case "POST", ["faults"]:
            return 200, emulator.update_faults(**data).to_dict()
        case "PUT", ["faults"]:
            emulator.faults = data
            return 200, emulator.faults.to_dict()
        case "DELETE", ["faults"]:
            emulator.faults = Faults()
            return 200, emulator.faults.to_dict()
        case "GET", ["stats"]:
            return 200, emulator.stats()
        case "GET", ["requests"]:
            return 200, {"data": emulator.request_log(int(q.get("limit", 100)))}
        case "POST", ["reset"]:
            emulator.reset()
            return 200, {"reset": True}
        case "GET", ["clock"]:
            return 200, {"now": state.now(), "offset": state.clock_offset}
        case "POST", ["clock"]:
            done = emulator.advance_clock(float(data.get("advance_seconds", 0)))
            return 200, {"now": state.now(), "automations": done}
        case "GET", ["webhooks"]:
            return 200, {"data": list(emulator.deliverer.log), **emulator.stats()["webhooks"]}
        case "GET", ["invoices", invoice_id, "hosted"]:
            return 200, _hosted_page(state, invoice_id, q.get("token", ""))
        case "POST", ["invoices", invoice_id, action] if action in levers.ACTIONS:
            return 200, emulator.invoice_action(invoice_id, action, **data)
    raise invalid(f"Unrecognized emulator URL ({method}: {path}).", status=404)


def _hosted_page(state: State, invoice_id: str, token: str) -> str:
    """The page ``hosted_invoice_url`` points to (also the ``invoice_pdf``)."""
    with state.lock:
        try:
            inv = state.render(invoice_id)
        except KeyError:
            raise invalid("No such hosted invoice.", status=404) from None
    if not inv.get("hosted_invoice_url") or f"token={token}" not in inv["hosted_invoice_url"]:
        raise invalid("No such hosted invoice.", status=404)
    cur = inv["currency"]
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td><td>{line['quantity']}</td>"
        f"<td>{display(line['amount'], cur)}</td></tr>"
        for line in inv["lines"]["data"]
    )
    fields = "".join(
        f"<p>{html.escape(f['name'])}: {html.escape(f['value'])}</p>"
        for f in inv.get("custom_fields") or []
    )
    tax = sum(t["amount"] for t in inv.get("total_taxes") or [])
    return (
        f"<!doctype html><title>Invoice {html.escape(inv['number'] or '')}</title>"
        f"<h1>Invoice {html.escape(inv['number'] or '')} ({inv['status']})</h1>{fields}"
        f"<table><tr><th>Item</th><th>Qty</th><th>Amount</th></tr>{rows}</table>"
        f"<p>Subtotal {display(inv['subtotal'], cur)} &middot; Tax {display(tax, cur)}</p>"
        f"<p>Total {display(inv['total'], cur)} &middot; Amount due "
        f"{display(inv['amount_due'], cur)} &middot; Remaining "
        f"{display(inv['amount_remaining'], cur)}</p>"
    )
