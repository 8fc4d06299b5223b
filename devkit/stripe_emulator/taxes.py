"""Manual tax amounts: ``tax_amounts`` on invoice lines and credit note lines, and tax rates.

As on Stripe (https://docs.stripe.com/invoicing/taxes/manual-tax-amounts), an invoice line's
``tax_amounts`` give each tax in minor units, its taxable amount and ``tax_rate_data``; Stripe
makes a TaxRate for each distinct ``tax_rate_data`` (the same data reuses it), archived at once
(``active: false``), and the line shows the tax in ``taxes`` (``tax_rate_details.tax_rate``). A
credit note line's ``tax_amounts`` name such a TaxRate (``tax_rate``) instead of describing one.

Money: an exclusive tax is added to the document's total, an inclusive one is inside the line's
amount; ``subtotal_excluding_tax`` and ``total_excluding_tax`` leave both out; ``total_taxes``
sums the lines' taxes per tax rate. Nothing is computed here from a percentage: the amounts are
the caller's (except a credit note line crediting an invoice line without ``tax_amounts``, which
takes its share of the invoice line's taxes, as Stripe prorates them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from .errors import invalid
from .money import round_minor
from .state import KIND_NAMES, State
from .templates import retrieve_endpoint

MAX_TAX_AMOUNTS = 20  # per line, as Stripe documents for both invoice and credit note lines
_PERCENT_DECIMALS = 4
_COUNTRY = re.compile(r"[A-Z]{2}")

KIND_NAMES["tax_rate"] = "tax rate"


def _percentage(value: Any, param: str) -> Decimal:
    # the SDK types it as a float; its digits are read back exactly (repr is the shortest
    # string that gives the same float, so "7.25" stays 7.25)
    percent = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    if not percent.is_finite() or not Decimal(0) <= percent <= Decimal(100):
        raise invalid("The percentage must be between 0 and 100.", param)
    if -percent.normalize().as_tuple().exponent > _PERCENT_DECIMALS:  # type: ignore[operator]
        raise invalid(f"The percentage can have at most {_PERCENT_DECIMALS} decimal places.",
                      param)
    return percent


def _same_sign(value: int, line_amount: int, param: str) -> None:
    if value and line_amount and (value < 0) != (line_amount < 0):
        raise invalid("Tax amounts must have the same sign as the line item's amount.", param)


def _check_count(entries: list[Any], param: str) -> None:
    if len(entries) > MAX_TAX_AMOUNTS:
        raise invalid(f"You can pass at most {MAX_TAX_AMOUNTS} tax amounts per line item.",
                      param)


def _rate_for(state: State, data: dict[str, Any], param: str, dry_run: bool) -> str | None:
    """The TaxRate of ``tax_rate_data``: the one made for equal data earlier, else a new
    (archived) one; None in a dry run that would make one."""
    percent = _percentage(data["percentage"], f"{param}[percentage]")
    country = data.get("country")
    if country is not None and not _COUNTRY.fullmatch(country):
        raise invalid(f"Invalid country: {country}. Use a two-letter ISO 3166-1 code.",
                      f"{param}[country]")
    fields = {
        "country": country,
        "description": data.get("description"),
        "display_name": data["display_name"],
        "inclusive": data["inclusive"],
        "jurisdiction": data.get("jurisdiction"),
        "jurisdiction_level": data.get("jurisdiction_level"),
        "percentage": float(percent),
        "state": data.get("state"),
        "tax_type": data.get("tax_type"),
    }
    signature = tuple(sorted((k, str(v)) for k, v in fields.items()))
    found = state.tax_rate_by_data.get(signature)
    if found is not None or dry_run:
        return found
    rate = {
        "id": state.new_id("txr"),
        "object": "tax_rate",
        "active": False,  # made by Stripe for manual tax amounts: archived at once
        "created": state.now(),
        "effective_percentage": float(percent),
        "flat_amount": None,
        "livemode": False,
        "metadata": {},
        "rate_type": "percentage",
        **fields,
    }
    state.add(rate)
    state.tax_rate_by_data[signature] = rate["id"]
    return rate["id"]


def _tax(amount: int, rate_id: str | None, inclusive: bool, reason: str | None,
         taxable: int) -> dict[str, Any]:
    return {
        "amount": amount,
        "tax_behavior": "inclusive" if inclusive else "exclusive",
        "tax_rate_details": {"tax_rate": rate_id},
        "taxability_reason": reason or "not_available",
        "taxable_amount": taxable,
        "type": "tax_rate_details",
    }


def line_taxes(state: State, raw: Any, line_amount: int, prefix: str, *,
               dry_run: bool = False) -> list[dict[str, Any]]:
    """The ``taxes`` of an invoice line from its ``tax_amounts`` parameter (``""``: none).
    Every check runs first; a dry run makes no TaxRate."""
    if raw in (None, ""):
        return []
    param = f"{prefix}[tax_amounts]" if prefix else "tax_amounts"
    _check_count(raw, param)
    out = []
    for n, entry in enumerate(raw):
        at = f"{param}[{n}]"
        _same_sign(entry["amount"], line_amount, f"{at}[amount]")
        _same_sign(entry["taxable_amount"], line_amount, f"{at}[taxable_amount]")
        data = entry["tax_rate_data"]
        rate = _rate_for(state, data, f"{at}[tax_rate_data]", dry_run)
        out.append(_tax(entry["amount"], rate, data["inclusive"],
                        entry.get("taxability_reason"), entry["taxable_amount"]))
    return out


def credit_line_taxes(state: State, raw: Any, line_amount: int, param: str,
                      allowed_rates: Iterable[str] | None) -> list[dict[str, Any]]:
    """The ``taxes`` of a credit note line from its ``tax_amounts`` (each naming a TaxRate
    Stripe made for manual tax amounts; crediting an invoice line: one of that line's)."""
    if raw in (None, ""):
        return []
    param = f"{param}[tax_amounts]"
    _check_count(raw, param)
    allowed = None if allowed_rates is None else set(allowed_rates)
    out = []
    for n, entry in enumerate(raw):
        at = f"{param}[{n}]"
        rate = state.get("tax_rate", entry["tax_rate"], f"{at}[tax_rate]")
        if rate["active"] or rate["id"] not in state.tax_rate_by_data.values():
            raise invalid("The tax rate must have been automatically created by Stripe.",
                          f"{at}[tax_rate]")
        if allowed is not None and rate["id"] not in allowed:
            raise invalid(f"The tax rate {rate['id']} is not a tax rate of the invoice line "
                          "item being credited.", f"{at}[tax_rate]")
        _same_sign(entry["amount"], line_amount, f"{at}[amount]")
        _same_sign(entry["taxable_amount"], line_amount, f"{at}[taxable_amount]")
        out.append(_tax(entry["amount"], rate["id"], rate["inclusive"], None,
                        entry["taxable_amount"]))
    return out


def prorated_taxes(taxes: list[dict[str, Any]], credit: int, line_amount: int
                   ) -> list[dict[str, Any]]:
    """The share of an invoice line's taxes a credit of ``credit`` (of ``line_amount``) takes,
    rounded half away from zero (Stripe prorates when a credit note line gives no taxes)."""
    if not line_amount:
        return []
    share = Decimal(credit) / Decimal(line_amount)
    return [{**t, "amount": round_minor(t["amount"] * share),
             "taxable_amount": round_minor(t["taxable_amount"] * share)} for t in taxes]


def split(taxes: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(inclusive, exclusive) tax of the given taxes."""
    inclusive = exclusive = 0
    for t in taxes:
        if t["tax_behavior"] == "inclusive":
            inclusive += t["amount"]
        else:
            exclusive += t["amount"]
    return inclusive, exclusive


def totals(subtotal: int, taxes: list[dict[str, Any]]) -> dict[str, Any]:
    """A document's money fields from the sum of its lines' amounts and their taxes."""
    inclusive, exclusive = split(taxes)
    total = subtotal + exclusive
    return {"subtotal": subtotal, "subtotal_excluding_tax": subtotal - inclusive,
            "total": total, "total_excluding_tax": total - inclusive - exclusive,
            "total_taxes": total_taxes(taxes)}


def total_taxes(taxes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Taxes summed per tax rate, behaviour and reason, in order of first appearance."""
    grouped: dict[tuple[Any, ...], dict[str, Any]] = {}
    for t in taxes:
        key = (t["tax_rate_details"]["tax_rate"], t["tax_behavior"], t["taxability_reason"])
        if key in grouped:
            grouped[key]["amount"] += t["amount"]
            grouped[key]["taxable_amount"] += t["taxable_amount"]
        else:
            grouped[key] = {**t, "tax_rate_details": dict(t["tax_rate_details"])}
    return list(grouped.values())


retrieve_endpoint("tax_rate", "/v1/tax_rates", "TaxRate")
