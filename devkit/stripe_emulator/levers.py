"""What tests pull on besides the API: invoice test actions and the clock's automations.

The test actions (``/_emulator/invoices/{id}/{action}``, ``StripeEmulator.invoice_action``) play
the customer (pay on the hosted page, a declined card, 3-D Secure) or change an invoice the way
Stripe's API refuses to (delete any invoice, edit a finalized line), for reconciliation tests.
:func:`run_automations` does what Stripe's schedulers do as the emulator's clock moves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .cards import AUTHENTICATION_CARD, DECLINING_CARDS, HOSTED_PAGE_CARD, payment_method
from .errors import StripeAPIError, invalid
from .invoice_lifecycle import (
    charge_invoice,
    default_payment_method,
    finalize,
    schedule_retry,
    void,
)
from .invoices import recompute, remove_invoice
from .payments import invoice_charges
from .refunds import refund_charge
from .state import State

Action = Callable[[State, dict[str, Any], dict[str, Any]], dict[str, Any] | None]


def _require_status(inv: dict[str, Any], *statuses: str) -> None:
    if inv["status"] not in statuses:
        raise invalid(f"Invoice {inv['id']} is {inv['status']}; it must be open.", "invoice")


def _minor_units(amount: Any) -> bool:
    return isinstance(amount, int) and not isinstance(amount, bool)


def _card_attempt(card: Callable[[dict[str, Any]], str], *, declines_raise: bool) -> Action:
    """A payment attempt with the test card ``card(body)`` names."""

    def attempt(state: State, inv: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        _require_status(inv, "open", "uncollectible")
        pm = card(body)
        payment_method(pm)
        if inv["amount_remaining"] == 0:
            raise invalid("This invoice has nothing left to pay.", "invoice")
        try:
            charge_invoice(state, None, inv, pm)
        except StripeAPIError as exc:
            if declines_raise:
                raise
            return {"invoice": state.render(inv["id"]), "error": exc.body()["error"]}
        return None

    return attempt


def _declining_card(body: dict[str, Any]) -> str:
    code = body.get("decline_code", "generic_decline")
    return DECLINING_CARDS.get(code, DECLINING_CARDS["generic_decline"])


def _overdue(state: State, inv: dict[str, Any], body: dict[str, Any]) -> None:
    _require_status(inv, "open")
    state.overdue_sent.add(inv["id"])
    state.emit("invoice.overdue", inv["id"], None)


def _refund(state: State, inv: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    charges = invoice_charges(state, inv)
    if not charges:
        raise invalid(f"Invoice {inv['id']} has no successful charge to refund.", "invoice")
    amount = body.get("amount")
    if amount is not None and not _minor_units(amount):
        raise invalid("amount must be an integer amount in minor units.", "amount")
    refund = refund_charge(state, None, charges[0], amount, reason=body.get("reason"))
    return {"invoice": state.render(inv["id"]), "refund": state.render(refund["id"])}


def _void(state: State, inv: dict[str, Any], body: dict[str, Any]) -> None:
    void(state, None, inv)


def _mark_uncollectible(state: State, inv: dict[str, Any], body: dict[str, Any]) -> None:
    # unlike the v1 endpoint, this leaves next_payment_attempt as it was
    _require_status(inv, "open")
    inv["status"] = "uncollectible"
    inv["status_transitions"]["marked_uncollectible_at"] = state.now()
    state.emit("invoice.marked_uncollectible", inv["id"], None)


def _finalize(state: State, inv: dict[str, Any], body: dict[str, Any]) -> None:
    finalize(state, None, inv)


def _delete(state: State, inv: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    # Stripe deletes only drafts; this removes any invoice, for reconciliation tests of an
    # invoice gone from the account (deleted draft, wrong account, lost data)
    remove_invoice(state, inv["id"])
    return {"deleted": True, "id": inv["id"]}


def _set_line_amount(state: State, inv: dict[str, Any], body: dict[str, Any]) -> None:
    # an out-of-band edit Stripe's API refuses on a finalized invoice: the line carrying
    # metadata line_id = body["line_id"] gets body["amount"] (minor units), totals follow
    amount = body.get("amount")
    if not _minor_units(amount):
        raise invalid("amount must be an integer amount in minor units.", "amount")
    items = [
        state.objects[i]
        for i in state.invoice_items.get(inv["id"], [])
        if (state.objects[i].get("metadata") or {}).get("line_id") == body.get("line_id")
    ]
    if not items:
        raise invalid(
            f"Invoice {inv['id']} has no line with metadata line_id {body.get('line_id')!r}.",
            "line_id",
        )
    items[0]["amount"] = amount
    recompute(state, inv)


_ACTIONS: dict[str, Action] = {
    "pay": _card_attempt(
        lambda body: body.get("payment_method", HOSTED_PAGE_CARD), declines_raise=True
    ),
    "payment_failed": _card_attempt(_declining_card, declines_raise=False),
    "payment_action_required": _card_attempt(
        lambda body: AUTHENTICATION_CARD, declines_raise=False
    ),
    "overdue": _overdue,
    "refund": _refund,
    "void": _void,
    "mark_uncollectible": _mark_uncollectible,
    "finalize": _finalize,
    "delete": _delete,
    "set_line_amount": _set_line_amount,
}
ACTIONS = tuple(_ACTIONS)


def action(state: State, name: str, invoice_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The /_emulator/invoices/{id}/{name} test actions (no Stripe endpoint does these)."""
    inv = state.get("invoice", invoice_id)
    run = _ACTIONS.get(name)
    if run is None:
        raise invalid(f"Unknown test action: {name}", "action", status=404)
    return run(state, inv, body) or {"invoice": state.render(invoice_id)}


def _collect(state: State, inv: dict[str, Any], now: int) -> None:
    """An automatic collection attempt with the default payment method (a retry if none)."""
    pm = default_payment_method(state, inv)
    if pm is None:
        inv["attempted"] = True
        inv["attempt_count"] += 1
        schedule_retry(inv, now)
        state.emit("invoice.payment_failed", inv["id"], None)
        return
    with contextlib.suppress(StripeAPIError):  # a decline is recorded as events
        charge_invoice(state, None, inv, pm)


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
            _collect(state, inv, now)
            done.append(f"attempted payment of {inv_id}")
        due = inv["due_date"]
        overdue = inv["status"] == "open" and due is not None and due < now
        if overdue and inv_id not in state.overdue_sent:
            state.overdue_sent.add(inv_id)
            state.emit("invoice.overdue", inv_id, None)
            done.append(f"overdue {inv_id}")
    return done
