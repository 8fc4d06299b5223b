"""The invoice lifecycle rules (contract section 4) as pure functions, and the status-change
planner every caller goes through."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from pipelines.invoicing.status import StatusChange, plan_changes
from pipelines.rating.lifecycle import (
    PAYMENT_TRIGGERS,
    POST_ISSUE,
    STATUSES,
    TRANSITIONS,
    can_transition,
    has_own_number_form,
    invoice_number,
    is_frozen,
    payment_path,
    transition_path,
)


def test_contract_paths():
    assert transition_path("draft", "issued") == ["issued"]
    assert transition_path("issuing", "payment_processing.pending") == [
        "issued", "payment_processing.pending"]
    assert transition_path("draft.syncing", "issuing.syncing") == ["issuing", "issuing.syncing"]
    assert transition_path("issued", "paid") == ["payment_processing.pending", "paid"]
    assert transition_path("paid", "partially_refunded") == ["partially_refunded"]
    assert transition_path("partially_refunded", "refunded") == ["refunded"]
    assert transition_path("overdue", "overdue") == []


def test_no_state_regresses():
    # a late payment_failed after paid is ignored, as is anything after a void or a refund
    assert transition_path("paid", "payment_processing.failed") is None
    assert transition_path("paid", "overdue") is None
    assert transition_path("voided", "paid") is None
    assert transition_path("refunded", "partially_refunded") is None
    assert transition_path("issued", "draft") is None


def test_payment_events_never_skip_the_sync_states():
    assert payment_path("issuing.syncing", "paid") is None
    assert payment_path("draft", "paid") is None
    assert payment_path("payment_processing.failed", "paid") == ["paid"]
    # every custom invoicing trigger lands on a post-issue state
    assert set(PAYMENT_TRIGGERS.values()) <= POST_ISSUE


@given(st.sampled_from(sorted(STATUSES)), st.sampled_from(sorted(STATUSES)))
def test_a_path_is_made_of_allowed_moves(start: str, target: str):
    path = transition_path(start, target)
    if path is None:
        return
    steps = [start, *path]
    assert all(can_transition(a, b) for a, b in pairwise(steps))
    assert path[-1:] == ([target] if start != target else [])
    # shortest: no state twice
    assert len(set(steps)) == len(steps)


@given(st.sampled_from(sorted(STATUSES)), st.sampled_from(sorted(STATUSES)))
def test_moves_never_lead_back(start: str, target: str):
    # the lifecycle is acyclic except the sync retry loops (syncing <-> sync_failed)
    retry_loop = {start, target} <= {"draft.syncing", "draft.sync_failed"} or {
        start, target} <= {"issuing.syncing", "issuing.sync_failed"}
    if start != target and transition_path(start, target) and not retry_loop:
        assert transition_path(target, start) is None


def test_frozen_past_draft():
    assert not is_frozen("draft") and not is_frozen("draft.syncing")
    assert all(is_frozen(s) for s in POST_ISSUE | {"issuing", "issuing.syncing"})
    assert set(TRANSITIONS) == STATUSES


def test_plan_changes_compose_in_request_order():
    statuses = {"inv_a": "issued", "inv_b": "paid"}
    changes = [
        StatusChange("inv_a", "paid", "invoice.paid", "stripe", payment_side=True),
        StatusChange("inv_a", "refunded", "charge.refunded", "stripe", payment_side=True),
        # delivered twice
        StatusChange("inv_a", "refunded", "charge.refunded", "stripe", payment_side=True),
        # out of order: a failure after the payment
        StatusChange("inv_b", "payment_processing.failed", "invoice.payment_failed", "stripe",
                     payment_side=True),
        StatusChange("inv_zzz", "paid", "invoice.paid", "stripe", payment_side=True),
    ]
    outcomes = plan_changes(statuses, changes)
    assert [(o.outcome, o.path, o.status) for o in outcomes] == [
        ("applied", ("payment_processing.pending", "paid"), "paid"),
        ("applied", ("refunded",), "refunded"),
        ("already", (), "refunded"),
        ("ignored", (), "paid"),
        ("unknown_invoice", (), None),
    ]


def test_an_integrations_number_of_our_own_form_is_recognised():
    """Our sequences give INV-/CN-YYYYMM-NNNNN; an integration's number of that form could
    collide with one they give later, its own series cannot."""
    assert has_own_number_form(invoice_number("2026-02", 3), "INV")
    assert has_own_number_form("CN-202602-00001", "CN")
    assert has_own_number_form("cn-202602-123456", "CN")       # any case, a sixth digit
    assert has_own_number_form(" INV-202602-00001 ", "INV")
    assert not has_own_number_form("CN-202602-00001", "INV")   # each document its own prefix
    assert not has_own_number_form("ERP-CN-2026-0001", "CN")
    assert not has_own_number_form("CN-2026-00001", "CN")      # not a YYYYMM month
    assert not has_own_number_form("CN-202602-0001", "CN")     # fewer than five digits
    assert not has_own_number_form("CN-202602-00001-A", "CN")
