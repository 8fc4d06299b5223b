"""Revenue recognition by day (pipelines/accounting/recognition.py): golden schedules computed
by hand, and the remainder rule's two promises under hypothesis: the months sum to the amount
exactly, and each month is within one minor unit of its exact proportional share."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pipelines.accounting.recognition import allocate_by_day, month_days
from pipelines.rating.money import quantum


def test_an_annual_in_advance_fee_starting_mid_month_is_recognized_by_day() -> None:
    # 1,200.00 USD for 2026-01-15 .. 2027-01-15 (365 days). Days per month: Jan 17, Feb 28,
    # Mar 31, Apr 30, May 31, Jun 30, Jul 31, Aug 31, Sep 30, Oct 31, Nov 30, Dec 31, Jan 14.
    # Cumulative days D: 17, 45, 76, 106, 137, 167, 198, 229, 259, 290, 320, 351, 365;
    # round(1200 x D / 365): 55.89 (55.890..), 147.95 (147.945..), 249.86 (249.863..),
    # 348.49 (348.493..), 450.41 (450.410..), 549.04 (549.041..), 650.96 (650.958..),
    # 752.88 (752.876..), 851.51 (851.506..), 953.42 (953.424..), 1052.05 (1052.054..),
    # 1153.97 (1153.972..), 1200.00; each month is the difference of two of them.
    shares = allocate_by_day(Decimal("1200.00"), "USD", date(2026, 1, 15), date(2027, 1, 15))
    assert [(s.month, s.days, s.amount) for s in shares] == [
        ("2026-01", 17, Decimal("55.89")), ("2026-02", 28, Decimal("92.06")),
        ("2026-03", 31, Decimal("101.91")), ("2026-04", 30, Decimal("98.63")),
        ("2026-05", 31, Decimal("101.92")), ("2026-06", 30, Decimal("98.63")),
        ("2026-07", 31, Decimal("101.92")), ("2026-08", 31, Decimal("101.92")),
        ("2026-09", 30, Decimal("98.63")), ("2026-10", 31, Decimal("101.91")),
        ("2026-11", 30, Decimal("98.63")), ("2026-12", 31, Decimal("101.92")),
        ("2027-01", 14, Decimal("46.03")),
    ]
    assert sum(s.amount for s in shares) == Decimal("1200.00")


def test_a_monthly_fee_across_two_months_and_a_yen_amount() -> None:
    # 300.00 for 2026-03-15 .. 2026-04-15: March 17 days, April 14 of 31;
    # 300 x 17 / 31 = 164.516.. -> 164.52, April the rest 135.48
    shares = allocate_by_day(Decimal("300.00"), "USD", date(2026, 3, 15), date(2026, 4, 15))
    assert [(s.month, s.amount) for s in shares] == [("2026-03", Decimal("164.52")),
                                                     ("2026-04", Decimal("135.48"))]
    # 1,000 JPY (no minor units) over 3 days of Jan and 4 of Feb: 1000 x 3 / 7 = 428.57 -> 429
    shares = allocate_by_day(Decimal("1000"), "JPY", date(2026, 1, 29), date(2026, 2, 5))
    assert [s.amount for s in shares] == [Decimal("429"), Decimal("571")]


def test_a_negative_amount_mirrors_the_positive_one_and_no_days_is_one_month() -> None:
    plus = allocate_by_day(Decimal("300.00"), "USD", date(2026, 3, 15), date(2026, 4, 15))
    minus = allocate_by_day(Decimal("-300.00"), "USD", date(2026, 3, 15), date(2026, 4, 15))
    assert [s.amount for s in minus] == [-s.amount for s in plus]
    [single] = allocate_by_day(Decimal("-5.00"), "USD", date(2026, 3, 20), date(2026, 3, 20))
    assert (single.month, single.days, single.amount) == ("2026-03", 0, Decimal("-5.00"))


@given(cents=st.integers(min_value=-10**12, max_value=10**12),
       start=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
       days=st.integers(min_value=1, max_value=1200),
       currency=st.sampled_from(["USD", "JPY", "KWD"]))
def test_the_schedule_sums_exactly_and_each_month_is_within_one_minor_unit(
        cents: int, start: date, days: int, currency: str) -> None:
    unit = quantum(currency)
    amount = cents * unit
    end = start + timedelta(days=days)
    shares = allocate_by_day(amount, currency, start, end)
    assert sum((s.amount for s in shares), Decimal(0)) == amount
    assert [(s.month, s.days) for s in shares] == month_days(start, end)
    for share in shares:
        exact = Fraction(amount) * share.days / days
        assert abs(Fraction(share.amount) - exact) <= Fraction(unit)
        assert share.amount == share.amount.quantize(unit)


def test_the_pure_accounting_rules_import_no_engine() -> None:
    import subprocess
    import sys

    code = ("import sys, pipelines.accounting.recognition, pipelines.accounting.posting\n"
            "print(sorted(m for m in ('dagster', 'duckdb', 'polars', 'httpx', 'stripe') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
