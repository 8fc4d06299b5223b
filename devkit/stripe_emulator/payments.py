"""Payments of invoices: PaymentIntents, charges and invoice payments.

Finalizing an invoice opens a PaymentIntent and its ``invoice_payment`` record; each card attempt
adds a charge. The API reads them (``/v1/charges``, ``/v1/payment_intents``,
``/v1/invoice_payments``); they are created and moved by the invoice lifecycle.
"""

from __future__ import annotations

from typing import Any

from .cards import TestCard
from .fields import ADDRESS_KEYS
from .routes import Params
from .state import EXPANDABLE, RENDERERS, RequestContext, State
from .templates import Predicate, embedded_list, list_endpoint, retrieve_endpoint

_CARD_CHECKS = {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"}


def _render_charge(state: State, obj: dict[str, Any]) -> None:
    refunds = list(reversed(state.charge_refunds.get(obj["id"], [])))
    obj["refunds"] = embedded_list(refunds, f"/v1/charges/{obj['id']}/refunds", state.render)


def invoice_payments_list(state: State, inv: dict[str, Any]) -> dict[str, Any]:
    """The invoice's ``payments`` (expandable): its invoice payments, newest first."""
    ids = list(reversed(state.invoice_payments.get(inv["id"], [])))
    return embedded_list(ids, f"/v1/invoice_payments?invoice={inv['id']}", state.render)


def confirmation_secret(state: State, inv: dict[str, Any]) -> dict[str, Any] | None:
    """The invoice's ``confirmation_secret`` (expandable): its PaymentIntent's client secret."""
    for pay_id in state.invoice_payments.get(inv["id"], []):
        pi_id = state.objects[pay_id]["payment"].get("payment_intent")
        if pi_id:
            secret = state.objects[pi_id]["client_secret"]
            return {"client_secret": secret, "type": "payment_intent"}
    return None


RENDERERS.update(charge=_render_charge)
EXPANDABLE.update(
    charge={"customer": None, "payment_intent": None, "refunds.data.charge": None},
    payment_intent={"customer": None, "latest_charge": None},
    invoice_payment={"invoice": None, "payment.payment_intent": None, "payment.charge": None},
)


def open_payment(state: State, inv: dict[str, Any]) -> dict[str, Any]:
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


def _open_records(state: State, inv: dict[str, Any]) -> list[dict[str, Any]]:
    records = (state.objects[i] for i in state.invoice_payments.get(inv["id"], []))
    return [record for record in records if record["status"] == "open"]


def cancel_open_payments(state: State, inv: dict[str, Any], reason: str) -> None:
    """Cancel the invoice's open PaymentIntent (voided, paid out of band, credited in full)."""
    now = state.now()
    for record in _open_records(state, inv):
        record["status"] = "canceled"
        record["status_transitions"]["canceled_at"] = now
        pi = state.objects[record["payment"]["payment_intent"]]
        pi.update(status="canceled", canceled_at=now, cancellation_reason=reason)


def record_payments_paid(
    state: State, ctx: RequestContext | None, inv: dict[str, Any], now: int
) -> None:
    """Mark the invoice's open payment records paid where their PaymentIntent succeeded."""
    for record in _open_records(state, inv):
        pi = state.objects[record["payment"]["payment_intent"]]
        if pi["status"] == "succeeded":
            record.update(status="paid", amount_paid=pi["amount_received"])
            record["status_transitions"]["paid_at"] = now
            state.emit("invoice_payment.paid", record["id"], ctx)


def invoice_charges(state: State, inv: dict[str, Any]) -> list[dict[str, Any]]:
    """The invoice's successful charges (what a refund can draw on)."""
    charges = []
    for pay_id in state.invoice_payments.get(inv["id"], []):
        pi = state.objects[state.objects[pay_id]["payment"]["payment_intent"]]
        if pi["status"] == "succeeded" and pi["latest_charge"]:
            charges.append(state.objects[pi["latest_charge"]])
    return charges


def new_charge(
    state: State, inv: dict[str, Any], pi: dict[str, Any], pm: str, card: TestCard, ok: bool
) -> dict[str, Any]:
    """A charge of the invoice's remaining amount with a test card (``ok``: it succeeded)."""
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
            "address": {k: None for k in ADDRESS_KEYS},
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


def _payment_test(p: Params) -> Predicate:
    payment = p.get("payment") or {}
    return lambda o: all(o["payment"].get(k) == v for k, v in payment.items())


retrieve_endpoint("charge", "/v1/charges", "Charge")
list_endpoint("charge", "/v1/charges", "Charge", filters=("customer", "payment_intent"))
retrieve_endpoint("payment_intent", "/v1/payment_intents", "PaymentIntent")
retrieve_endpoint("invoice_payment", "/v1/invoice_payments", "InvoicePayment")
list_endpoint(
    "invoice_payment",
    "/v1/invoice_payments",
    "InvoicePayment",
    filters=("invoice", "status"),
    where=_payment_test,
)
