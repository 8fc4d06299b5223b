"""Tax (contract section 10, docs/tax.md): which rate applies to a customer, the tax of a line
rounded once half away from zero, and the catalog sections that configure it."""

from __future__ import annotations

import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.catalog import CatalogError, load_catalog
from pipelines.catalog.models import Address, Customer, Seller, TaxRate
from pipelines.rating.money import minor_units, quantum
from pipelines.rating.tax import (
    NOTE_NO_ADDRESS,
    NOTE_REVERSE_CHARGE,
    amount_including_tax,
    line_tax,
    net_amount,
    tax_for,
)
from tests.support.environment import EXAMPLE_CATALOG

SELLER_DE = Seller(country="DE", tax_id="DE123456789")
RATES = {
    "de_vat": TaxRate("de_vat", "DE", Decimal("19")),
    "fr_vat": TaxRate("fr_vat", "FR", Decimal("20")),
    "us_ca_sales": TaxRate("us_ca_sales", "US", Decimal("7.25"), region="CA"),
    "at_vat_incl": TaxRate("at_vat_incl", "AT", Decimal("20"), inclusive=True),
}


def customer(country: str | None = None, region: str | None = None,
             tax_id: str | None = None) -> Customer:
    address = Address(country, region) if country else None
    return Customer(id="c", name="C", address=address, tax_id=tax_id)


# -- which rate ------------------------------------------------------------------------------

def test_a_german_customer_pays_german_vat() -> None:
    decision = tax_for(customer("DE"), SELLER_DE, RATES)
    assert (decision.rate_key, decision.percent, decision.inclusive) == ("de_vat", 19, False)
    assert (decision.country, decision.region, decision.note) == ("DE", None, None)


def test_a_domestic_business_customer_pays_vat_too() -> None:
    # a tax_id in the seller's own country: no reverse charge
    assert tax_for(customer("DE", tax_id="DE811907980"), SELLER_DE, RATES).rate_key == "de_vat"


def test_a_french_consumer_pays_french_vat_and_a_french_business_is_reverse_charged() -> None:
    assert tax_for(customer("FR"), SELLER_DE, RATES).rate_key == "fr_vat"
    decision = tax_for(customer("FR", tax_id="FR40303265045"), SELLER_DE, RATES)
    assert (decision.rate_key, decision.percent, decision.note) == (
        "reverse_charge", 0, NOTE_REVERSE_CHARGE)
    assert decision.country == "FR"
    assert decision.tax_of(Decimal("1000.00"), "EUR") == Decimal("0.00")


def test_no_reverse_charge_when_the_seller_is_outside_the_eu() -> None:
    # contract section 10: reverse charge for a tax_id in *another EU country than the seller*
    seller_us = Seller(country="US")
    assert tax_for(customer("FR", tax_id="FR1"), seller_us, RATES).rate_key == "fr_vat"
    # nor for a business outside the EU
    assert tax_for(customer("US", "CA", tax_id="12-3456789"), SELLER_DE,
                   RATES).rate_key == "us_ca_sales"


def test_the_most_specific_rate_wins() -> None:
    rates = {**RATES, "us_default": TaxRate("us_default", "US", Decimal("5"))}
    assert tax_for(customer("US", "CA"), SELLER_DE, rates).rate_key == "us_ca_sales"
    assert tax_for(customer("US", "NY"), SELLER_DE, rates).rate_key == "us_default"
    assert tax_for(customer("US"), SELLER_DE, rates).rate_key == "us_default"


def test_no_address_or_no_rate_means_no_tax_said_on_the_invoice() -> None:
    none = tax_for(customer(), SELLER_DE, RATES)
    assert (none.rate_key, none.percent, none.note) == (None, None, NOTE_NO_ADDRESS)
    assert none.tax_of(Decimal("99.99"), "USD") == Decimal("0.00")
    ny = tax_for(customer("US", "NY"), SELLER_DE, RATES)     # only CA has a US rate
    assert (ny.rate_key, ny.country, ny.region, ny.note) == (
        None, "US", "NY", "no tax rate for US-NY")


# -- the tax of a line (hand-computed) ---------------------------------------------------------

@pytest.mark.parametrize(("amount", "percent", "inclusive", "currency", "tax"), [
    ("49.00", "19", False, "EUR", "9.31"),     # 49.00 x 0.19 = 9.31
    ("-9.80", "19", False, "EUR", "-1.86"),    # a 20 % discount line: -9.80 x 0.19 = -1.862
    ("12.34", "20", False, "EUR", "2.47"),     # 12.34 x 0.20 = 2.468
    ("10.00", "7.25", False, "USD", "0.73"),   # 10.00 x 0.0725 = 0.725: half away from zero
    ("-10.00", "7.25", False, "USD", "-0.73"),  # and a credit the exact opposite
    ("119.00", "19", True, "EUR", "19.00"),    # 119.00 x 19/119 = 19 (inclusive)
    ("1500", "10", True, "JPY", "136"),        # 1500 x 10/110 = 136.36...
    ("1.100", "10", False, "KWD", "0.110"),    # three minor units
    ("5.00", None, False, "USD", "0.00"),      # no rate: no tax
])
def test_line_tax_by_hand(amount: str, percent: str | None, inclusive: bool, currency: str,
                          tax: str) -> None:
    result = line_tax(Decimal(amount), None if percent is None else Decimal(percent),
                      inclusive, currency)
    assert result == Decimal(tax) and result.as_tuple().exponent == -minor_units(currency)


def test_an_invoice_after_discount_by_hand() -> None:
    # Globex (DE 19 %): platform fee 49.00, a 20 % discount line -9.80: total 39.20.
    # Line taxes 9.31 + (-1.86) = 7.45; 39.20 x 0.19 = 7.448 -> the same 7.45 here.
    taxes = [line_tax(Decimal(a), Decimal("19"), False, "EUR") for a in ("49.00", "-9.80")]
    assert sum(taxes) == Decimal("7.45")
    assert amount_including_tax(Decimal("39.20"), sum(taxes), False) == Decimal("46.65")
    # inclusive: the tax is inside the amount; the net is what remains
    assert net_amount(Decimal("1500"), Decimal("136"), True) == Decimal("1364")
    assert amount_including_tax(Decimal("1500"), Decimal("136"), True) == Decimal("1500")


# -- the rounding rule (hypothesis) ------------------------------------------------------------

CURRENCIES = st.sampled_from(("USD", "EUR", "JPY", "KWD"))
PERCENTS = st.decimals(min_value=0, max_value=Decimal("99.999"), places=3)


def amounts(currency: str) -> st.SearchStrategy[Decimal]:
    unit = quantum(currency)
    return st.integers(-10**12, 10**12).map(lambda n: Decimal(n) * unit)


@given(data=st.data(), currency=CURRENCIES, percent=PERCENTS, inclusive=st.booleans())
def test_line_tax_is_within_half_a_minor_unit_of_exact(data: st.DataObject, currency: str,
                                                       percent: Decimal,
                                                       inclusive: bool) -> None:
    amount = data.draw(amounts(currency))
    rate = Fraction(percent)
    exact = Fraction(amount) * (rate / (100 + rate) if inclusive else rate / 100)
    tax = line_tax(amount, percent, inclusive, currency)
    assert abs(Fraction(tax) - exact) <= Fraction(quantum(currency)) / 2
    assert tax.as_tuple().exponent == -minor_units(currency)
    assert line_tax(-amount, percent, inclusive, currency) == -tax   # symmetric


@given(data=st.data(), currency=CURRENCIES, percent=PERCENTS)
def test_inclusive_net_plus_tax_is_the_gross_exactly(data: st.DataObject, currency: str,
                                                     percent: Decimal) -> None:
    gross = data.draw(amounts(currency))
    tax = line_tax(gross, percent, True, currency)
    net = net_amount(gross, tax, True)
    assert net + tax == gross
    assert net.as_tuple().exponent == -minor_units(currency)
    assert amount_including_tax(gross, tax, True) == gross


# -- the catalog -------------------------------------------------------------------------------

def test_the_example_catalog_taxes_its_customers() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    assert catalog.seller == Seller(country="DE", tax_id="DE123456789",
                                    source_file=str(EXAMPLE_CATALOG / "tax.yaml"))
    assert {r.key for r in catalog.tax_rates.values()} >= {"de_vat", "fr_vat", "us_ca_sales"}
    acme = catalog.customers["acme_corp_001"]
    assert acme.address == Address("US", "CA", "94105")
    assert catalog.customers["hooli_005"].address is None      # loads: no tax, 'no address'
    keys = {c: tax_for(x, catalog.seller, catalog.tax_rates).rate_key
            for c, x in catalog.customers.items()}
    assert keys == {"acme_corp_001": "us_ca_sales", "globex_002": "de_vat",
                    "initech_003": "jp_consumption", "umbrella_004": "reverse_charge",
                    "hooli_005": None, "soylent_006": None}


def _catalog_with(tmp_path: Path, text: str, customers_extra: str = "") -> Path:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    (folder / "tax.yaml").write_text(text, encoding="utf-8")
    if customers_extra:
        path = folder / "customers.yaml"
        content = path.read_text(encoding="utf-8")
        marker = "\nsubscriptions:\n"
        path.write_text(content.replace(marker, customers_extra + marker, 1), encoding="utf-8")
    return folder


def test_bad_tax_configuration_is_named_by_file_entry_and_field(tmp_path: Path) -> None:
    folder = _catalog_with(tmp_path, """
seller: {country: Germany}
tax_rates:
  - {key: de_vat, country: DE, percent: "19"}
  - {key: de_vat_again, country: DE, percent: "7"}
  - {key: reverse_charge, country: FR, percent: "0"}
  - {key: us_ca, country: US, region: ca, percent: "107.25"}
  - {key: float_rate, country: IT, percent: 22.0, inclusive: "yes"}
  - {key: odd, country: ES, percent: "21", rate: "21"}
""", """  - {id: zed_007, name: Zed, address: {country: de, city: Berlin}}
  - {id: yak_008, name: Yak, address: "Berlin"}
""")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    faults = "\n".join(caught.value.faults)
    tax_file = str(folder / "tax.yaml")
    customers_file = str(folder / "customers.yaml")
    for expected in (
        f"{tax_file}: seller: country 'Germany' is not an ISO 3166-1 alpha-2 code",
        f"{tax_file}: tax_rates[de_vat_again]: DE already has tax rate 'de_vat'",
        f"{tax_file}: tax_rates[reverse_charge]: key 'reverse_charge' is reserved",
        f"{tax_file}: tax_rates[us_ca]: percent must be below 100",
        f"{tax_file}: tax_rates[float_rate]: percent must be a decimal string",
        f"{tax_file}: tax_rates[float_rate]: inclusive must be true or false",
        f"{tax_file}: tax_rates[odd]: unknown key(s) rate",
        f"{customers_file}: customers[zed_007].address: unknown key(s) city",
        f"{customers_file}: customers[zed_007].address: country 'de' is not an ISO 3166-1",
        f"{customers_file}: customers[yak_008].address: address must be a mapping",
    ):
        assert expected in faults, (expected, faults)


def test_tax_rates_need_a_seller_and_one_seller_only(tmp_path: Path) -> None:
    folder = _catalog_with(tmp_path, 'tax_rates:\n  - {key: de_vat, country: DE, percent: "19"}\n')
    with pytest.raises(CatalogError, match=r"tax_rates: a seller .* is required"):
        load_catalog(folder)
    (folder / "seller.yaml").write_text("seller: {country: DE}\n", encoding="utf-8")
    (folder / "tax.yaml").write_text("seller: {country: FR}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"seller: defined again \(first in .*seller\.yaml\)"):
        load_catalog(folder)
    (folder / "tax.yaml").write_text("seller: [DE]\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"tax\.yaml: seller: must be a mapping"):
        load_catalog(folder)


def test_a_catalog_without_tax_sections_still_loads(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    (folder / "tax.yaml").unlink()
    catalog = load_catalog(folder)
    assert catalog.tax_rates == {} and catalog.seller is None
    decision = tax_for(catalog.customers["globex_002"], None, {})
    assert (decision.rate_key, decision.note) == (None, "no tax rate for DE")
