"""Pricing models (contract section 3): golden hand-computed amounts and properties."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipelines.catalog.models import Price, Tier
from pipelines.rating.money import round_money
from pipelines.rating.pricing import TierCharge, rate_flat, rate_usage

D = Decimal

# The contract's seed plan (section 2).
API_CALLS = Price(key="api_calls", type="tiered", meter="api_requests", tier_mode="graduated",
                  tiers=(Tier(D("1000"), D("0.01"), D("10.00")),
                         Tier(D("10000"), D("0.008")),
                         Tier(None, D("0.005"))))
STORAGE = Price(key="storage", type="per_unit", meter="storage_gb", unit_price=D("0.25"),
                included_units=D("10"))
EXPORTS = Price(key="exports", type="package", meter="exports", package_size=D("100"),
                package_price=D("5.00"))
PLATFORM_FEE = Price(key="platform_fee", type="flat", amount=D("10.00"), cadence="in_advance")
VOLUME = Price(key="api_calls", type="tiered", meter="api_requests", tier_mode="volume",
               tiers=(Tier(D("5000"), D("0.009")), Tier(D("50000"), D("0.007")),
                      Tier(None, D("0.004"))))


def test_contract_seed_graduated_15420_calls() -> None:
    rated = rate_usage(API_CALLS, D(15420), "USD")
    # 1000*0.01 + 10 (flat fee of tier 1) + 9000*0.008 + 5420*0.005
    # = 10 + 10 + 72 + 27.10 = 119.10
    assert rated.amount == D("119.10")
    assert rated.exact == Fraction(11910, 100)
    assert rated.tiers == (
        TierCharge(0, D(0), D(1000), D(1000), D("0.01"), D("10.00"), D("20.00")),
        TierCharge(1, D(1000), D(10000), D(9000), D("0.008"), D(0), D("72.000")),
        TierCharge(2, D(10000), None, D(5420), D("0.005"), D(0), D("27.100")),
    )
    assert rated.unit_price is None  # several unit prices: the breakdown explains it


@pytest.mark.parametrize(
    ("quantity", "expected", "tiers_reached"),
    [
        ("0", "0.00", 0),        # no unit in any tier: no tier reached, no flat fee
        ("1", "10.01", 1),       # 1*0.01 + 10
        ("0.5", "10.01", 1),     # 0.5*0.01 + 10 = 10.005 -> 10.01 (half away from zero)
        ("1000", "20.00", 1),    # up_to is inclusive: 1000*0.01 + 10, tier 2 not reached
        ("1001", "20.01", 2),    # 20 + 1*0.008 = 20.008 -> 20.01
        ("10000", "92.00", 2),   # 20 + 9000*0.008 = 92
        ("10001", "92.01", 3),   # 92 + 0.005 = 92.005 -> 92.01
    ],
)
def test_graduated_golden(quantity: str, expected: str, tiers_reached: int) -> None:
    rated = rate_usage(API_CALLS, D(quantity), "USD")
    assert str(rated.amount) == expected
    assert len(rated.tiers) == tiers_reached


@pytest.mark.parametrize(
    ("quantity", "expected", "tier"),
    [
        ("0", "0.00", None),     # zero usage: zero line
        ("1", "0.01", 0),        # 1*0.009 = 0.009 -> 0.01
        ("5000", "45.00", 0),    # 5000*0.009, up_to inclusive
        ("5001", "35.01", 1),    # 5001*0.007 = 35.007 -> 35.01: cheaper than 5000 units
        ("50000", "350.00", 1),  # 50000*0.007
        ("60000", "240.00", 2),  # 60000*0.004
    ],
)
def test_volume_golden(quantity: str, expected: str, tier: int | None) -> None:
    rated = rate_usage(VOLUME, D(quantity), "EUR")
    assert str(rated.amount) == expected
    if tier is None:
        assert rated.tiers == ()
    else:
        assert [t.tier_index for t in rated.tiers] == [tier]
        assert rated.unit_price == VOLUME.tiers[tier].unit_price


def test_volume_adds_the_flat_fee_of_its_tier_only() -> None:
    price = Price(key="v", type="tiered", meter="m", tier_mode="volume",
                  tiers=(Tier(D("10"), D("1"), D("5")), Tier(None, D("0.5"), D("2"))))
    assert rate_usage(price, D(10), "USD").amount == D("15.00")  # 10*1 + 5
    assert rate_usage(price, D(11), "USD").amount == D("7.50")   # 11*0.5 + 2
    assert rate_usage(price, D(0), "USD").amount == D("0.00")    # no usage: no flat fee


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "0.00"),
        ("8", "0.00"),       # below the 10 included units
        ("10", "0.00"),
        ("12.5", "0.63"),    # (12.5-10)*0.25 = 0.625 -> 0.63
        ("110", "25.00"),    # 100*0.25
    ],
)
def test_per_unit_golden(quantity: str, expected: str) -> None:
    rated = rate_usage(STORAGE, D(quantity), "USD")
    assert str(rated.amount) == expected
    assert rated.unit_price == D("0.25")


@pytest.mark.parametrize(
    ("quantity", "expected", "packages"),
    [("0", "0.00", 0), ("1", "5.00", 1), ("100", "5.00", 1), ("101", "10.00", 2),
     ("250", "15.00", 3)],  # ceil(250/100) = 3 packages * 5.00
)
def test_package_golden(quantity: str, expected: str, packages: int) -> None:
    rated = rate_usage(EXPORTS, D(quantity), "USD")
    assert str(rated.amount) == expected
    assert rated.packages == packages


def test_package_after_included_units() -> None:
    price = Price(key="e", type="package", meter="m", package_size=D("100"),
                  package_price=D("5.00"), included_units=D("50"))
    assert rate_usage(price, D(50), "USD").amount == D("0.00")    # nothing billable
    assert rate_usage(price, D(151), "USD").amount == D("10.00")  # ceil(101/100)=2 * 5


def test_tiered_prices_subtract_included_units_first() -> None:
    graduated = tiered("graduated", API_CALLS.tiers, included=D(500))
    # billable 15420-500 = 14920: 1000*0.01 + 10 + 9000*0.008 + 4920*0.005
    # = 10 + 10 + 72 + 24.60 = 116.60
    assert rate_usage(graduated, D(15420), "USD").amount == D("116.60")
    assert rate_usage(graduated, D(500), "USD").amount == D("0.00")  # no tier reached
    volume = tiered("volume", VOLUME.tiers, included=D(1))
    # billable 5001-1 = 5000, tier 1 (up_to 5000 inclusive): 5000*0.009 = 45.00
    assert rate_usage(volume, D(5001), "EUR").amount == D("45.00")


def test_negative_quantities_bill_nothing() -> None:
    for price in (API_CALLS, VOLUME, STORAGE, EXPORTS):
        assert rate_usage(price, D("-5"), "USD").amount == D("0.00")


def test_jpy_prices_have_no_decimals() -> None:
    calls = Price(key="api_calls", type="per_unit", meter="m", unit_price=D("0.9"),
                  included_units=D("1000"))
    tokens = Price(key="tokens", type="package", meter="t", package_size=D("10000"),
                   package_price=D("120"))
    # (2345-1000)*0.9 = 1210.5 -> 1211 yen
    assert str(rate_usage(calls, D(2345), "JPY").amount) == "1211"
    # ceil(25001/10000) = 3 packages * 120 = 360 yen
    assert str(rate_usage(tokens, D(25001), "JPY").amount) == "360"
    # 1500 * 14/28 (Feb 15 - Mar 1 of a 28-day February) = 750 yen
    fee = Price(key="f", type="flat", amount=D("1500"), cadence="in_advance")
    assert str(rate_flat(fee, "JPY", 14, 28).amount) == "750"
    # 1500 * 19/28 = 1017.857... -> 1018 yen
    assert str(rate_flat(fee, "JPY", 19, 28).amount) == "1018"


def test_kwd_prices_have_three_decimals() -> None:
    compute = Price(key="c", type="per_unit", meter="m", unit_price=D("0.0125"))
    # 3*0.0125 = 0.0375 -> 0.038 (tie away from zero at the 3rd decimal)
    assert str(rate_usage(compute, D(3), "KWD").amount) == "0.038"
    fee = Price(key="f", type="flat", amount=D("12.345"), cadence="in_advance")
    # 12.345 * 10/31 = 3.98225... -> 3.982
    assert str(rate_flat(fee, "KWD", 10, 31).amount) == "3.982"


def test_flat_fee_full_and_prorated() -> None:
    full = rate_flat(PLATFORM_FEE, "USD")
    assert (full.amount, full.proration, full.unit_price) == (D("10.00"), None, D("10.00"))
    assert rate_flat(PLATFORM_FEE, "USD", 31, 31).amount == D("10.00")
    partial = rate_flat(PLATFORM_FEE, "USD", 12, 31)
    # 10.00 * 12/31 = 3.8709... -> 3.87, the exact value kept as a fraction
    assert partial.exact == Fraction(120, 31)
    assert partial.amount == D("3.87")
    assert partial.proration == (12, 31)
    with pytest.raises(ValueError):
        rate_flat(PLATFORM_FEE, "USD", 32, 31)
    with pytest.raises(ValueError):
        rate_usage(PLATFORM_FEE, D(1), "USD")


# ---- properties --------------------------------------------------------------------------

quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False,
                         allow_infinity=False)
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)


@st.composite
def tier_tables(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), min_size=0,
                                 max_size=4)))
    ups: list[Decimal | None] = [D(b) for b in bounds]
    ups.append(None)
    return tuple(Tier(up, draw(prices), draw(prices)) for up in ups)


NOTHING_INCLUDED = D(0)


def tiered(mode: str, tiers: tuple[Tier, ...], included: Decimal = NOTHING_INCLUDED) -> Price:
    return Price(key="t", type="tiered", meter="m", tier_mode=mode,  # type: ignore[arg-type]
                 tiers=tiers, included_units=included)


@given(tier_tables(), quantities)
def test_graduated_equals_the_sum_of_its_breakdown(tiers: tuple[Tier, ...], q: Decimal) -> None:
    rated = rate_usage(tiered("graduated", tiers), q, "USD")
    assert rated.exact == sum(Fraction(t.amount) for t in rated.tiers)
    assert sum((t.units for t in rated.tiers), D(0)) == q
    for t in rated.tiers:
        assert t.units > 0  # only reached tiers are listed
        assert t.amount == t.units * t.unit_price + t.flat_fee
        assert t.to_units is None or t.units <= t.to_units - t.from_units
    assert [t.tier_index for t in rated.tiers] == list(range(len(rated.tiers)))


@given(tier_tables(), quantities, quantities)
def test_graduated_never_decreases_as_usage_grows(tiers: tuple[Tier, ...], a: Decimal,
                                                  b: Decimal) -> None:
    price = tiered("graduated", tiers)
    low, high = sorted((a, b))
    assert rate_usage(price, low, "USD").exact <= rate_usage(price, high, "USD").exact
    assert rate_usage(price, low, "USD").amount <= rate_usage(price, high, "USD").amount


@given(tier_tables(), quantities)
def test_volume_is_one_tier_price(tiers: tuple[Tier, ...], q: Decimal) -> None:
    assume(q > 0)
    rated = rate_usage(tiered("volume", tiers), q, "USD")
    (charge,) = rated.tiers
    tier = tiers[charge.tier_index]
    # the first tier whose inclusive up_to holds the quantity
    expected_index = next(i for i, t in enumerate(tiers) if t.up_to is None or q <= t.up_to)
    assert charge.tier_index == expected_index
    assert rated.exact == Fraction(q * tier.unit_price + tier.flat_fee)
    assert charge.units == q


@given(tier_tables(), quantities, quantities)
def test_volume_never_decreases_within_one_tier(tiers: tuple[Tier, ...], a: Decimal,
                                                b: Decimal) -> None:
    # Across a tier boundary volume pricing may drop (see test_volume_golden: 5000 vs 5001);
    # inside one tier it cannot.
    price = tiered("volume", tiers)
    low, high = sorted((a, b))
    assume(low > 0)
    r_low, r_high = rate_usage(price, low, "USD"), rate_usage(price, high, "USD")
    if r_low.tiers[0].tier_index == r_high.tiers[0].tier_index:
        assert r_low.exact <= r_high.exact


@given(tier_tables(), quantities)
def test_graduated_and_volume_agree_on_a_single_tier(tiers: tuple[Tier, ...],
                                                     q: Decimal) -> None:
    single = (Tier(None, tiers[0].unit_price, tiers[0].flat_fee),)
    assert (rate_usage(tiered("graduated", single), q, "USD").exact
            == rate_usage(tiered("volume", single), q, "USD").exact)


@given(prices, quantities, quantities, st.decimals(min_value=0, max_value=1000, places=2))
def test_per_unit_and_package_never_decrease(unit: Decimal, a: Decimal, b: Decimal,
                                             included: Decimal) -> None:
    low, high = sorted((a, b))
    per_unit = Price(key="u", type="per_unit", meter="m", unit_price=unit, included_units=included)
    package = Price(key="p", type="package", meter="m", package_size=D("7.5"),
                    package_price=unit, included_units=included)
    for price in (per_unit, package):
        assert rate_usage(price, low, "USD").exact <= rate_usage(price, high, "USD").exact


@given(tier_tables(), quantities, st.sampled_from(["USD", "JPY", "KWD"]))
def test_amount_is_the_exact_value_rounded_once(tiers: tuple[Tier, ...], q: Decimal,
                                                currency: str) -> None:
    rated = rate_usage(tiered("graduated", tiers), q, currency)
    assert rated.amount == round_money(rated.exact, currency)
