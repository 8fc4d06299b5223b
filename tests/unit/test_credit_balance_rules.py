"""The pure credit balance rules (contract section 9, `corrections: next_invoice`): no invoice
total below zero, the excess carried over, a balance used up by the following invoices, and
nothing lost on the way."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pipelines.rating.credit_balance import DraftToSettle, apply_credit, settle_drafts

D = Decimal

# amounts in USD minor units, as every invoice line is
cents = st.integers(min_value=-500_000, max_value=500_000).map(lambda c: D(c) / 100)
balances = st.integers(min_value=0, max_value=500_000).map(lambda c: D(c) / 100)


def test_a_credit_larger_than_the_invoice_is_carried_over():
    # next invoice: 50.00 of charges, a correction of -63.00 -> total 0, 13.00 carried over
    applied = apply_credit(D("-13.00"), available=D("0"))
    assert (applied.used, applied.carried_over, applied.total) == (D("0"), D("13.00"), D("0"))
    assert applied.line_amount == D("13.00")


def test_a_balance_is_used_up_to_the_total():
    # the invoice after: 50.00 absorbs the 13.00 balance -> 37.00
    applied = apply_credit(D("50.00"), available=D("13.00"))
    assert (applied.used, applied.carried_over, applied.total) == (D("13.00"), D("0"), D("37.00"))
    # a balance larger than the invoice leaves the rest for later
    applied = apply_credit(D("50.00"), available=D("80.00"))
    assert (applied.used, applied.total, applied.line_amount) == (D("50.00"), D("0"), D("-50.00"))


def test_a_negative_balance_gives_nothing():
    assert apply_credit(D("50.00"), available=D("-5.00")).used == D("0")


def test_drafts_share_a_balance_in_order_and_do_not_use_each_others_carry_over():
    settled = settle_drafts([DraftToSettle("mar", D("30.00")), DraftToSettle("mar_b", D("-8.00")),
                             DraftToSettle("apr", D("50.00"))], available=D("40.00"))
    assert [(d.invoice_id, a.used, a.carried_over, a.total) for d, a in settled] == [
        ("mar", D("30.00"), D("0"), D("0.00")),
        ("mar_b", D("0"), D("8.00"), D("0.00")),
        ("apr", D("10.00"), D("0"), D("40.00")),
    ]


@given(total=cents, available=balances)
def test_never_below_zero_and_within_what_is_available(total, available):
    applied = apply_credit(total, available)
    assert applied.total >= 0
    assert 0 <= applied.used <= available
    assert applied.carried_over >= 0
    assert applied.used == 0 or applied.carried_over == 0
    # the total only moves by the credit line
    assert applied.total == total + applied.line_amount


@given(totals=st.lists(cents, max_size=12), opening=balances)
def test_nothing_is_lost_over_a_sequence_of_invoices(totals, opening):
    """Invoice after invoice (each issued before the next, so what one carries over is available
    to the next): granted = used + remaining, the balance never below zero, and every invoice
    total is what its lines came to, less what it used, plus what it carried over."""
    granted, used, balance = opening, D(0), opening
    for total in totals:
        [(_, applied)] = settle_drafts([DraftToSettle("inv", total)], balance)
        assert applied.total >= 0
        assert applied.total == max(total, D(0)) - applied.used
        granted += applied.carried_over
        used += applied.used
        balance += applied.balance_movement
        assert balance >= 0
        assert granted == used + balance
    assert sum((max(t, D(0)) for t in totals), D(0)) - used >= 0


@given(totals=st.lists(cents, max_size=12), available=balances)
def test_drafts_settled_together_never_use_more_than_available(totals, available):
    settled = settle_drafts([DraftToSettle(f"d{i}", t) for i, t in enumerate(totals)],
                            available)
    used = sum((a.used for _, a in settled), D(0))
    assert used <= available
    assert all(a.total >= 0 for _, a in settled)
    # the balance is used as early as it can be: a later draft only uses what earlier left
    left = available
    for _, applied in settled:
        assert applied.used == min(max(applied.total_before_credit, D(0)), left)
        left -= applied.used
