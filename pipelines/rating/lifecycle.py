"""Invoice lifecycle rules (contract section 4), as pure functions.

States and the transitions allowed between them; when a draft is due to be issued; invoice
numbers. The warehouse code applies these rules and records every transition.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

DRAFT = "draft"
ISSUED = "issued"

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"draft.syncing", "issuing", "issued"}),
    "draft.syncing": frozenset({"issuing", "draft.sync_failed"}),
    "draft.sync_failed": frozenset({"draft.syncing"}),
    "issuing": frozenset({"issuing.syncing", "issued"}),
    "issuing.syncing": frozenset({"issued", "issuing.sync_failed"}),
    "issuing.sync_failed": frozenset({"issuing.syncing"}),
    "issued": frozenset({"payment_processing.pending"}),
    "payment_processing.pending": frozenset({
        "paid", "payment_processing.failed", "payment_processing.action_required",
        "overdue", "uncollectible", "voided"}),
    "payment_processing.failed": frozenset({"paid", "overdue", "uncollectible", "voided"}),
    "payment_processing.action_required": frozenset({
        "paid", "overdue", "uncollectible", "voided"}),
    "overdue": frozenset({"paid", "uncollectible", "voided"}),
    "uncollectible": frozenset({"paid", "voided"}),
    "paid": frozenset({"refunded", "partially_refunded"}),
    "partially_refunded": frozenset({"refunded"}),
    "refunded": frozenset(),
    "voided": frozenset(),
}
STATUSES = frozenset(TRANSITIONS)


def can_transition(from_status: str, to_status: str) -> bool:
    """Whether the contract allows the move; no state ever regresses."""
    return to_status in TRANSITIONS.get(from_status, frozenset())


def is_frozen(status: str) -> bool:
    """An issued invoice (anything past draft) never changes; differences become adjustments."""
    return status not in (DRAFT, "draft.syncing", "draft.sync_failed")


def issue_after(boundary: date, grace_period: timedelta) -> datetime:
    """The instant a draft may be issued: the boundary's UTC midnight plus the grace period
    that waits for late events."""
    return datetime.combine(boundary, time(0), tzinfo=UTC) + grace_period


def invoice_number(billing_month: str, sequence: int) -> str:
    """INV-YYYYMM-NNNNN, the sequence counted per billing month from 1 (a sixth digit appears
    only past 99,999 invoices in a month)."""
    if sequence < 1:
        raise ValueError(f"invoice sequence {sequence} must start at 1")
    return f"INV-{billing_month.replace('-', '')}-{sequence:05d}"


INVOICE_NUMBER_PREFIX = "INV"
CREDIT_NOTE_NUMBER_PREFIX = "CN"


def has_own_number_form(number: str, prefix: str) -> bool:
    """Whether `number` looks like one the ledger gives itself, `<prefix>-YYYYMM-NNNNN` (INV for
    invoices, CN for credit notes; any case, five or more digits). An integration may bring its
    own numbers, but not of this form: the ledger's gap-free sequence counts only the numbers it
    gave, so it could later give the same number to another document."""
    return re.fullmatch(rf"{re.escape(prefix)}-\d{{6}}-\d{{5,}}", number.strip(),
                        flags=re.IGNORECASE) is not None


# States an invoice reaches once issued: provider events and payment callbacks act only here.
POST_ISSUE = frozenset({
    "issued", "payment_processing.pending", "payment_processing.failed",
    "payment_processing.action_required", "overdue", "uncollectible", "paid",
    "partially_refunded", "refunded", "voided"})


def transition_path(from_status: str, to_status: str) -> list[str] | None:
    """The shortest chain of allowed transitions from one state to another, excluding the
    start (`[]` when already there), or None when the contract allows no way there: the
    target would be a regression, as a late `payment_failed` after `paid` is."""
    if from_status == to_status:
        return []
    previous: dict[str, str] = {from_status: from_status}
    frontier = [from_status]
    while frontier:
        following: list[str] = []
        for state in frontier:
            for nxt in sorted(TRANSITIONS.get(state, ())):
                if nxt in previous:
                    continue
                previous[nxt] = state
                if nxt == to_status:
                    chain = [nxt]
                    while previous[chain[-1]] != from_status:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                following.append(nxt)
        frontier = following
    return None


def payment_path(from_status: str, to_status: str) -> list[str] | None:
    """The chain a payment-side event (paid, failed, overdue, void, refund...) takes an issued
    invoice through, or None when it does not apply: the invoice is not issued yet (an event
    never skips the sync states) or the move would regress."""
    if from_status not in POST_ISSUE or to_status not in POST_ISSUE:
        return None
    return transition_path(from_status, to_status)


# Payment status triggers of the custom invoicing API (contract section 5) -> the state each
# moves an issued invoice to.
PAYMENT_TRIGGERS: dict[str, str] = {
    "paid": "paid",
    "payment_failed": "payment_processing.failed",
    "payment_uncollectible": "uncollectible",
    "payment_overdue": "overdue",
    "action_required": "payment_processing.action_required",
    "void": "voided",
    "refunded": "refunded",
}
