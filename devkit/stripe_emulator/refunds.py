"""Refunds: ``/v1/refunds`` create (by ``charge`` or ``payment_intent``), retrieve, list.

:func:`refund_charge` also serves post-payment credit notes and the ``refund`` test action.
"""

from __future__ import annotations

from typing import Any

from .errors import exclusive, invalid
from .fields import new_metadata, unsupported
from .money import display
from .routes import Body, Params, route
from .state import EXPANDABLE, RequestContext, State
from .templates import list_endpoint, rendered, retrieve_endpoint

EXPANDABLE.update(refund={"charge": None, "payment_intent": None})


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
    """Refund ``amount`` of a succeeded charge (all that is left without ``amount``)."""
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


def _refunded_charge(state: State, p: Params) -> dict[str, Any]:
    """The charge a refund request names, directly or through its PaymentIntent."""
    if "charge" in p and "payment_intent" in p:
        raise exclusive("charge", "payment_intent")
    if "charge" in p:
        return state.get("charge", p["charge"], "charge")
    if "payment_intent" in p:
        pi = state.get("payment_intent", p["payment_intent"], "payment_intent")
        if pi["status"] != "succeeded" or pi["latest_charge"] is None:
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                "payment_intent",
            )
        return state.objects[pi["latest_charge"]]
    raise invalid(
        "One of the following params should be provided for this request: payment_intent or "
        "charge.",
    )


@route("POST", "/v1/refunds", "RefundCreateParams")
def create_refund(state: State, ctx: RequestContext, p: Params) -> Body:
    unsupported(p, "origin", "customer", "instructions_email", "reverse_transfer")
    unsupported(p, "refund_application_fee", "currency")
    refund = refund_charge(
        state,
        ctx,
        _refunded_charge(state, p),
        p.get("amount"),
        reason=p.get("reason"),
        metadata=new_metadata(p),
    )
    return rendered(state, refund["id"], p)


retrieve_endpoint("refund", "/v1/refunds", "Refund")
list_endpoint("refund", "/v1/refunds", "Refund", filters=("charge", "payment_intent"))
