"""Documents a person makes by hand, as pure rules (contract section 9): a goodwill credit note
against an issued invoice, and the void of an issued invoice nobody has paid.

- A **manual credit note** credits an amount of the invoice (one line that corrects no line in
  particular) up to what remains creditable: the invoice total less its credit notes that are
  not voided (and less the credits its corrections put on a next invoice), and, with the tax
  its line carries at the invoice's rate, up to what remains of the total including tax. The
  amount is positive, before an exclusive tax (like the invoice's total) and written in the
  currency's minor units.
- A **void** cancels an issued invoice that is not paid. A paid invoice is credited instead (the
  money moved; the record has to keep saying so). A draft is not voided: it is re-rated or
  adjusted until it leaves draft.

Each rule returns the refusal to show, or None when the document may be made.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from pipelines.rating.money import minor_units, round_money

UNPAID_ISSUED = frozenset({
    "issued", "payment_processing.pending", "payment_processing.failed",
    "payment_processing.action_required", "overdue", "uncollectible"})
"""Issued and not paid: what `billing invoice void` accepts."""

PAID = frozenset({"paid", "partially_refunded", "refunded"})

CREDITABLE = (UNPAID_ISSUED | PAID) - {"refunded"}
"""Issued (paid or not), not voided, not refunded in full: what a manual credit note accepts."""


def void_refusal(invoice_id: str, status: str) -> str | None:
    """Why the invoice cannot be voided, or None."""
    if status in UNPAID_ISSUED:
        return None
    if status in PAID:
        return (f"invoice {invoice_id} is {status}: a paid invoice is not voided, credit it "
                f"instead (billing credit-note create --invoice {invoice_id} --amount ... "
                "--reason ...)")
    if status == "voided":
        return f"invoice {invoice_id} is already voided"
    return (f"invoice {invoice_id} is {status}, not issued: only an issued invoice is voided "
            "(a draft is re-rated or adjusted until it is issued)")


def parse_credit_amount(text: str, currency: str) -> Decimal | str:
    """The amount of a manual credit, or why it is refused: a positive decimal written in the
    currency's minor units (10.50 USD, 1500 JPY; not 10.505 USD)."""
    try:
        amount = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return f"amount {text!r} is not a decimal number"
    if not amount.is_finite() or amount <= 0:
        return f"amount {text} must be more than zero"
    digits = minor_units(currency)
    try:
        in_minor_units = amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)
    except InvalidOperation:
        return f"amount {text} is too large"
    if in_minor_units != amount:
        return f"amount {text} has more decimals than {currency} has ({digits})"
    return in_minor_units


def credit_refusal(invoice_id: str, status: str, amount: Decimal, remaining: Decimal,
                   currency: str, *, including_tax: Decimal | None = None,
                   remaining_including_tax: Decimal | None = None) -> str | None:
    """Why `amount` cannot be credited on the invoice, or None. `remaining` is the invoice total
    less what is already credited on it (credit notes not voided, next-invoice credits).

    The amount is a line amount, before an exclusive tax like the invoice's `total`; the credit
    note's line is taxed at the invoice's rate. `including_tax` (the credit with that tax) must
    also stay within `remaining_including_tax` (what remains of the invoice's total including
    tax): each credit's tax is rounded on its own, so credits in pieces could otherwise credit
    more tax than the invoice charged."""
    if status not in CREDITABLE:
        if status == "refunded":
            return f"invoice {invoice_id} is refunded in full: nothing is left to credit"
        return (f"invoice {invoice_id} is {status}: only an issued invoice (not voided) can be "
                "credited")
    if amount > remaining:
        return (f"amount {amount} {currency} is more than what remains creditable on invoice "
                f"{invoice_id}: {round_money(remaining, currency)} {currency} (its total less "
                "what is already credited on it)")
    if (including_tax is not None and remaining_including_tax is not None
            and including_tax > remaining_including_tax):
        return (f"amount {amount} {currency} is {round_money(including_tax, currency)} "
                f"{currency} including tax, more than what remains creditable on invoice "
                f"{invoice_id} including tax: {round_money(remaining_including_tax, currency)} "
                f"{currency} (its total including tax less what is already credited on it)")
    return None
