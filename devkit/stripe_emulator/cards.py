"""Stripe's test payment methods (``pm_card_visa``, ``pm_card_chargeDeclined``, ...).

They are accepted anywhere a payment method is, without being attached to the customer first;
each one always succeeds, declines the same way or asks for authentication.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import invalid


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    outcome: str  # succeeded | declined | requires_action
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


DECLINED = "Your card was declined."
TEST_CARDS = {
    "pm_card_visa": TestCard("visa", "4242", "succeeded"),
    "pm_card_mastercard": TestCard("mastercard", "4444", "succeeded"),
    "pm_card_amex": TestCard("amex", "8431", "succeeded"),
    "pm_card_visa_debit": TestCard("visa", "5556", "succeeded"),
    "pm_card_chargeDeclined": TestCard(
        "visa", "0002", "declined", "card_declined", "generic_decline", DECLINED
    ),
    "pm_card_visa_chargeDeclined": TestCard(
        "visa", "0341", "declined", "card_declined", "generic_decline", DECLINED
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
HOSTED_PAGE_CARD = "pm_card_visa"
# The test card that declines with each decline code (the payment_failed test action).
DECLINING_CARDS = {
    "generic_decline": "pm_card_chargeDeclined",
    "insufficient_funds": "pm_card_chargeDeclinedInsufficientFunds",
    "expired_card": "pm_card_chargeDeclinedExpiredCard",
    "incorrect_cvc": "pm_card_chargeDeclinedIncorrectCvc",
    "processing_error": "pm_card_chargeDeclinedProcessingError",
}
AUTHENTICATION_CARD = "pm_card_authenticationRequired"


def payment_method(pm: Any, param: str = "payment_method") -> str | None:
    """A ``payment_method`` parameter: ``None`` when absent or ``""``, 404 if not a test card."""
    if pm in (None, ""):
        return None
    if pm not in TEST_CARDS:
        raise invalid(f"No such PaymentMethod: '{pm}'", param, "resource_missing", status=404)
    return pm
