"""A customer's credit balance, as pure rules (contract section 9, `corrections: next_invoice`).

No invoice total goes below zero. When the lines of a draft (rated lines, adjustments, the
correction lines of earlier invoices) add up to less than zero, the excess is *carried over*:
a `credit_balance` line brings the invoice to zero and the customer's balance grows by that
amount. When they add up to more than zero and the customer has a balance, the invoice *uses*
as much of it as it can absorb: a negative `credit_balance` line, the balance shrinks.

Credit is counted per customer and currency. A draft is settled again at every re-rating, in a
fixed order (boundary, then invoice id), each draft seeing what the drafts before it used; what a
draft carries over becomes available to others only once that draft is issued (a draft can still
change), so the balance a draft sees never counts credit that could disappear.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CreditApplication:
    """What one invoice does to the customer's credit balance.

    ``used`` (>= 0) is taken from the balance and shown as a negative line; ``carried_over``
    (>= 0) is added to the balance and shown as a positive line; at most one is non-zero.
    ``total`` is the invoice total after the credit line: never below zero.
    """

    total_before_credit: Decimal
    used: Decimal
    carried_over: Decimal

    @property
    def total(self) -> Decimal:
        return self.total_before_credit + self.carried_over - self.used

    @property
    def line_amount(self) -> Decimal:
        """The amount of the invoice's `credit_balance` line (zero: no line)."""
        return self.carried_over - self.used

    @property
    def balance_movement(self) -> Decimal:
        """The change of the customer's balance: + carried over, - used."""
        return self.carried_over - self.used


def apply_credit(total_before_credit: Decimal, available: Decimal) -> CreditApplication:
    """How an invoice whose lines add up to `total_before_credit` meets a balance of `available`.

    A negative total is brought to zero and its excess carried over; a positive total absorbs
    at most itself and at most what is available (a balance at or below zero gives nothing).
    Amounts are already in the currency's minor units, so nothing is rounded here.
    """
    if total_before_credit < 0:
        return CreditApplication(total_before_credit, Decimal(0), -total_before_credit)
    used = min(total_before_credit, max(available, Decimal(0)))
    return CreditApplication(total_before_credit, used, Decimal(0))


@dataclass(frozen=True)
class DraftToSettle:
    """A draft of one customer and currency, with its lines' total before any credit line."""

    invoice_id: str
    total_before_credit: Decimal


def settle_drafts(drafts: Iterable[DraftToSettle],
                  available: Decimal) -> list[tuple[DraftToSettle, CreditApplication]]:
    """Settle one customer's drafts of one currency in the order given, starting from the
    balance `available` from issued invoices: each draft uses what the drafts before it left;
    what a draft carries over is not available to the others (it is credit only once issued)."""
    settled = []
    for draft in drafts:
        application = apply_credit(draft.total_before_credit, available)
        available -= application.used
        settled.append((draft, application))
    return settled
