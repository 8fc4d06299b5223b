"""The invoice state machine: draft → open → paid | void | uncollectible, and card payments.

``/v1/invoices/{id}/finalize``, ``send``, ``pay``, ``void`` and ``mark_uncollectible``; the same
transitions serve the test actions and the clock's automations (``levers.py``).
"""

from __future__ import annotations

from typing import Any

from .cards import DECLINED, TEST_CARDS, payment_method
from .errors import StripeAPIError, exclusive, invalid, no_such
from .fields import unsupported
from .invoices import AUTO_FINALIZE_DELAY, DAY, recompute
from .money import minimum_charge
from .payments import cancel_open_payments, new_charge, open_payment, record_payments_paid
from .routes import Body, Params, route
from .state import RequestContext, State
from .templates import rendered

RETRY_DELAY = 3 * DAY
MAX_ATTEMPTS = 4


def finalize(state: State, ctx: RequestContext | None, inv: dict[str, Any]) -> None:
    """draft → open: number, balance, hosted page, due date, PaymentIntent (or paid at once)."""
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
    recompute(state, inv)  # copies the customer's details one last time
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
        inv["due_date"] = now + days * DAY
    if inv["collection_method"] == "charge_automatically" and inv["auto_advance"]:
        inv["next_payment_attempt"] = now + AUTO_FINALIZE_DELAY
    recompute(state, inv)
    below_minimum = 0 < inv["amount_due"] < minimum_charge(inv["currency"])
    if below_minimum:
        # Stripe cannot charge less than the currency's minimum: it marks the invoice paid and
        # carries the amount to the customer's balance, to be added to the next invoice.
        inv["ending_balance"] = inv["amount_due"]
        customer["balance"] += inv["amount_due"]
        inv["amount_remaining"] = 0
    elif inv["amount_due"] > 0:
        open_payment(state, inv)
    state.emit("invoice.finalized", inv["id"], ctx)
    if inv["amount_remaining"] == 0:
        # Zero-amount (and below-minimum) invoices are marked paid as they finalize.
        settle(state, ctx, inv, off_stripe=0)


def settle(state: State, ctx: RequestContext | None, inv: dict[str, Any], off_stripe: int) -> None:
    """Mark an open/uncollectible invoice paid (the money is already accounted for)."""
    now = state.now()
    paid_now = inv["amount_remaining"]
    inv["amount_paid"] += paid_now
    inv["amount_paid_off_stripe"] += off_stripe
    inv["status"] = "paid"
    inv["status_transitions"]["paid_at"] = now
    inv["next_payment_attempt"] = None
    inv["attempted"] = inv["attempted"] or paid_now > 0
    recompute(state, inv)
    record_payments_paid(state, ctx, inv, now)
    state.emit("invoice.paid", inv["id"], ctx)
    if off_stripe == 0 and paid_now > 0:
        state.emit("invoice.payment_succeeded", inv["id"], ctx)


def void(state: State, ctx: RequestContext | None, inv: dict[str, Any]) -> None:
    """open | uncollectible → void."""
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
    cancel_open_payments(state, inv, "void_invoice")
    recompute(state, inv)
    state.emit("invoice.voided", inv["id"], ctx)


def default_payment_method(state: State, inv: dict[str, Any]) -> str | None:
    """The invoice's default payment method, else its customer's."""
    if inv["default_payment_method"]:
        return inv["default_payment_method"]
    customer = state.objects.get(inv["customer"])
    return customer["invoice_settings"]["default_payment_method"] if customer else None


def schedule_retry(inv: dict[str, Any], now: int) -> None:
    """After a failed attempt: Stripe retries auto-advancing invoices every 3 days, 4 attempts."""
    retry = inv["auto_advance"] and inv["attempt_count"] < MAX_ATTEMPTS
    inv["next_payment_attempt"] = now + RETRY_DELAY if retry else None


def charge_invoice(state: State, ctx: RequestContext | None, inv: dict[str, Any], pm: str) -> None:
    """Attempt a card payment of the invoice's remaining amount with a test card."""
    card = TEST_CARDS[pm]
    pi = open_payment(state, inv)
    pi["amount"] = inv["amount_remaining"]
    inv["attempted"] = True
    inv["attempt_count"] += 1
    if card.outcome == "succeeded":
        charge = new_charge(state, inv, pi, pm, card, ok=True)
        pi.update(status="succeeded", amount_received=charge["amount"], last_payment_error=None)
        state.emit("charge.succeeded", charge["id"], ctx)
        state.emit("payment_intent.succeeded", pi["id"], ctx)
        settle(state, ctx, inv, off_stripe=0)
        return
    schedule_retry(inv, state.now())
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
    charge = new_charge(state, inv, pi, pm, card, ok=False)
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
        card.message or DECLINED,
        type="card_error",
        code=card.code,
        extra={"charge": charge["id"], "decline_code": card.decline_code},
    )


@route("POST", "/v1/invoices/{id}/finalize", "InvoiceFinalizeInvoiceParams")
def finalize_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    inv = state.get("invoice", id)
    if "auto_advance" in p and inv["status"] == "draft":
        inv["auto_advance"] = p["auto_advance"]
    finalize(state, ctx, inv)
    return rendered(state, id, p)


@route("POST", "/v1/invoices/{id}/send", "InvoiceSendInvoiceParams")
def send_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
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
    return rendered(state, id, p)


@route("POST", "/v1/invoices/{id}/void", "InvoiceVoidInvoiceParams")
def void_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    void(state, ctx, state.get("invoice", id))
    return rendered(state, id, p)


@route("POST", "/v1/invoices/{id}/mark_uncollectible", "InvoiceMarkUncollectibleParams")
def mark_uncollectible(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
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
    return rendered(state, id, p)


@route("POST", "/v1/invoices/{id}/pay", "InvoicePayParams")
def pay_invoice(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    unsupported(p, "source", "mandate")
    inv = state.get("invoice", id)
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid", "invoice")
    if inv["status"] == "void":
        raise invalid("This invoice has been voided and can no longer be paid.", "invoice")
    if "payment_method" in p and p.get("paid_out_of_band"):
        raise exclusive("paid_out_of_band", "payment_method")
    pm = payment_method(p.get("payment_method"))
    if inv["status"] == "draft":
        finalize(state, ctx, inv)
        if inv["status"] == "paid":
            return rendered(state, id, p)
    if p.get("paid_out_of_band"):
        cancel_open_payments(state, inv, "automatic")
        settle(state, ctx, inv, off_stripe=inv["amount_remaining"])
        return rendered(state, id, p)
    pm = pm or default_payment_method(state, inv)
    if pm is None:
        raise invalid(
            "This customer has no attached payment source or default payment method. Please "
            "consider adding a default payment method. For more information, visit "
            "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
            "#payment-method-priority.",
            "payment_method",
        )
    charge_invoice(state, ctx, inv, pm)
    return rendered(state, id, p)
