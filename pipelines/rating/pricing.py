"""Rating: what one price charges for one service period (contract section 3, "Pricing").

Every function is pure and exact. Amounts are computed with exact decimals (and exact fractions
for prorations), kept unrounded in ``RatedAmount.exact`` and rounded once, half away from zero,
into ``RatedAmount.amount``. Tiered prices also return a per-tier breakdown so that finance can
explain every amount on an invoice.

Quantities are Decimals: sum and avg meters may be fractional. A quantity below zero (a sum
meter of negative values) bills as zero. ``included_units`` are subtracted before any usage
pricing model (per_unit, package and tiered alike); the result is the *billable* quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded, localcontext
from fractions import Fraction
from typing import Any

from pipelines.catalog.models import Price, Tier
from pipelines.rating.money import round_money

# Usage amounts are products and sums of finite decimals, so they are exact decimals; this
# context has room for any realistic one and raises rather than round silently.
_EXACT = Context(prec=120, traps=[Inexact, Rounded, InvalidOperation])
_ZERO = Decimal(0)


@dataclass(frozen=True)
class TierCharge:
    """What one tier of a tiered price charged.

    The tier covers the units above ``from_units`` up to and including ``to_units`` (None for
    the final open tier). ``units`` of the billable quantity were priced at ``unit_price`` and
    the tier's ``flat_fee`` was added: ``amount = units * unit_price + flat_fee``, exact and
    unrounded (the line is rounded once, as a whole).
    """

    tier_index: int
    from_units: Decimal
    to_units: Decimal | None
    units: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (decimals as strings), for the invoice line's ``tiers`` column."""
        return {
            "tier_index": self.tier_index,
            "from_units": str(self.from_units),
            "to_units": None if self.to_units is None else str(self.to_units),
            "units": str(self.units),
            "unit_price": str(self.unit_price),
            "flat_fee": str(self.flat_fee),
            "amount": str(self.amount),
        }


@dataclass(frozen=True)
class RatedAmount:
    """The charge of one price for one period, with everything needed to explain it.

    ``exact`` is the unrounded amount: a Decimal, or a Fraction where no finite decimal form
    exists (a prorated flat fee such as 10.00 * 12/31); ``amount`` is it rounded once to the
    currency's minor units.
    ``quantity`` is the metered quantity as measured and ``billable_quantity`` what remains
    after included units (for a flat fee both are 1). ``unit_price`` is set where one price per
    unit explains the amount (per_unit, volume, and the full-period amount of a flat fee).
    ``packages`` is the number of packages a package price charged; ``proration`` is
    ``(days served, days in the full period)`` for a prorated flat fee.
    """

    exact: Fraction | Decimal
    amount: Decimal
    currency: str
    quantity: Decimal
    billable_quantity: Decimal
    unit_price: Decimal | None = None
    tiers: tuple[TierCharge, ...] = ()
    packages: int | None = None
    proration: tuple[int, int] | None = None


def billable_quantity(price: Price, quantity: Decimal) -> Decimal:
    """The quantity a usage price charges for: max(quantity - included_units, 0)."""
    with localcontext(_EXACT):
        return max(quantity - price.included_units, _ZERO)


def _rated(price_currency: str, exact: Fraction | Decimal, **fields: Any) -> RatedAmount:
    # exact stays a Decimal when it is one (exact already; cheaper than a Fraction)
    return RatedAmount(exact=exact, amount=round_money(exact, price_currency),
                       currency=price_currency, **fields)


def rate_flat(price: Price, currency: str, days: int | None = None,
              full_days: int | None = None) -> RatedAmount:
    """A flat fee for one period: its amount, prorated by days for a partial period.

    For a partial period the fee is amount * days / full_days, where full_days is the length
    of the full billing period containing it; the product stays an exact fraction until the
    one rounding. Usage prices are never prorated.
    """
    if price.type != "flat" or price.amount is None:
        raise ValueError(f"price {price.key!r} is not a flat fee")
    one = Decimal(1)
    if days is None and full_days is None:
        return _rated(currency, price.amount, quantity=one, billable_quantity=one,
                      unit_price=price.amount)
    if days is None or full_days is None or full_days <= 0 or not 0 <= days <= full_days:
        raise ValueError(f"proration needs 0 <= days <= full_days, got {days}/{full_days}")
    if days == full_days:
        return _rated(currency, price.amount, quantity=one, billable_quantity=one,
                      unit_price=price.amount)
    exact = Fraction(price.amount) * Fraction(days, full_days)
    return _rated(currency, exact, quantity=one, billable_quantity=one,
                  unit_price=price.amount, proration=(days, full_days))


def rate_per_unit(price: Price, quantity: Decimal, currency: str) -> RatedAmount:
    """per_unit: max(quantity - included_units, 0) * unit_price."""
    if price.unit_price is None:
        raise ValueError(f"price {price.key!r} has no unit_price")
    billable = billable_quantity(price, quantity)
    with localcontext(_EXACT):
        exact = billable * price.unit_price
    return _rated(currency, exact, quantity=quantity, billable_quantity=billable,
                  unit_price=price.unit_price)


def rate_package(price: Price, quantity: Decimal, currency: str) -> RatedAmount:
    """package: ceil(billable quantity / package_size) * package_price; no usage → 0.

    A started package is charged in full (101 units in packages of 100 → 2 packages).
    """
    if price.package_size is None or price.package_price is None or price.package_size <= 0:
        raise ValueError(f"price {price.key!r} needs a positive package_size and a package_price")
    billable = billable_quantity(price, quantity)
    packages = math.ceil(Fraction(billable) / Fraction(price.package_size))
    with localcontext(_EXACT):
        exact = packages * price.package_price
    return _rated(currency, exact, quantity=quantity, billable_quantity=billable,
                  packages=packages)


def _tier_bounds(tiers: tuple[Tier, ...]) -> list[tuple[Decimal, Decimal | None]]:
    """(from, to] of each tier: it starts where the previous inclusive up_to ended."""
    bounds: list[tuple[Decimal, Decimal | None]] = []
    lower = _ZERO
    for tier in tiers:
        bounds.append((lower, tier.up_to))
        if tier.up_to is not None:
            lower = tier.up_to
    return bounds


def rate_graduated(price: Price, quantity: Decimal, currency: str) -> RatedAmount:
    """Graduated tiers: each tier prices the units that fall in it, plus its flat fee if reached.

    A tier is *reached* when at least some of the billable quantity falls in it, i.e. the
    quantity is above the tier's lower bound. With a billable quantity of 0 no tier is reached
    and the charge is 0 — the first tier's flat fee is not charged for no usage. ``up_to`` is
    inclusive: exactly 1000 units with a first tier up to 1000 reach the first tier only.
    """
    if not price.tiers:
        raise ValueError(f"price {price.key!r} has no tiers")
    billable = billable_quantity(price, quantity)
    charges: list[TierCharge] = []
    with localcontext(_EXACT):
        for index, (tier, (lower, upper)) in enumerate(
                zip(price.tiers, _tier_bounds(price.tiers), strict=True)):
            if billable <= lower:
                break
            units = (billable if upper is None else min(billable, upper)) - lower
            amount = units * tier.unit_price + tier.flat_fee
            charges.append(TierCharge(index, lower, upper, units, tier.unit_price,
                                      tier.flat_fee, amount))
        exact = sum((c.amount for c in charges), _ZERO)
    return _rated(currency, exact, quantity=quantity, billable_quantity=billable,
                  tiers=tuple(charges))


def rate_volume(price: Price, quantity: Decimal, currency: str) -> RatedAmount:
    """Volume tiers: the whole quantity at the unit price (plus flat fee) of its one tier.

    The tier is the first whose inclusive ``up_to`` is at or above the billable quantity.
    A billable quantity of 0 charges nothing (no flat fee either). Unlike graduated pricing,
    the amount can drop when the quantity crosses into a cheaper tier.
    """
    if not price.tiers:
        raise ValueError(f"price {price.key!r} has no tiers")
    billable = billable_quantity(price, quantity)
    if billable <= 0:
        return _rated(currency, _ZERO, quantity=quantity, billable_quantity=billable)
    bounds = _tier_bounds(price.tiers)
    index = next(i for i, (_, upper) in enumerate(bounds) if upper is None or billable <= upper)
    tier = price.tiers[index]
    lower, upper = bounds[index]
    with localcontext(_EXACT):
        amount = billable * tier.unit_price + tier.flat_fee
    charge = TierCharge(index, lower, upper, billable, tier.unit_price, tier.flat_fee, amount)
    return _rated(currency, amount, quantity=quantity, billable_quantity=billable,
                  unit_price=tier.unit_price, tiers=(charge,))


def rate_usage(price: Price, quantity: Decimal, currency: str) -> RatedAmount:
    """Rate a usage price (per_unit, package, tiered graduated or volume) for a quantity."""
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        raise ValueError(f"quantity must be a finite Decimal, got {quantity!r}")
    if price.type == "per_unit":
        return rate_per_unit(price, quantity, currency)
    if price.type == "package":
        return rate_package(price, quantity, currency)
    if price.type == "tiered" and price.tier_mode == "graduated":
        return rate_graduated(price, quantity, currency)
    if price.type == "tiered" and price.tier_mode == "volume":
        return rate_volume(price, quantity, currency)
    raise ValueError(f"price {price.key!r} of type {price.type!r} is not a usage price")
