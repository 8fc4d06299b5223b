"""One billing month: which cuts are due, the usage they close, and their invoice drafts.

The month is the UTC month of the invoice boundary (the monthly partition). Only boundaries on
or before "now" are rated: a run during the month rates the cycles that closed so far, a run for
a past month is a backfill.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime

from pipelines.catalog.models import Catalog, Subscription
from pipelines.rating.invoices import InvoiceDraft, UsageBySubscription, build_invoice
from pipelines.rating.periods import ServicePeriod, billing_month, boundaries, period_ending_at


@dataclass(frozen=True)
class InvoiceCut:
    """An invoice boundary of one subscription in the month, and the period it closes."""

    subscription: Subscription
    boundary: date
    closing: ServicePeriod | None


def month_bounds(month: str) -> tuple[date, date]:
    """First and last day of 'YYYY-MM'."""
    try:
        year, number = (int(part) for part in month.split("-"))
        last = calendar.monthrange(year, number)[1]
    except (ValueError, calendar.IllegalMonthError) as exc:
        raise ValueError(f"billing month {month!r} is not YYYY-MM") from exc
    return date(year, number, 1), date(year, number, last)


# The cuts last worked out, by catalog (the same object while its files are unchanged), month
# and now: a run's steps share them rather than walk every subscription's cycles again.
_last_due: tuple[Catalog, str, datetime, tuple[InvoiceCut, ...]] | None = None


def due_cuts(catalog: Catalog, month: str, now: datetime) -> list[InvoiceCut]:
    """Every subscription's boundaries in `month` that are not after today (UTC)."""
    global _last_due
    if (_last_due is not None and _last_due[0] is catalog
            and _last_due[1:3] == (month, now)):
        return list(_last_due[3])
    cuts = _work_out_due_cuts(catalog, month, now)
    _last_due = (catalog, month, now, tuple(cuts))
    return cuts


def _work_out_due_cuts(catalog: Catalog, month: str, now: datetime) -> list[InvoiceCut]:
    first, last = month_bounds(month)
    until = min(last, now.date())
    cuts: list[InvoiceCut] = []
    if until < first:
        return cuts
    for subscription in sorted(catalog.subscriptions.values(), key=lambda s: s.id):
        plan = catalog.plans[subscription.plan]
        for boundary in boundaries(subscription, plan, until):
            if boundary >= first and billing_month(boundary) == month:
                cuts.append(InvoiceCut(subscription, boundary,
                                       period_ending_at(subscription, plan, boundary)))
    return cuts


def draft_invoices(catalog: Catalog, cuts: list[InvoiceCut],
                   usage: UsageBySubscription) -> list[InvoiceDraft]:
    """The invoice drafts of the cuts; a cut with nothing to bill gives no invoice."""
    drafts = []
    for cut in cuts:
        plan = catalog.plans[cut.subscription.plan]
        draft = build_invoice(cut.subscription, plan, catalog.meters, cut.boundary,
                              usage.get(cut.subscription.id, {}))
        if draft.lines:
            drafts.append(draft)
    return drafts
