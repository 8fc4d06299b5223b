"""Revenue recognition by day (ASC 606 / IFRS 15 ratable recognition), as a pure rule.

A line's amount is spread over its service period ``[start, end)`` (UTC days, ``end``
exclusive) in proportion to the days of each calendar month it covers.

**The remainder rule (cumulative rounding, remainder on the last month).** Month *k* gets
``round(A x D_k / N) - round(A x D_{k-1} / N)``, where ``N`` is the period's days, ``D_k`` the
days from the start through the end of month *k*, and ``round`` the one money rounding (half
away from zero, to the currency's minor units). Then:

- the months sum to the amount exactly (``D_last = N``, and ``A`` is already rounded);
- every month is within one minor unit of its exact share ``A x d_k / N`` (each cumulative
  value is within half a unit of exact, and a month is the difference of two of them);
- what the rounding of the earlier months left over is carried forward, so the remainder
  lands on the last month — never on the first, and never more than one unit off.

A period of zero days (a manual credit note names no service) is recognized wholly in the
month of ``start``.

No Dagster, DuckDB, Polars or HTTP here (tests/unit/test_import_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from pipelines.rating.money import round_money


@dataclass(frozen=True)
class MonthShare:
    """What one calendar month recognizes of a line: ``month`` is ``YYYY-MM``, ``days`` the
    days of the service period in it."""

    month: str
    days: int
    amount: Decimal


def month_key(day: date) -> str:
    """``YYYY-MM`` of a day."""
    return f"{day.year:04d}-{day.month:02d}"


def next_month_start(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def month_days(start: date, end: date) -> list[tuple[str, int]]:
    """The calendar months ``[start, end)`` touches, with the days it covers in each."""
    months: list[tuple[str, int]] = []
    cursor = start
    while cursor < end:
        boundary = min(next_month_start(cursor), end)
        months.append((month_key(cursor), (boundary - cursor).days))
        cursor = boundary
    return months


def allocate_by_day(amount: Decimal, currency: str, start: date, end: date) -> list[MonthShare]:
    """``amount`` (already rounded to ``currency``'s minor units) spread over ``[start, end)``
    by day, month by month, with the cumulative rounding of the module docstring."""
    if round_money(amount, currency) != amount:
        raise ValueError(f"{amount} {currency} is not rounded to the currency's minor units")
    months = month_days(start, end)
    total_days = sum(days for _, days in months)
    if total_days == 0:
        return [MonthShare(month_key(start), 0, amount)]
    shares: list[MonthShare] = []
    exact = Fraction(amount)
    through = 0
    recognized = round_money(0, currency)
    for index, (month, days) in enumerate(months):
        through += days
        cumulative = (amount if index == len(months) - 1
                      else round_money(exact * through / total_days, currency))
        shares.append(MonthShare(month, days, cumulative - recognized))
        recognized = cumulative
    return shares
