"""Tax: which rate applies to a customer, and the tax of one line (contract section 10).

Pure rules (no Dagster, DuckDB, Polars or HTTP), used by the billing run for its drafts, by the
corrections for their documents and by the checks that compute every tax again.

- **Which rate.** The customer's address decides: a rate of its country and region wins over a
  rate of its country alone (most specific wins); no address, or no rate for the address, means
  no tax (as Lago does when no tax is configured): the lines carry no rate and a tax of 0, and
  the invoice says why (``tax_note``).
- **EU reverse charge.** A business customer (it has a ``tax_id``) in an EU country other than
  the seller's, the seller being in the EU, pays no VAT: the supply is reverse-charged (0 %,
  rate key ``reverse_charge``, noted on the invoice), whatever rate its country has.
- **Tax of a line**, on the line's amount (discounts are lines of their own, so the invoice's
  tax is that of the amount after discounts): exclusive rates add ``amount x percent / 100``,
  inclusive rates contain ``amount - amount / (1 + percent / 100)``, i.e.
  ``amount x percent / (100 + percent)``. Computed exactly, rounded once to the currency's
  minor units, half away from zero (``money.round_money``), so a negative line (a discount, a
  credit) carries exactly the opposite tax of the same positive line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from pipelines.catalog.models import REVERSE_CHARGE_KEY, Customer, Seller, TaxRate
from pipelines.rating.money import round_money

EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
"""The 27 member states of the European Union (ISO 3166-1 alpha-2; Greece is GR here, as
ISO writes it, although VAT numbers start with EL)."""

NOTE_NO_ADDRESS = "no address"
NOTE_REVERSE_CHARGE = "reverse charge"


@dataclass(frozen=True)
class TaxDecision:
    """The tax treatment of one customer's invoices.

    ``rate_key`` is None when no tax applies (``percent`` None, every tax 0); it is
    ``reverse_charge`` (percent 0) for an EU reverse charge. ``country``/``region`` is the
    jurisdiction the tax is reported under (the rate's, or the customer's for a reverse charge
    or a missing rate); ``note`` says on the invoice why there is no tax, or that the supply is
    reverse-charged.
    """

    rate_key: str | None
    percent: Decimal | None
    inclusive: bool
    country: str | None
    region: str | None
    note: str | None

    def tax_of(self, amount: Decimal, currency: str) -> Decimal:
        """The tax of one line of ``amount`` (``line_tax`` with this rate)."""
        return line_tax(amount, self.percent, self.inclusive, currency)


NO_TAX = TaxDecision(None, None, False, None, None, NOTE_NO_ADDRESS)


def tax_for(customer: Customer, seller: Seller | None,
            rates: Mapping[str, TaxRate]) -> TaxDecision:
    """The tax treatment of ``customer``'s invoices under the catalog's ``rates``."""
    address = customer.address
    if address is None:
        return NO_TAX
    if (customer.tax_id and seller is not None and seller.country in EU_COUNTRIES
            and address.country in EU_COUNTRIES and address.country != seller.country):
        return TaxDecision(REVERSE_CHARGE_KEY, Decimal(0), False, address.country,
                           address.region, NOTE_REVERSE_CHARGE)
    rate = applicable_rate(address.country, address.region, rates)
    if rate is None:
        place = address.country + (f"-{address.region}" if address.region else "")
        return TaxDecision(None, None, False, address.country, address.region,
                           f"no tax rate for {place}")
    return TaxDecision(rate.key, rate.percent, rate.inclusive, rate.country, rate.region, None)


def applicable_rate(country: str, region: str | None,
                    rates: Mapping[str, TaxRate]) -> TaxRate | None:
    """The rate of (country, region) if there is one, else the rate of the country alone (a
    rate with a region applies to that region only); None when neither exists."""
    by_place = {(r.country, r.region): r for r in rates.values()}
    if region is not None and (country, region) in by_place:
        return by_place[(country, region)]
    return by_place.get((country, None))


def line_tax(amount: Decimal, percent: Decimal | None, inclusive: bool,
             currency: str) -> Decimal:
    """The tax of a line of ``amount`` at ``percent`` (None: no tax, 0), rounded once.

    Exclusive: amount x percent / 100, added on top. Inclusive: amount x percent /
    (100 + percent), the part of the amount that is tax. Exact until the one rounding to the
    currency's minor units, half away from zero.
    """
    if percent is None:
        return round_money(Decimal(0), currency)
    rate = Fraction(percent)
    share = rate / (100 + rate) if inclusive else rate / 100
    return round_money(Fraction(amount) * share, currency)


def amount_including_tax(amount: Decimal, tax: Decimal, inclusive: bool) -> Decimal:
    """What a line comes to with its tax: its amount plus an exclusive tax; an inclusive tax is
    in the amount already."""
    return amount if inclusive else amount + tax


def net_amount(amount: Decimal, tax: Decimal, inclusive: bool) -> Decimal:
    """The taxable (net) amount of a line: its amount, less an inclusive tax it contains."""
    return amount - tax if inclusive else amount
