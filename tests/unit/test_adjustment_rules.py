"""Draft adjustments priced by the rating's own rules (contract section 9): amounts rounded once,
kept out of the minimum commitment, discounted by percentage discounts only when positive, and a
credit never taking an invoice below zero. Every expected amount is worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from pipelines.catalog.models import Discount
from pipelines.rating.invoices import (
    ADJUSTMENT_LIMIT,
    Adjustment,
    InvoiceDraft,
    adjust_draft,
    adjustment_amount,
    adjustment_line_id,
    build_invoice,
)
from tests.unit.test_rating_invoices import METERS, PRO, PRO_NO_MINIMUM, subscription

D = Decimal
JAN_1, FEB_1, MAR_1 = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def onboarding(amount: str = "30.00", key: str = "a") -> Adjustment:
    return Adjustment(adjustment_line_id("inv_x", key), "Onboarding workshop", D(amount))


def credit(amount: str, key: str = "c") -> Adjustment:
    return Adjustment(adjustment_line_id("inv_x", key), "Outage credit", D(amount))


def lines(invoice: InvoiceDraft) -> list[tuple[str, str, str]]:
    return [(line.line_type, line.price_key, str(line.amount)) for line in invoice.lines]


def totals(invoice: InvoiceDraft) -> tuple[Decimal, Decimal, Decimal]:
    return invoice.subtotal, invoice.discount_total, invoice.total


# ------------------------------------------------------------------ amounts


@pytest.mark.parametrize(("currency", "given", "expected"), [
    ("USD", {"amount": D("12.345")}, "12.35"),       # half away from zero
    ("USD", {"amount": D("-0.005")}, "-0.01"),       # a credit rounds away from zero too
    ("JPY", {"amount": D("1500.5")}, "1501"),
    ("KWD", {"amount": D("1.2345")}, "1.235"),
    # exact product then one rounding: 3 x 0.125 = 0.375 -> 0.38 (0.13 x 3 would be 0.39)
    ("USD", {"quantity": D("3"), "unit_price": D("0.125")}, "0.38"),
    ("USD", {"quantity": D("2.5"), "unit_price": D("-4.00")}, "-10.00"),
])
def test_an_adjustment_is_rounded_once_to_the_currency(currency: str, given: dict,
                                                       expected: str) -> None:
    assert str(adjustment_amount(currency, **given)) == expected


@pytest.mark.parametrize(("given", "words"), [
    ({}, "quantity: required"),
    ({"quantity": D(2)}, "unit_price: required"),
    ({"amount": D(1), "quantity": D(1), "unit_price": D(1)}, "not both"),
    ({"quantity": D(0), "unit_price": D(5)}, "quantity: must be positive"),
    ({"quantity": D(-1), "unit_price": D(5)}, "quantity: must be positive"),
    ({"amount": D("0.004")}, "amount: the adjustment rounds to 0.00 USD"),
])
def test_an_adjustment_of_nothing_or_of_two_kinds_is_refused(given: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        adjustment_amount("USD", **given)


@pytest.mark.parametrize(("given", "expected"), [
    ({"amount": D("999999999999999999.99")}, "999999999999999999.99"),
    ({"amount": D("-999999999999999999.99")}, "-999999999999999999.99"),
    # 3 x 333333333333333333.33 = 999999999999999999.99
    ({"quantity": D("3"), "unit_price": D("333333333333333333.33")}, "999999999999999999.99"),
])
def test_an_adjustment_just_below_the_limit_is_accepted(given: dict, expected: str) -> None:
    assert D(10) ** 18 == ADJUSTMENT_LIMIT
    assert str(adjustment_amount("USD", **given)) == expected


@pytest.mark.parametrize(("given", "words"), [
    ({"amount": D("1E+30")}, r"amount: must be less than 10\^18 in absolute value"),
    ({"amount": D("-1000000000000000000")}, r"amount: must be less than 10\^18"),
    # below the limit as asked, but 999999999999999999.995 rounds to 10^18
    ({"amount": D("999999999999999999.995")}, r"amount: .*rounds to 1000000000000000000\.00"),
    ({"quantity": D("1E+18"), "unit_price": D("0.000001")}, r"quantity: must be less than 10\^18"),
    ({"quantity": D(1), "unit_price": D("-1E+25")}, r"unit_price: must be less than 10\^18"),
    # each factor is fine, the amount they come to is not: 10^9 x 10^9 = 10^18
    ({"quantity": D("1000000000"), "unit_price": D("1000000000")},
     r"unit_price: quantity x unit_price comes to 1000000000000000000\.00 USD"),
    ({"amount": D("Infinity")}, r"amount: must be less than 10\^18"),
])
def test_an_adjustment_beyond_what_the_ledger_holds_is_refused(given: dict, words: str) -> None:
    """Amounts, quantities, unit prices and the amount they come to stay below 10^18 in
    absolute value, so an invoice's lines and totals stay exact in DECIMAL(38, 12)."""
    with pytest.raises(ValueError, match=words):
        adjustment_amount("USD", **given)


def test_adjustment_line_ids_are_deterministic_and_never_collide() -> None:
    assert adjustment_line_id("inv_1", "inbox:7:0") == adjustment_line_id("inv_1", "inbox:7:0")
    assert adjustment_line_id("inv_1", "inbox:7:0").startswith("il_")
    assert len({adjustment_line_id("inv_1", "inbox:7:0"), adjustment_line_id("inv_1", "inbox:7:1"),
                adjustment_line_id("inv_2", "inbox:7:0")}) == 3


# ------------------------------------------------------------------ totals


def zero_usage_february(**fields: object) -> InvoiceDraft:
    """PRO from Jan 1, no usage, cut on Feb 1: January's top-up 40.00 (10.00 fee billed on Jan 1
    + 0 usage < 50.00) and February's fee 10.00 in advance."""
    return build_invoice(subscription(JAN_1, **fields), PRO, METERS, FEB_1, {})


def test_a_percent_discount_takes_its_share_of_a_positive_adjustment_not_of_a_credit() -> None:
    sub = subscription(JAN_1, discounts=(Discount("percentage", percent=D("20")),))
    rated = build_invoice(sub, PRO, METERS, FEB_1, {})
    assert totals(rated) == (D("50.00"), D("10.00"), D("40.00"))   # 8.00 + 2.00 off
    adjusted = adjust_draft(rated, sub, PRO, [onboarding("30.00"), credit("-25.00")])
    # rated lines unchanged; the adjustments after them, then the discounts:
    # January 20% of 40.00 = 8.00, February's fee 20% of 10.00 = 2.00, and 20% of the positive
    # adjustment 30.00 = 6.00 on its own line; the credit -25.00 is not discounted.
    assert lines(adjusted) == [
        ("usage", "api_calls", "0.00"), ("usage", "storage", "0.00"),
        ("usage", "exports", "0.00"), ("minimum_commitment", "minimum_commitment", "40.00"),
        ("flat", "platform_fee", "10.00"),
        ("adjustment", "adjustment", "30.00"), ("adjustment", "adjustment", "-25.00"),
        ("discount", "discount_0", "-8.00"), ("discount", "discount_0", "-2.00"),
        ("discount", "discount_0_adjustments", "-6.00")]
    # subtotal 50.00 + 30.00 - 25.00 = 55.00; discounts 16.00; total 39.00
    assert totals(adjusted) == (D("55.00"), D("16.00"), D("39.00"))
    discount = adjusted.lines[-1]
    assert discount.description == "Discount 20% on adjustments 2026-01-01 \u2013 2026-02-01"
    assert discount.line_id != adjusted.lines[-3].line_id


def test_an_adjustment_does_not_count_towards_the_minimum_commitment() -> None:
    sub = subscription(JAN_1)
    rated = zero_usage_february()
    # +30.00: the 40.00 top-up stays (the commitment is on what the plan charges), so the
    # customer pays exactly 30.00 more: 50.00 -> 80.00
    more = adjust_draft(rated, sub, PRO, [onboarding("30.00")])
    assert ("minimum_commitment", "minimum_commitment", "40.00") in lines(more)
    assert totals(more) == (D("80.00"), D("0.00"), D("80.00"))
    # a credit of 45.00 is not swallowed by the top-up either: 50.00 -> 5.00
    less = adjust_draft(rated, sub, PRO, [credit("-45.00")])
    assert ("minimum_commitment", "minimum_commitment", "40.00") in lines(less)
    assert totals(less) == (D("5.00"), D("0.00"), D("5.00"))


def test_re_rating_with_the_adjustment_changes_the_top_up_by_usage_only() -> None:
    sub = subscription(JAN_1)
    # 3,000 calls: 20.00 + 2,000 x 0.008 = 36.00; + 10.00 fee = 46.00 -> top-up 4.00
    usage = {("api_requests", JAN_1): D(3000)}
    rated = build_invoice(sub, PRO, METERS, FEB_1, usage)
    adjusted = adjust_draft(rated, sub, PRO, [onboarding("30.00")])
    assert ("minimum_commitment", "minimum_commitment", "4.00") in lines(adjusted)
    assert adjusted.total == D("80.00")        # 36.00 + 4.00 + 10.00 (February) + 30.00
    # late usage: 4,000 calls -> 44.00 + 10.00 = 54.00: no top-up; the adjustment is kept
    rerated = adjust_draft(build_invoice(sub, PRO, METERS, FEB_1,
                                         {("api_requests", JAN_1): D(4000)}),
                           sub, PRO, [onboarding("30.00")])
    assert [t for t, _, _ in lines(rerated)].count("minimum_commitment") == 0
    assert rerated.total == D("84.00")         # 44.00 + 10.00 + 30.00


def test_a_fixed_discount_never_applies_to_adjustments() -> None:
    fixed = (Discount("fixed", amount=D("500")),)
    sub = subscription(JAN_1, discounts=fixed)
    rated = zero_usage_february(discounts=fixed)
    assert rated.total == D("0.00")            # everything the plan charges is taken off
    adjusted = adjust_draft(rated, sub, PRO, [onboarding("30.00")])
    assert totals(adjusted) == (D("80.00"), D("50.00"), D("30.00"))


def test_a_credit_takes_at_most_what_is_left_of_the_invoice() -> None:
    sub = subscription(JAN_1)
    rated = zero_usage_february()              # 50.00
    first, second = credit("-30.00", "c1"), credit("-30.00", "c2")
    adjusted = adjust_draft(rated, sub, PRO, [first, second])
    # -30.00 then only 20.00 is left: the second credit's line carries -20.00
    assert [str(line.amount) for line in adjusted.lines if line.line_type == "adjustment"] == [
        "-30.00", "-20.00"]
    assert totals(adjusted) == (D("0.00"), D("0.00"), D("0.00"))
    # a charge before the credits makes room for them
    roomy = adjust_draft(rated, sub, PRO, [first, second, onboarding("15.00")])
    assert [str(line.amount) for line in roomy.lines if line.line_type == "adjustment"] == [
        "-30.00", "-30.00", "15.00"]
    assert roomy.total == D("5.00")


def test_adjustments_are_discounted_only_in_periods_the_discount_covers() -> None:
    discounts = (Discount("percentage", percent=D("10"), periods=1),)
    sub = subscription(JAN_1, discounts=discounts, plan=PRO_NO_MINIMUM)
    covered = adjust_draft(build_invoice(sub, PRO_NO_MINIMUM, METERS, FEB_1, {}), sub,
                           PRO_NO_MINIMUM, [onboarding("30.00")])
    # the Feb 1 cut closes January (period 0, covered): 10% of 30.00 = 3.00
    assert ("discount", "discount_0_adjustments", "-3.00") in lines(covered)
    later = adjust_draft(build_invoice(sub, PRO_NO_MINIMUM, METERS, MAR_1, {}), sub,
                         PRO_NO_MINIMUM, [onboarding("30.00")])
    # the Mar 1 cut closes February (period 1): not covered
    assert [t for t, _, _ in lines(later)].count("discount") == 0
    assert later.total == D("40.00")           # 0 usage + March's fee 10.00 + 30.00


def test_adjustment_lines_belong_to_the_period_the_invoice_closes_else_opens() -> None:
    sub = subscription(date(2026, 1, 20), billing_anchor=1)
    first = build_invoice(sub, PRO, METERS, date(2026, 1, 20), {})   # opens Jan 20 - Feb 1
    line = adjust_draft(first, sub, PRO, [onboarding()]).lines[-1]
    assert (line.line_type, line.period_start, line.period_end) == (
        "adjustment", date(2026, 1, 20), FEB_1)
    closing = build_invoice(sub, PRO, METERS, FEB_1, {})             # closes Jan 20 - Feb 1
    line = next(x for x in adjust_draft(closing, sub, PRO, [onboarding()]).lines
                if x.line_type == "adjustment")
    assert (line.period_start, line.period_end) == (date(2026, 1, 20), FEB_1)


def test_an_adjustment_line_explains_its_amount() -> None:
    sub = subscription(JAN_1)
    hours = Adjustment(adjustment_line_id("inv_x", "h"), "Support hours", D("450.00"),
                       quantity=D(3), unit_price=D("150.00"))
    line = adjust_draft(zero_usage_february(), sub, PRO, [hours]).lines[-1]
    assert (line.line_id, line.price_key, line.meter_key, line.description) == (
        hours.line_id, "adjustment", None, "Support hours")
    assert (line.quantity, line.unit_price, line.amount, line.tiers) == (
        D(3), D("150.00"), D("450.00"), ())


def test_adjusting_is_repeatable_and_removing_every_adjustment_gives_the_rating_back() -> None:
    sub = subscription(JAN_1, discounts=(Discount("percentage", percent=D("20")),))
    rated = build_invoice(sub, PRO, METERS, FEB_1, {})
    wanted = [onboarding("30.00"), credit("-25.00")]
    once = adjust_draft(rated, sub, PRO, wanted)
    assert adjust_draft(once, sub, PRO, wanted) == once
    assert adjust_draft(once, sub, PRO, []) == rated
    assert adjust_draft(once, sub, PRO, wanted[:1]).total == D("64.00")  # 40.00 + 30.00 - 6.00


def test_a_draft_of_another_subscription_is_refused() -> None:
    rated = zero_usage_february()
    with pytest.raises(ValueError, match="not of subscription"):
        adjust_draft(rated, replace(subscription(JAN_1), id="sub_2"), PRO, [onboarding()])
