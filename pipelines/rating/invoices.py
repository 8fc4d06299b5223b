"""Invoice drafts: what a subscription owes at one cut date B, as pure data (contract section 3).

At each boundary B (``start_date`` and every period end, see ``periods.boundaries``) one invoice
is cut with:

1. in-arrears lines for the service period *ending* at B: every usage price (a zero line when
   there was no usage) and every ``in_arrears`` flat fee (prorated for a partial period);
2. a ``minimum_commitment`` top-up for that same period when its charges fall short
   (see ``docs/billing-semantics.md`` for which charges count);
3. in-advance flat fees for the service period *starting* at B (none at ``end_date``);
4. discounts, as negative lines, per service period.

A draft may also carry **adjustments** (contract section 9): amounts an operator or a custom
invoicing integration added by hand, kept across re-ratings (``adjust_draft``). They do not
count towards the minimum commitment; percentage discounts take their share of positive
adjustments (as their own discount lines), fixed-amount discounts do not; a negative adjustment
(a credit) is never discounted and takes at most what is left of the invoice.

Every line amount is rounded once; invoice totals are sums of rounded lines. Invoice and line
ids are derived from the subscription, the boundary, the price and the period, so re-rating
the same cut yields the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from pipelines.catalog.models import Discount, Meter, Plan, Price, Subscription
from pipelines.rating.money import round_money, zero
from pipelines.rating.periods import (
    ServicePeriod,
    billing_month,
    boundaries,
    period_ending_at,
    period_starting_at,
)
from pipelines.rating.pricing import RatedAmount, TierCharge, rate_flat, rate_usage

LineType = Literal["usage", "flat", "minimum_commitment", "discount", "adjustment"]
UsageQuantities = Mapping[tuple[str, date], Decimal]
"""Measured quantity per (meter_key, period_start); a missing entry means no usage (0)."""
UsageBySubscription = dict[str, dict[tuple[str, date], Decimal]]
"""Measured usage of many subscriptions: their `UsageQuantities` keyed by subscription id."""

MINIMUM_COMMITMENT_KEY = "minimum_commitment"
ADJUSTMENT_KEY = "adjustment"   # the price_key of every adjustment line
ADJUSTMENT_LIMIT = Decimal(10) ** 18
"""An adjustment's amount, quantity and unit price, and the amount a quantity x unit price comes
to once rounded, are each less than this in absolute value (10^18, a quintillion of any
currency): far above any real invoice, and far enough below what the ledger's DECIMAL(38, 12)
columns hold (26 digits before the point) that an invoice's lines, discounts and totals stay
exact. The integration API refuses more with a 422, `billing invoice adjust` with a message."""
RATED_CHARGE_TYPES = ("usage", "flat", "minimum_commitment")
"""Line types the rating prices from the catalog: what a period's discounts apply to."""
DEFAULT_DAYS_UNTIL_DUE = 30  # the catalog loader's default for send_invoice subscriptions
_DASH = "\u2013"
_MODEL_LABEL = {"per_unit": "per unit", "package": "package"}


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice, with what finance needs to explain its amount.

    ``amount`` is rounded to the currency's minor units; discount lines are negative.
    ``quantity`` is the metered quantity for usage lines and 1 for flat fees; ``unit_price`` is
    the per-unit price where one explains the amount (per_unit, volume) and the full-period
    amount of a flat fee (a prorated line says so in its description). Minimum commitment and
    discount lines carry neither. ``tiers`` is the per-tier breakdown of a tiered price.
    """

    line_id: str
    line_type: LineType
    price_key: str
    meter_key: str | None
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    period_start: date
    period_end: date
    tiers: tuple[TierCharge, ...] = ()


@dataclass(frozen=True)
class InvoiceDraft:
    """The invoice cut for one subscription at one boundary, before it is issued.

    ``period_start``/``period_end`` is the service period closed by this invoice (the period
    ending at the boundary), or, for the first cut at ``start_date``, the period it opens.
    ``subtotal`` is the sum of the non-discount lines, ``discount_total`` the amount taken off
    by discount lines (a positive number, or zero) and ``total`` the sum of all lines, i.e.
    ``subtotal - discount_total``; it is never negative.
    """

    invoice_id: str
    customer_id: str
    subscription_id: str
    plan_key: str
    billing_month: str
    boundary: date
    period_start: date
    period_end: date
    currency: str
    subtotal: Decimal
    discount_total: Decimal
    total: Decimal
    collection_method: str
    due_date: date
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True)
class Adjustment:
    """An amount added to a draft by hand (an operator, or a custom invoicing integration),
    kept by every re-rating of the draft (contract section 9).

    ``amount`` is what was asked, rounded once to the currency's minor units: positive (a
    charge) or negative (a credit), never zero (see ``adjustment_amount``). ``quantity`` and
    ``unit_price`` are set when it was asked as quantity x unit price. ``line_id`` is the id of
    its line on the invoice (``adjustment_line_id``).
    """

    line_id: str
    description: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def invoice_id(subscription_id: str, boundary: date) -> str:
    """The invoice's id: ``inv_`` + sha256(subscription_id|boundary)[:24]; stable across re-runs."""
    return "inv_" + _digest(f"{subscription_id}|{boundary.isoformat()}")


def line_id(invoice: str, price_key: str, line_type: str, period_start: date) -> str:
    """A line's id: ``il_`` + sha256(invoice_id|price_key|line_type|period_start)[:24]."""
    return "il_" + _digest(f"{invoice}|{price_key}|{line_type}|{period_start.isoformat()}")


def adjustment_line_id(invoice: str, key: str) -> str:
    """An adjustment line's id: ``il_`` + sha256(invoice_id|adjustment|key)[:24]. ``key`` says
    where the adjustment comes from (for the API: its inbox item and position in the call), so
    the same request applied again gives the same line, never a second one."""
    return "il_" + _digest(f"{invoice}|{ADJUSTMENT_KEY}|{key}")


def adjustment_amount(currency: str, *, amount: Decimal | None = None,
                      quantity: Decimal | None = None,
                      unit_price: Decimal | None = None) -> Decimal:
    """The amount of an adjustment, asked either as ``amount`` or as ``quantity`` x
    ``unit_price`` (the exact product), rounded once to the currency's minor units.

    Raises ValueError naming the argument when both or neither are given, when the quantity is
    not positive, when the amount rounds to zero (an adjustment of nothing), or when a value or
    the rounded amount is not less than ``ADJUSTMENT_LIMIT`` in absolute value.
    """
    if amount is not None and (quantity is not None or unit_price is not None):
        raise ValueError("amount: give an amount, or a quantity and a unit price, not both")
    if amount is not None:
        _within_limit("amount", amount)
        rounded = round_money(amount, currency)
        field = "amount"
        beyond = f"rounds to {rounded} {currency}"
    elif quantity is None or unit_price is None:
        missing = "quantity" if quantity is None else "unit_price"
        raise ValueError(f"{missing}: required (give an amount, or a quantity and a unit price)")
    else:
        _within_limit("quantity", quantity)
        _within_limit("unit_price", unit_price)
        if quantity <= 0:
            raise ValueError(f"quantity: must be positive, got {quantity} (a credit is a "
                             "negative amount or unit price)")
        rounded = round_money(Fraction(quantity) * Fraction(unit_price), currency)
        field = "unit_price"
        beyond = f"quantity x unit_price comes to {rounded} {currency}"
    if rounded == 0:
        raise ValueError(f"{field}: the adjustment rounds to {rounded} {currency}; an "
                         "adjustment must change the invoice")
    if abs(rounded) >= ADJUSTMENT_LIMIT:
        raise ValueError(f"{field}: {beyond}; an adjustment must be less than 10^18 in "
                         "absolute value")
    return rounded


def _within_limit(field: str, value: Decimal) -> None:
    """Refuse a value that is not finite or not less than ``ADJUSTMENT_LIMIT`` in absolute
    value, before any arithmetic on it."""
    if not value.is_finite() or abs(value) >= ADJUSTMENT_LIMIT:
        raise ValueError(f"{field}: must be less than 10^18 in absolute value, got {value}")


def _span(period: ServicePeriod) -> str:
    return f"{period.start.isoformat()} {_DASH} {period.end.isoformat()}"


def _label(price: Price) -> str:
    return price.description or price.key.replace("_", " ").capitalize()


def _proration_note(period: ServicePeriod) -> str:
    return f" (prorated {period.days}/{period.full_days} days)" if period.is_partial else ""


@dataclass(frozen=True)
class _Charge:
    """A charge before discounts, not yet given its invoice's ids."""

    line_type: LineType
    price_key: str
    meter_key: str | None
    description: str
    quantity: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    period: ServicePeriod
    tiers: tuple[TierCharge, ...] = ()


def _flat_charge(price: Price, period: ServicePeriod, currency: str) -> _Charge:
    rated = rate_flat(price, currency, period.days, period.full_days)
    return _Charge("flat", price.key, None, f"{_label(price)} {_span(period)}"
                   f"{_proration_note(period)}", rated.quantity, rated.unit_price, rated.amount,
                   period)


def _usage_charge(price: Price, period: ServicePeriod, currency: str,
                  usage: UsageQuantities) -> _Charge:
    if price.meter is None:
        raise ValueError(f"usage price {price.key!r} names no meter")
    quantity = usage.get((price.meter, period.start), Decimal(0))
    rated: RatedAmount = rate_usage(price, quantity, currency)
    model = price.tier_mode if price.type == "tiered" else _MODEL_LABEL[price.type]
    return _Charge("usage", price.key, price.meter,
                   f"{_label(price)} ({model}) {_span(period)}", quantity, rated.unit_price,
                   rated.amount, period, rated.tiers)


def _advance_charges(plan: Plan, period: ServicePeriod) -> list[_Charge]:
    """The in-advance flat fees of a period, billed on the invoice cut at its start."""
    return [_flat_charge(p, period, plan.currency) for p in plan.prices
            if p.type == "flat" and p.cadence == "in_advance"]


def _arrears_charges(plan: Plan, period: ServicePeriod, usage: UsageQuantities) -> list[_Charge]:
    """The in-arrears charges of a period (usage prices and in_arrears flat fees), in plan order."""
    charges: list[_Charge] = []
    for price in plan.prices:
        if price.type == "flat":
            if price.cadence == "in_arrears":
                charges.append(_flat_charge(price, period, plan.currency))
        else:
            charges.append(_usage_charge(price, period, plan.currency, usage))
    return charges


def minimum_commitment_for(plan: Plan, period: ServicePeriod) -> Decimal | None:
    """The plan's minimum commitment for one period, prorated by days like a flat fee."""
    if plan.minimum_commitment is None:
        return None
    return round_money(Fraction(plan.minimum_commitment) * period.fraction, plan.currency)


def _commitment_charge(plan: Plan, period: ServicePeriod, arrears: list[_Charge]
                       ) -> _Charge | None:
    """The top-up of a closed period whose charges fall short of the minimum commitment.

    The charges that count are everything billed for that period before discounts: its
    in-advance flat fees (billed on the earlier invoice at the period's start) plus its
    in-arrears flat fees and usage lines (billed now), each as rounded on its invoice.
    """
    commitment = minimum_commitment_for(plan, period)
    if commitment is None:
        return None
    counted = sum((c.amount for c in _advance_charges(plan, period)), zero(plan.currency))
    counted += sum((c.amount for c in arrears), zero(plan.currency))
    shortfall = commitment - counted
    if shortfall <= 0:
        return None
    description = (f"Minimum commitment top-up to {commitment} {plan.currency} "
                   f"{_span(period)}{_proration_note(period)}")
    return _Charge("minimum_commitment", MINIMUM_COMMITMENT_KEY, None, description, None, None,
                   shortfall, period)


def discount_applies(discount: Discount, period: ServicePeriod) -> bool:
    """A discount covers the first ``periods`` service periods (index < periods); None: all."""
    return discount.periods is None or period.index < discount.periods


def _apply_discounts(discounts: tuple[Discount, ...], period: ServicePeriod, base: Decimal,
                     currency: str, used: list[Decimal] | None = None) -> list[Decimal]:
    """What each discount takes off one period's charges on one invoice (positive, rounded).

    Discounts apply in the order the subscription lists them, each to what the previous ones
    left. A percentage takes that share, rounded once. A fixed amount takes at most its amount
    per service period — less what it already took off the same period's in-advance fees
    (``used``) — and never more than what is left, so no total goes below zero.
    """
    remaining = base
    taken: list[Decimal] = []
    for index, discount in enumerate(discounts):
        cut = zero(currency)
        if discount_applies(discount, period) and remaining > 0:
            if discount.type == "percentage" and discount.percent is not None:
                cut = round_money(Fraction(remaining) * Fraction(discount.percent) / 100, currency)
            elif discount.type == "fixed" and discount.amount is not None:
                allowance = round_money(discount.amount, currency)
                if used is not None:
                    allowance -= used[index]
                cut = max(allowance, zero(currency))
            cut = min(cut, remaining)
        remaining -= cut
        taken.append(cut)
    return taken


def _discount_charges(subscription: Subscription, plan: Plan, period: ServicePeriod,
                      base: Decimal, in_advance_part: bool) -> list[_Charge]:
    """Negative discount lines for one period's charges on this invoice (``base``: their sum)."""
    currency = plan.currency
    used: list[Decimal] | None = None
    if not in_advance_part:
        # The in-advance fees of this period were billed (and discounted) at its start.
        advance = sum((c.amount for c in _advance_charges(plan, period)), zero(currency))
        used = _apply_discounts(subscription.discounts, period, advance, currency)
    taken = _apply_discounts(subscription.discounts, period, base, currency, used)
    lines: list[_Charge] = []
    for index, (discount, cut) in enumerate(zip(subscription.discounts, taken, strict=True)):
        if cut == 0:
            continue
        if discount.type == "percentage":
            what = f"{discount.percent}%"
        else:
            what = f"{round_money(discount.amount or Decimal(0), currency)} {currency} off"
        lines.append(_Charge("discount", f"discount_{index}", None,
                             f"Discount {what} {_span(period)}", None, None, -cut, period))
    return lines


def _adjustment_discounts(subscription: Subscription, period: ServicePeriod, charged: Decimal,
                          currency: str) -> list[_Charge]:
    """What percentage discounts take off an invoice's positive adjustments (``charged``: their
    sum), one discount line each (``price_key`` ``discount_<i>_adjustments``).

    Like Stripe's invoice-level discounts on invoice items: each percentage discount covering
    the invoice's service period takes its share of what the previous ones left, rounded once.
    A fixed-amount discount is an allowance per service period against the catalog's charges
    and never applies to adjustments; credits (negative adjustments) are never discounted, as
    Stripe does not discount negative invoice items.
    """
    remaining = charged
    lines: list[_Charge] = []
    for index, discount in enumerate(subscription.discounts):
        if (discount.type != "percentage" or discount.percent is None or remaining <= 0
                or not discount_applies(discount, period)):
            continue
        cut = min(round_money(Fraction(remaining) * Fraction(discount.percent) / 100, currency),
                  remaining)
        if cut == 0:
            continue
        remaining -= cut
        lines.append(_Charge("discount", f"discount_{index}_{ADJUSTMENT_KEY}s", None,
                             f"Discount {discount.percent}% on adjustments {_span(period)}",
                             None, None, -cut, period))
    return lines


def _priced_draft(subscription: Subscription, plan: Plan, boundary: date, inv: str,
                  kept: Sequence[InvoiceLine], adjustments: Sequence[Adjustment]) -> InvoiceDraft:
    """The draft of ``kept`` lines (rated charges, and any other line already on the invoice)
    plus ``adjustments``, with its discount lines and totals computed: the one place both a
    rating (``build_invoice``) and an adjustment (``adjust_draft``) price an invoice.

    Each period's discounts apply to its rated charges on this invoice (``RATED_CHARGE_TYPES``);
    percentage discounts also to the positive adjustments (``_adjustment_discounts``). Adjustment
    lines belong to the invoice's main service period (the one it closes, else the one it
    opens). A credit takes at most what is left of the invoice after discounts and earlier
    credits, so no total goes below zero: its line then carries less than was asked.
    """
    currency = plan.currency
    closing = period_ending_at(subscription, plan, boundary)
    opening = period_starting_at(subscription, plan, boundary)
    main = closing or opening
    assert main is not None  # every boundary closes or opens a period

    def rated(period: ServicePeriod) -> Decimal:
        return sum((line.amount for line in kept if line.line_type in RATED_CHARGE_TYPES
                    and line.period_start == period.start), zero(currency))

    discounts: list[_Charge] = []
    if closing is not None:
        discounts += _discount_charges(subscription, plan, closing, rated(closing), False)
    if opening is not None:
        discounts += _discount_charges(subscription, plan, opening, rated(opening), True)
    charged = sum((a.amount for a in adjustments if a.amount > 0), zero(currency))
    discounts += _adjustment_discounts(subscription, main, charged, currency)
    discount_lines = [
        InvoiceLine(line_id(inv, c.price_key, c.line_type, c.period.start), c.line_type,
                    c.price_key, c.meter_key, c.description, c.quantity, c.unit_price, c.amount,
                    c.period.start, c.period.end, c.tiers)
        for c in discounts
    ]
    left = (sum((line.amount for line in kept), zero(currency)) + charged
            + sum((line.amount for line in discount_lines), zero(currency)))
    adjustment_lines: list[InvoiceLine] = []
    for adjustment in adjustments:
        amount = adjustment.amount
        if amount < 0:
            amount = max(amount, -max(left, zero(currency)))
            left += amount
        adjustment_lines.append(InvoiceLine(
            adjustment.line_id, "adjustment", ADJUSTMENT_KEY, None, adjustment.description,
            adjustment.quantity, adjustment.unit_price, amount, main.start, main.end))
    lines = (*kept, *adjustment_lines, *discount_lines)
    subtotal = sum((line.amount for line in lines if line.line_type != "discount"),
                   zero(currency))
    total = sum((line.amount for line in lines), zero(currency))
    if subscription.collection_method == "send_invoice":
        days = subscription.days_until_due
        due = boundary + timedelta(days=DEFAULT_DAYS_UNTIL_DUE if days is None else days)
    else:
        due = boundary
    return InvoiceDraft(
        invoice_id=inv,
        customer_id=subscription.customer,
        subscription_id=subscription.id,
        plan_key=plan.key,
        billing_month=billing_month(boundary),
        boundary=boundary,
        period_start=main.start,
        period_end=main.end,
        currency=currency,
        subtotal=subtotal,
        discount_total=subtotal - total,
        total=total,
        collection_method=subscription.collection_method,
        due_date=due,
        lines=lines,
    )


def build_invoice(subscription: Subscription, plan: Plan, meters: Mapping[str, Meter],
                  boundary: date, usage: UsageQuantities) -> InvoiceDraft:
    """The invoice draft cut for ``subscription`` at ``boundary``, as pure data.

    ``usage`` maps (meter_key, period_start) to the measured quantity of that service period;
    a missing entry is no usage and still gives a zero line. Raises ValueError when the
    boundary is not one of the subscription's cut dates or a price names an unknown meter.
    """
    if subscription.plan != plan.key:
        raise ValueError(f"subscription {subscription.id!r} is on plan {subscription.plan!r}, "
                         f"not {plan.key!r}")
    unknown = sorted(m for m in plan.meter_keys if m not in meters)
    if unknown:
        raise ValueError(f"plan {plan.key!r} bills unknown meter(s) {', '.join(unknown)}")
    if boundary not in boundaries(subscription, plan, boundary):
        raise ValueError(f"{boundary} is not an invoice boundary of subscription "
                         f"{subscription.id!r}")
    closing = period_ending_at(subscription, plan, boundary)
    opening = period_starting_at(subscription, plan, boundary)
    charges: list[_Charge] = []
    if closing is not None:
        arrears = _arrears_charges(plan, closing, usage)
        commitment = _commitment_charge(plan, closing, arrears)
        charges += arrears + ([commitment] if commitment else [])
    if opening is not None:
        charges += _advance_charges(plan, opening)

    inv = invoice_id(subscription.id, boundary)
    rated = tuple(
        InvoiceLine(line_id(inv, c.price_key, c.line_type, c.period.start), c.line_type,
                    c.price_key, c.meter_key, c.description, c.quantity, c.unit_price, c.amount,
                    c.period.start, c.period.end, c.tiers)
        for c in charges
    )
    return _priced_draft(subscription, plan, boundary, inv, rated, ())


def adjust_draft(draft: InvoiceDraft, subscription: Subscription, plan: Plan,
                 adjustments: Sequence[Adjustment]) -> InvoiceDraft:
    """``draft`` with ``adjustments`` as its adjustment lines (in that order, replacing the ones
    it had), its discounts and totals computed again by the rating's own rules.

    Rated lines are kept exactly as they are, the minimum commitment line included: an
    adjustment does not count towards the commitment (it changes what the customer owes by what
    was asked, not what the plan charges). Used by the billing run on every re-rating (the
    adjustments stored for the invoice) and when a draft is adjusted by hand. Raises ValueError
    when the draft is not this subscription's.
    """
    if draft.subscription_id != subscription.id or subscription.plan != plan.key:
        raise ValueError(f"invoice {draft.invoice_id} is not of subscription {subscription.id!r} "
                         f"on plan {plan.key!r}")
    if draft.invoice_id != invoice_id(subscription.id, draft.boundary):
        raise ValueError(f"invoice {draft.invoice_id} is not the cut of subscription "
                         f"{subscription.id!r} at {draft.boundary} (a supplementary invoice?)")
    kept = tuple(line for line in draft.lines if line.line_type not in ("discount", "adjustment"))
    return _priced_draft(subscription, plan, draft.boundary, draft.invoice_id, kept, adjustments)


def build_invoices(subscription: Subscription, plan: Plan, meters: Mapping[str, Meter],
                   usage: UsageQuantities, until: date) -> list[InvoiceDraft]:
    """Every invoice draft of a subscription cut on or before ``until``, in date order.

    A cut with no line at all is skipped: the ``start_date`` cut of a plan with no in-advance
    fee has nothing to bill.
    """
    drafts = (build_invoice(subscription, plan, meters, b, usage)
              for b in boundaries(subscription, plan, until))
    return [d for d in drafts if d.lines]
