"""Invoice lifecycle rules (contract section 4), as pure functions.

States and the transitions allowed between them; when a draft is due to be issued; invoice
numbers. The warehouse code applies these rules and records every transition.
"""

from __future__ import annotations

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
