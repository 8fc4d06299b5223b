"""Money: minor units from Babel and the single half-away-from-zero rounding."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.rating.money import minor_units, quantum, round_money, zero

CURRENCIES = ("USD", "EUR", "JPY", "KWD")


@pytest.mark.parametrize(("currency", "digits"),
                         [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_minor_units_follow_iso_4217(currency: str, digits: int) -> None:
    assert minor_units(currency) == digits
    assert quantum(currency) == Decimal(1).scaleb(-digits)


def test_unknown_currency_is_refused_rather_than_assumed_two_decimals() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        minor_units("ZZZ")
    with pytest.raises(ValueError):
        round_money(Decimal("1"), "usd")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("12.3"), "USD", "12.30"),       # quantized to 2 decimals
        (Decimal("0.005"), "USD", "0.01"),       # tie: away from zero
        (Decimal("-0.005"), "USD", "-0.01"),     # negative tie: away from zero too
        (Decimal("0.0049999"), "USD", "0.00"),
        (Decimal("-0.004"), "USD", "0.00"),      # no negative zero
        (Decimal("2.675"), "USD", "2.68"),       # a float would give 2.67
        (Decimal("2.5"), "JPY", "3"),            # 0 decimals
        (Decimal("-2.5"), "JPY", "-3"),
        (Decimal("1210.5"), "JPY", "1211"),
        (Decimal("1.2345"), "KWD", "1.235"),     # 3 decimals, tie away from zero
        (Decimal("1.2344"), "KWD", "1.234"),
        (Fraction(120, 31), "USD", "3.87"),      # 10.00 * 12/31 = 3.8709...
        (Fraction(1, 200), "USD", "0.01"),       # exactly 0.005 as a fraction
        (Fraction(-1, 3), "USD", "-0.33"),
        (7, "USD", "7.00"),
        (Decimal("123456789012345678901234567890.125"), "USD",
         "123456789012345678901234567890.13"),   # beyond the default 28-digit context
    ],
)
def test_round_money_golden(amount: Decimal | Fraction | int, currency: str, expected: str) -> None:
    result = round_money(amount, currency)
    assert str(result) == expected
    assert result.as_tuple().exponent == -minor_units(currency)


def test_round_money_refuses_floats_and_non_finite() -> None:
    with pytest.raises(TypeError):
        round_money(0.1, "USD")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        round_money(Decimal("NaN"), "USD")


def test_zero_has_the_currency_decimals() -> None:
    assert str(zero("USD")) == "0.00"
    assert str(zero("JPY")) == "0"
    assert str(zero("KWD")) == "0.000"


amounts = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6,
                      allow_nan=False, allow_infinity=False)
currencies = st.sampled_from(CURRENCIES)


@given(amounts, currencies)
def test_rounding_is_idempotent(amount: Decimal, currency: str) -> None:
    once = round_money(amount, currency)
    assert round_money(once, currency) == once
    assert str(round_money(once, currency)) == str(once)


@given(amounts, currencies)
def test_rounding_is_symmetric_and_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    rounded = round_money(amount, currency)
    assert round_money(-amount, currency) == -rounded
    assert abs(rounded - amount) * 2 <= quantum(currency)


@given(amounts, currencies)
def test_rounding_matches_decimal_half_up(amount: Decimal, currency: str) -> None:
    # Decimal's ROUND_HALF_UP is "ties away from zero" for both signs: an independent oracle.
    assert round_money(amount, currency) == amount.quantize(quantum(currency), ROUND_HALF_UP)


@given(st.integers(min_value=-10**9, max_value=10**9), currencies)
def test_ties_round_away_from_zero(units: int, currency: str) -> None:
    q = Fraction(quantum(currency))
    tie = (units + Fraction(1, 2)) * q  # exactly halfway between units*q and (units+1)*q
    expected = (units + 1) * q if tie > 0 else units * q
    assert Fraction(round_money(tie, currency)) == expected


@given(st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**6), currencies)
def test_fractions_round_to_the_nearest_minor_unit(amount: Fraction, currency: str) -> None:
    rounded = Fraction(round_money(amount, currency))
    q = Fraction(quantum(currency))
    assert abs(rounded - amount) <= q / 2
    assert (rounded / q).denominator == 1
