"""The ledger's tax as Stripe takes it: `tax_amounts` on invoice and credit note lines. Pure
rules: no call, no warehouse.

Stripe never computes a tax for us. Each taxed line of ours carries the tax the ledger computed
(`billing.invoice_lines.tax_amount`, rounded once, docs/tax.md) as one entry of Stripe's
`tax_amounts`: the tax in minor units, the taxable (net) amount, and `tax_rate_data` describing
the rate, from which Stripe makes (or reuses) an archived TaxRate object. An inclusive rate's tax
is inside the line's amount, an exclusive one is added to the invoice total: Stripe's `total` is
then the ledger's `total_including_tax`. A line without a rate (no address, no rate for it) sends
no `tax_amounts`; a reverse-charged line sends a 0 % entry with `taxability_reason:
reverse_charge`.

Credit note lines cannot describe a rate: they name the TaxRate Stripe made for the invoice
(`tax_rate`, read from the Stripe invoice's `total_taxes`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.catalog.models import REVERSE_CHARGE_KEY
from pipelines.rating.tax import EU_COUNTRIES, net_amount

MAX_PERCENT_DECIMALS = 4  # Stripe: `percentage` has at most 4 decimal places
REVERSE_CHARGE_FIELD = "VAT"
REVERSE_CHARGE_TEXT = "Reverse charge: VAT to be accounted for by the recipient"


class TaxRefused(ValueError):
    """A tax Stripe cannot take as the ledger states it (a rate with more decimals than Stripe
    keeps)."""


@dataclass(frozen=True)
class LineTax:
    """The tax of one line of ours: its rate (None: untaxed) and the tax the ledger computed."""

    rate_key: str | None
    percent: Decimal | None
    inclusive: bool
    amount: Decimal  # the line's tax, signed like the line

    @property
    def taxed(self) -> bool:
        return self.rate_key is not None


def percentage(percent: Decimal, what: str) -> str:
    """The rate as Stripe's `percentage` parameter: a decimal string without trailing zeros
    ("19", "7.25"), never a float; more than 4 decimals is refused (Stripe would round it)."""
    text = format(percent.normalize(), "f")
    decimals = len(text.partition(".")[2])
    if decimals > MAX_PERCENT_DECIMALS or not Decimal(0) <= percent <= Decimal(100):
        raise TaxRefused(f"{what}: tax rate {text} % cannot be sent to Stripe (0 to 100 with "
                         f"at most {MAX_PERCENT_DECIMALS} decimals)")
    return text


def display_name(country: str | None) -> str:
    """What the customer reads beside the rate: VAT in the EU, sales tax in the US."""
    if country in EU_COUNTRIES:
        return "VAT"
    return "Sales tax" if country == "US" else "Tax"


def tax_rate_data(tax: LineTax, country: str | None, region: str | None,
                  what: str) -> dict[str, Any]:
    """Stripe's `tax_rate_data` for the rate: display name, percentage, inclusive, the
    jurisdiction (country, `state` = our region, `jurisdiction` e.g. "US-CA"), the tax type, and
    our rate key as the internal description. Equal data makes Stripe reuse one TaxRate."""
    assert tax.percent is not None
    data: dict[str, Any] = {
        "display_name": display_name(country),
        "inclusive": tax.inclusive,
        "percentage": percentage(tax.percent, what),
        "description": tax.rate_key,
    }
    if country:
        data["country"] = country
        data["jurisdiction"] = country + (f"-{region}" if region else "")
        data["jurisdiction_level"] = "state" if region else "country"
        if country in EU_COUNTRIES:
            data["tax_type"] = "vat"
        elif country == "US":
            data["tax_type"] = "sales_tax"
    if region:
        data["state"] = region
    return data


def taxability_reason(tax: LineTax) -> str:
    return "reverse_charge" if tax.rate_key == REVERSE_CHARGE_KEY else "standard_rated"


def invoice_tax_amounts(tax: LineTax, tax_minor: int, net_minor: int, country: str | None,
                        region: str | None, what: str) -> list[dict[str, Any]]:
    """The `tax_amounts` of one add_lines entry (none for an untaxed line). `tax_minor` and
    `net_minor` are the ledger's tax and taxable amount in minor units."""
    if not tax.taxed:
        return []
    return [{"amount": tax_minor, "taxable_amount": net_minor,
             "tax_rate_data": tax_rate_data(tax, country, region, what),
             "taxability_reason": taxability_reason(tax)}]


def net_of(amount: Decimal, tax: LineTax) -> Decimal:
    """The taxable amount of a line: its amount less an inclusive tax it contains."""
    return net_amount(amount, tax.amount, tax.inclusive)


def exclusive_tax(taxes: Iterable[LineTax]) -> Decimal:
    """The tax that comes on top of the lines' amounts (inclusive tax is inside them)."""
    return sum((t.amount for t in taxes if not t.inclusive), Decimal(0))


def digest_part(tax: LineTax, tax_minor: int) -> str:
    """What of a line's tax goes into the digest of an idempotency key: a re-rated tax makes
    another key (Stripe answers a reused key with other parameters with an error)."""
    if not tax.taxed:
        return "-"
    assert tax.percent is not None
    return (f"{tax.rate_key}/{format(tax.percent.normalize(), 'f')}/"
            f"{'incl' if tax.inclusive else 'excl'}/{tax_minor}")


def stripe_tax_minor(taxes: Any) -> int:
    """The sum of a Stripe line's (or document's) `taxes`/`total_taxes` amounts."""
    return sum(int(t.amount) for t in (taxes or []))


def stripe_tax_rates(total_taxes: Any) -> list[str]:
    """The TaxRate ids a Stripe invoice's `total_taxes` name, in order, each once."""
    rates: list[str] = []
    for entry in total_taxes or []:
        details = getattr(entry, "tax_rate_details", None)
        rate = getattr(details, "tax_rate", None) if details is not None else None
        if rate and rate not in rates:
            rates.append(rate)
    return rates
