"""Service periods and invoice cut dates (contract section 3)."""

from __future__ import annotations

import calendar
import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.catalog.models import Plan, Price, Subscription
from pipelines.rating.periods import (
    ServicePeriod,
    anchor_date,
    billing_month,
    boundaries,
    period_ending_at,
    period_starting_at,
    service_periods,
)

FEE = Price(key="fee", type="flat", amount=Decimal("10.00"), cadence="in_advance")


def plan(period: str = "monthly") -> Plan:
    return Plan(key="p", name="P", currency="USD", billing_period=period,  # type: ignore[arg-type]
                prices=(FEE,))


def sub(start: date, anchor: int | None = None, end: date | None = None) -> Subscription:
    return Subscription(id="s", customer="c", plan="p", start_date=start, end_date=end,
                        billing_anchor=anchor)


def spans(periods: list[ServicePeriod]) -> list[tuple[date, date]]:
    return [(p.start, p.end) for p in periods]


def test_mid_month_start_with_anchor_1_gives_a_partial_first_period() -> None:
    periods = service_periods(sub(date(2026, 1, 20), anchor=1), plan(), date(2026, 4, 1))
    assert spans(periods) == [
        (date(2026, 1, 20), date(2026, 2, 1)),
        (date(2026, 2, 1), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 4, 1)),
    ]
    first = periods[0]
    assert (first.full_start, first.full_end) == (date(2026, 1, 1), date(2026, 2, 1))
    assert first.is_partial and not periods[1].is_partial
    assert first.fraction == Fraction(12, 31)  # Jan 20..31 = 12 days of January's 31
    assert [p.index for p in periods] == [0, 1, 2]
    assert first.start_at == datetime(2026, 1, 20, tzinfo=UTC)
    assert first.end_at == datetime(2026, 2, 1, tzinfo=UTC)


def test_start_on_the_anchor_day_is_a_full_first_period() -> None:
    periods = service_periods(sub(date(2026, 3, 10)), plan(), date(2026, 5, 11))
    assert spans(periods) == [
        (date(2026, 3, 10), date(2026, 4, 10)),
        (date(2026, 4, 10), date(2026, 5, 10)),
        (date(2026, 5, 10), date(2026, 6, 10)),
    ]
    assert not any(p.is_partial for p in periods)


def test_anchor_31_clamps_to_february_without_drifting_non_leap() -> None:
    periods = service_periods(sub(date(2026, 1, 31)), plan(), date(2026, 6, 1))
    # anchor 31: Jan 31, Feb 28 (2026 is not leap), then back to Mar 31, Apr 30, May 31
    assert [p.end for p in periods] == [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30),
                                        date(2026, 5, 31), date(2026, 6, 30)]
    assert not any(p.is_partial for p in periods)


def test_anchor_31_in_a_leap_february_2028() -> None:
    periods = service_periods(sub(date(2028, 1, 31)), plan(), date(2028, 4, 1))
    assert [p.end for p in periods] == [date(2028, 2, 29), date(2028, 3, 31), date(2028, 4, 30)]


def test_start_mid_february_with_anchor_31_is_prorated_on_february() -> None:
    periods = service_periods(sub(date(2026, 2, 15), anchor=31), plan(), date(2026, 3, 1))
    first = periods[0]
    assert (first.start, first.end) == (date(2026, 2, 15), date(2026, 2, 28))
    assert (first.full_start, first.full_end) == (date(2026, 1, 31), date(2026, 2, 28))
    assert first.fraction == Fraction(13, 28)  # Feb 15..27 = 13 days of a 28-day period


def test_start_on_a_clamped_anchor_date_is_full() -> None:
    # anchor 31 in February 2026 is Feb 28: starting that day is a full period
    first = service_periods(sub(date(2026, 2, 28), anchor=31), plan(), date(2026, 3, 1))[0]
    assert (first.start, first.end, first.is_partial) == (date(2026, 2, 28), date(2026, 3, 31),
                                                          False)


def test_leap_day_start_monthly_and_yearly() -> None:
    monthly = service_periods(sub(date(2028, 2, 29)), plan(), date(2029, 3, 30))
    ends = [p.end for p in monthly]
    assert ends[:2] == [date(2028, 3, 29), date(2028, 4, 29)]
    assert date(2029, 2, 28) in ends and date(2029, 3, 29) in ends  # clamped, then back to 29
    yearly = service_periods(sub(date(2028, 2, 29)), plan("yearly"), date(2032, 3, 1))
    assert [p.end for p in yearly] == [date(2029, 2, 28), date(2030, 2, 28), date(2031, 2, 28),
                                       date(2032, 2, 29), date(2033, 2, 28)]


def test_start_and_end_mid_period_prorate_both_ends() -> None:
    s = sub(date(2026, 1, 20), anchor=1, end=date(2026, 4, 10))
    periods = service_periods(s, plan(), date(2027, 1, 1))
    assert spans(periods) == [
        (date(2026, 1, 20), date(2026, 2, 1)),
        (date(2026, 2, 1), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 4, 10)),
    ]
    last = periods[-1]
    assert (last.full_start, last.full_end) == (date(2026, 4, 1), date(2026, 5, 1))
    assert last.fraction == Fraction(9, 30)  # Apr 1..9 of April's 30 days
    assert boundaries(s, plan(), date(2027, 1, 1)) == [
        date(2026, 1, 20), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1), date(2026, 4, 10)]


def test_start_and_end_inside_one_period() -> None:
    s = sub(date(2026, 1, 10), anchor=1, end=date(2026, 1, 20))
    periods = service_periods(s, plan(), date(2026, 12, 31))
    assert len(periods) == 1
    only = periods[0]
    assert (only.start, only.end, only.full_start, only.full_end) == (
        date(2026, 1, 10), date(2026, 1, 20), date(2026, 1, 1), date(2026, 2, 1))
    assert only.fraction == Fraction(10, 31)
    assert boundaries(s, plan(), date(2026, 12, 31)) == [date(2026, 1, 10), date(2026, 1, 20)]


def test_end_on_an_anchor_date_adds_no_empty_period() -> None:
    s = sub(date(2026, 1, 1), end=date(2026, 3, 1))
    assert spans(service_periods(s, plan(), date(2027, 1, 1))) == [
        (date(2026, 1, 1), date(2026, 2, 1)), (date(2026, 2, 1), date(2026, 3, 1))]


def test_quarterly_on_the_anchor_day() -> None:
    periods = service_periods(sub(date(2025, 10, 1)), plan("quarterly"), date(2026, 7, 1))
    assert spans(periods) == [
        (date(2025, 10, 1), date(2026, 1, 1)),
        (date(2026, 1, 1), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 7, 1)),
    ]


def test_quarterly_mid_month_start_stubs_to_the_next_anchor_day() -> None:
    periods = service_periods(sub(date(2026, 1, 20), anchor=1), plan("quarterly"),
                              date(2026, 6, 1))
    first = periods[0]
    assert (first.start, first.end) == (date(2026, 1, 20), date(2026, 2, 1))
    assert (first.full_start, first.full_end) == (date(2025, 11, 1), date(2026, 2, 1))
    assert first.fraction == Fraction(12, 92)  # Nov 30 + Dec 31 + Jan 31 = 92 days
    assert spans(periods[1:]) == [(date(2026, 2, 1), date(2026, 5, 1)),
                                  (date(2026, 5, 1), date(2026, 8, 1))]


def test_quarterly_anchor_31_does_not_drift() -> None:
    periods = service_periods(sub(date(2026, 1, 31)), plan("quarterly"), date(2027, 1, 1))
    assert [p.end for p in periods] == [date(2026, 4, 30), date(2026, 7, 31), date(2026, 10, 31),
                                        date(2027, 1, 31)]


def test_yearly_mid_month_start_is_prorated_on_the_year() -> None:
    periods = service_periods(sub(date(2026, 3, 15), anchor=1), plan("yearly"), date(2027, 1, 1))
    first = periods[0]
    assert (first.start, first.end) == (date(2026, 3, 15), date(2026, 4, 1))
    assert (first.full_start, first.full_end) == (date(2025, 4, 1), date(2026, 4, 1))
    assert first.fraction == Fraction(17, 365)
    assert (periods[1].start, periods[1].end) == (date(2026, 4, 1), date(2027, 4, 1))


def test_until_bounds_periods_and_boundaries() -> None:
    s = sub(date(2026, 1, 1))
    # periods that *start* before until: the running one is included
    assert [p.start for p in service_periods(s, plan(), date(2026, 2, 15))] == [
        date(2026, 1, 1), date(2026, 2, 1)]
    assert [p.start for p in service_periods(s, plan(), date(2026, 2, 1))] == [date(2026, 1, 1)]
    # boundaries on or before until (until itself included)
    assert boundaries(s, plan(), date(2026, 2, 1)) == [date(2026, 1, 1), date(2026, 2, 1)]
    assert boundaries(s, plan(), date(2026, 1, 31)) == [date(2026, 1, 1)]
    assert boundaries(s, plan(), date(2025, 12, 31)) == []
    assert service_periods(s, plan(), date(2026, 1, 1)) == []


def test_periods_around_a_boundary() -> None:
    s = sub(date(2026, 1, 20), anchor=1, end=date(2026, 3, 1))
    assert period_ending_at(s, plan(), date(2026, 1, 20)) is None
    opening = period_starting_at(s, plan(), date(2026, 1, 20))
    assert opening is not None and opening.index == 0
    closing = period_ending_at(s, plan(), date(2026, 2, 1))
    assert closing is not None and closing.start == date(2026, 1, 20)
    assert period_starting_at(s, plan(), date(2026, 3, 1)) is None  # end_date opens nothing


def test_anchor_date_clamps_to_month_end() -> None:
    assert anchor_date(2026, 2, 31) == date(2026, 2, 28)
    assert anchor_date(2028, 2, 30) == date(2028, 2, 29)
    assert anchor_date(2026, 4, 31) == date(2026, 4, 30)
    with pytest.raises(ValueError):
        anchor_date(2026, 1, 32)


@pytest.mark.parametrize(("day", "month"), [(date(2026, 1, 1), "2026-01"),
                                            (date(2025, 12, 31), "2025-12"),
                                            (date(2028, 2, 29), "2028-02")])
def test_billing_month_is_the_utc_month_of_the_boundary(day: date, month: str) -> None:
    assert billing_month(day) == month


@given(
    start=st.dates(min_value=date(2020, 1, 1), max_value=date(2034, 12, 31)),
    anchor=st.one_of(st.none(), st.integers(min_value=1, max_value=31)),
    period=st.sampled_from(["monthly", "quarterly", "yearly"]),
    length=st.one_of(st.none(), st.integers(min_value=1, max_value=2000)),
)
def test_period_invariants(start: date, anchor: int | None, period: str,
                           length: int | None) -> None:
    end = None if length is None else start + timedelta(days=length)
    s = sub(start, anchor=anchor, end=end)
    until = start + timedelta(days=2200)
    periods = service_periods(s, plan(period), until)
    anchor_day = anchor or start.day
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}[period]
    assert periods and periods[0].start == start
    for i, p in enumerate(periods):
        assert p.index == i
        assert p.full_start <= p.start < p.end <= p.full_end
        assert 0 < p.fraction <= 1
        # every full period starts and ends on the (clamped) anchor day, `months` apart
        for edge in (p.full_start, p.full_end):
            assert edge.day == min(anchor_day, calendar.monthrange(edge.year, edge.month)[1])
        gap = (p.full_end.year - p.full_start.year) * 12 + p.full_end.month - p.full_start.month
        assert gap == months
        if 0 < i < len(periods) - 1:
            assert not p.is_partial  # only the first and the last may be partial
    for before, after in itertools.pairwise(periods):
        assert before.end == after.start  # contiguous: no day billed twice or skipped
    if end is not None and periods[-1].end <= until:
        assert periods[-1].end == end
    # a partial first period ends on the first anchor date after start, within a month
    if periods[0].is_partial and periods[0].end != end:
        assert periods[0].end <= start + timedelta(days=31)
    if not periods[0].is_partial:
        assert periods[0].full_start == start
    cuts = boundaries(s, plan(period), until)
    assert cuts == sorted(set(cuts)) and cuts[0] == start
    assert cuts[1:] == [p.end for p in periods if p.end <= until]
