"""Money: how many decimals a currency has, and the one rounding every invoice line gets.

Contract section 3: arithmetic is exact; each line amount is rounded once, to the currency's
minor units, half away from zero. Totals are sums of rounded lines, never rounded again.

The number of minor units comes from Babel (the Unicode CLDR currency data), not from a table
kept here: USD 2, EUR 2, JPY 0, KWD 3.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_UP, Context, Decimal
from fractions import Fraction
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

Number = Decimal | Fraction | int
_EXACT = Context(prec=400, Emax=MAX_EMAX, Emin=MIN_EMIN)


@cache
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@cache
def minor_units(currency: str) -> int:
    """The number of decimals an amount in `currency` is billed with (USD 2, JPY 0, KWD 3).

    Raises ValueError for a code that is not an ISO 4217 currency, rather than silently
    assuming two decimals.
    """
    if currency not in _known_currencies():
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
    return int(get_currency_precision(currency))


def quantum(currency: str) -> Decimal:
    """The smallest billable amount of `currency`: Decimal('0.01') for USD, Decimal('1') for JPY."""
    return Decimal((0, (1,), -minor_units(currency)))


def to_fraction(amount: Number) -> Fraction:
    """An exact rational copy of a Decimal, Fraction or int (no float is ever accepted)."""
    if isinstance(amount, bool | float):
        raise TypeError(f"money must be Decimal, Fraction or int, not {type(amount).__name__}")
    if isinstance(amount, Decimal) and not amount.is_finite():
        raise ValueError(f"cannot bill a non-finite amount {amount}")
    return Fraction(amount)


def round_money(amount: Number, currency: str) -> Decimal:
    """Round an exact amount once to the currency's minor units, half away from zero.

    `amount` may be a Decimal, or a Fraction so that prorations such as 10.00 * 12/31 stay
    exact until this single rounding. The result is quantized to the currency's decimals
    (Decimal('12.30') for USD, Decimal('1500') for JPY). Negative amounts round away from
    zero as well: -0.005 USD → -0.01. Rounding an already rounded amount changes nothing.
    """
    digits = minor_units(currency)
    if isinstance(amount, Decimal) and amount.is_finite():
        # a Decimal is exact already: quantize it once, in a context wide enough that only the
        # quantization rounds (ROUND_HALF_UP rounds half away from zero, negatives included)
        rounded = amount.quantize(Decimal((0, (1,), -digits)), rounding=ROUND_HALF_UP,
                                  context=_EXACT)
        return rounded.copy_abs() if rounded.is_zero() else rounded
    exact = to_fraction(amount)
    scaled = abs(exact) * 10**digits
    whole, remainder = divmod(scaled.numerator, scaled.denominator)
    if 2 * remainder >= scaled.denominator:  # half or more: away from zero
        whole += 1
    sign = 1 if exact < 0 and whole else 0
    # Built from its digits, so no Decimal context precision can round it a second time.
    return Decimal((sign, tuple(int(d) for d in str(whole)), -digits))


def zero(currency: str) -> Decimal:
    """Zero, written with the currency's decimals (Decimal('0.00') for USD)."""
    return Decimal((0, (0,), -minor_units(currency)))
