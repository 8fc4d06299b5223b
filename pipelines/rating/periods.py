"""Service periods and invoice cut dates of a subscription (contract section 3).

Anchor dates are the subscription's anchor day (``billing_anchor``, default the start date's
day) in consecutive months, clamped to the month's end (anchor 31 gives Feb 28, or Feb 29 in a
leap year), at UTC midnight, stepping by the plan's 1, 3 or 12 months. Every anchor date is
computed from the original anchor day, so a clamped February never shifts later months
(anchor 31: Jan 31, Feb 28, Mar 31).

The first anchor date is the first date on or after ``start_date`` that falls on the anchor day;
the others step from it by the plan's period. The first service period runs from ``start_date``
to the first anchor date after it (a partial period when ``start_date`` is not itself an anchor
date); the last one ends at ``end_date``. A date ``d`` here always means ``d`` 00:00 UTC, and a
period's ``end`` is exclusive.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from functools import cache, lru_cache

from pipelines.catalog.models import Plan, Subscription


@dataclass(frozen=True)
class ServicePeriod:
    """One service period of a subscription: what a flat fee covers and usage is summed over.

    ``start``/``end`` is the period actually served ([start, end), UTC midnights);
    ``full_start``/``full_end`` is the full billing period containing it, so that a partial
    period (the first one after a mid-cycle start, the last one before an ``end_date``) can be
    prorated by days. ``index`` is the period's ordinal from the subscription start (0 for the
    first period, partial or not); discounts valid for N periods cover indexes 0 .. N-1.
    """

    start: date
    end: date
    full_start: date
    full_end: date
    index: int

    @property
    def is_partial(self) -> bool:
        """True when the period is shorter than the full billing period containing it."""
        return (self.start, self.end) != (self.full_start, self.full_end)

    @property
    def days(self) -> int:
        """Days served in this period."""
        return (self.end - self.start).days

    @property
    def full_days(self) -> int:
        """Days of the full billing period containing this one."""
        return (self.full_end - self.full_start).days

    @property
    def fraction(self) -> Fraction:
        """Days served / days of the full period: the exact proration factor of a flat fee."""
        return Fraction(self.days, self.full_days)

    @property
    def start_at(self) -> datetime:
        """The period's first instant (UTC midnight of ``start``), inclusive."""
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """The instant the period ends (UTC midnight of ``end``), exclusive."""
        return datetime.combine(self.end, time(0), tzinfo=UTC)


@cache
def anchor_date(year: int, month: int, anchor_day: int) -> date:
    """The anchor day in a given month, clamped to the month's last day (31 → Feb 28/29)."""
    if not 1 <= anchor_day <= 31:
        raise ValueError(f"anchor day must be 1-31, got {anchor_day}")
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def _shift_month(year: int, month: int, months: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + months
    return total // 12, total % 12 + 1


def _first_anchor_month(start: date, anchor_day: int) -> tuple[int, int]:
    """The month of the first anchor date on or after ``start``."""
    if anchor_date(start.year, start.month, anchor_day) >= start:
        return start.year, start.month
    return _shift_month(start.year, start.month, 1)


def service_periods(subscription: Subscription, plan: Plan, until: date) -> list[ServicePeriod]:
    """The subscription's service periods that start before ``until``, in order.

    The last period returned may still be running on ``until`` (its ``end`` is after it); none
    extends past the subscription's ``end_date``.
    """
    # computed through the end of until's month and cached, then cut: a billing run asks for
    # one subscription's periods up to several dates of the same month
    year, month = _shift_month(until.year, until.month, 1)
    horizon = date(year, month, 1) if year <= date.max.year else date.max
    return [p for p in _service_periods(subscription, plan.period_months, horizon)
            if p.start < until]


@lru_cache(maxsize=65_536)
def _service_periods(subscription: Subscription, step: int, until: date
                     ) -> tuple[ServicePeriod, ...]:
    """The periods starting before `until` (see service_periods)."""
    anchor_day = subscription.anchor_day
    start, end = subscription.start_date, subscription.end_date
    year0, month0 = _first_anchor_month(start, anchor_day)

    def anchor(k: int) -> date:
        return anchor_date(*_shift_month(year0, month0, k * step), anchor_day)

    periods: list[ServicePeriod] = []
    k = 0 if anchor(0) == start else -1
    index = 0
    while True:
        full_start, full_end = anchor(k), anchor(k + 1)
        period_start = max(full_start, start)
        if period_start >= until or (end is not None and period_start >= end):
            return tuple(periods)
        period_end = full_end if end is None else min(full_end, end)
        periods.append(ServicePeriod(period_start, period_end, full_start, full_end, index))
        k += 1
        index += 1


def boundaries(subscription: Subscription, plan: Plan, until: date) -> list[date]:
    """The invoice cut dates B on or before ``until``: ``start_date``, then every period end.

    At each B an invoice is cut: in-arrears charges of the period ending at B and in-advance
    fees of the period starting at B (contract section 3). The last cut of an ended
    subscription is its ``end_date``.
    """
    if subscription.start_date > until:
        return []
    ends = [p.end for p in service_periods(subscription, plan, until) if p.end <= until]
    return [subscription.start_date, *ends]


def period_ending_at(subscription: Subscription, plan: Plan, boundary: date
                     ) -> ServicePeriod | None:
    """The service period that ends at ``boundary`` (None at ``start_date``)."""
    return next((p for p in service_periods(subscription, plan, boundary) if p.end == boundary),
                None)


def period_starting_at(subscription: Subscription, plan: Plan, boundary: date
                       ) -> ServicePeriod | None:
    """The service period that starts at ``boundary`` (None at ``end_date``)."""
    later = service_periods(subscription, plan, boundary + timedelta(days=1))
    return next((p for p in later if p.start == boundary), None)


def billing_month(boundary: date) -> str:
    """The monthly partition of the invoice cut at ``boundary``: its UTC month, 'YYYY-MM'."""
    return f"{boundary.year:04d}-{boundary.month:02d}"
