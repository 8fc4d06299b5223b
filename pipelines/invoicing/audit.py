"""The checks that guard invoice money, as functions of a warehouse connection and a month.

Each returns a plain `CheckOutcome`: the billing stage runs them as asset checks
(assets/billing.py, through `pipelines.asset_checks`); tests call them directly.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import duckdb
import polars as pl

from pipelines.catalog.models import Catalog, Price
from pipelines.checks import CheckOutcome, markdown_table, pandera_check
from pipelines.invoicing.invoice_checks import (
    CorrectionCoverage,
    InvoiceTotals,
    RepricedLines,
    TaxedLines,
    UsageCoverage,
)
from pipelines.rating.periods import service_periods
from pipelines.rating.pricing import rate_flat, rate_usage
from pipelines.rating.tax import line_tax
from pipelines.warehouse import sql

MONEY = pl.Decimal(38, 12)


def invoice_totals(con: duckdb.DuckDBPyConnection, month: str) -> CheckOutcome:
    """Totals against lines, currency against plan, one invoice per cut; tax totals against
    the lines' tax, and each line's tax computed again from its rate (the invoice's)."""
    frame = con.sql(sql("billing/invoice_audit"), params={"billing_month": month}).pl()
    totals = pandera_check(InvoiceTotals, frame)
    if not totals.passed:
        return totals
    taxed = pandera_check(TaxedLines, line_tax_audit(con, month))
    if not taxed.passed:
        return taxed
    return CheckOutcome(passed=True, metadata={"rows_checked": frame.height,
                                               "lines_tax_checked": taxed.metadata["rows_checked"]})


def line_tax_audit(con: duckdb.DuckDBPyConnection, month: str) -> pl.DataFrame:
    """The month's lines with ``expected_tax``: their amount taxed again at their rate."""
    frame = con.sql(sql("billing/invoice_line_tax_audit"), params={"billing_month": month}).pl()
    expected = [line_tax(amount, percent, inclusive, currency)
                for amount, percent, inclusive, currency in frame.select(
                    "amount", "tax_rate_percent", "tax_inclusive", "currency").iter_rows()]
    return frame.with_columns(pl.Series("expected_tax", expected, dtype=MONEY))


def _expected_flat(catalog: Catalog, subscription_id: str, price: Price, currency: str,
                   period_start: date, period_end: date) -> Decimal | None:
    """A flat line's amount from the catalog: prorated by the days of its service period."""
    subscription = catalog.subscriptions.get(subscription_id)
    if subscription is None:
        return None
    plan = catalog.plans[subscription.plan]
    period = next((p for p in service_periods(subscription, plan, period_end)
                   if (p.start, p.end) == (period_start, period_end)), None)
    if period is None:
        return None
    return rate_flat(price, currency, period.days, period.full_days).amount


def lines_priced(con: duckdb.DuckDBPyConnection, catalog: Catalog, month: str,
                 now: datetime) -> CheckOutcome:
    """Every usage and flat line written at `now` (drafts, and drafts that left draft then) priced
    again: usage from the measured quantity, flat fees prorated by their service period's days.
    Invoices issued before are frozen and not re-priced."""
    lines = con.execute("""
        SELECT l.line_id, l.line_type, l.price_key, u.quantity, l.amount, i.plan_key,
               i.currency, i.subscription_id, l.period_start, l.period_end
        FROM billing.invoice_lines l
        JOIN billing.invoices i USING (invoice_id)
        LEFT JOIN billing.usage_quantities u
          ON u.subscription_id = i.subscription_id AND u.meter_key = l.meter_key
         AND u.period_start = l.period_start
        WHERE i.billing_month = $month AND l.line_type IN ('usage', 'flat')
          AND (i.status = 'draft' OR i.rated_at = $now)
        ORDER BY l.line_id""", {"month": month, "now": now}).fetchall()
    rows = []
    for (line_id, line_type, price_key, quantity, amount, plan_key, currency, subscription_id,
         period_start, period_end) in lines:
        plan = catalog.plans.get(plan_key)
        price = next((p for p in plan.prices if p.key == price_key), None) if plan else None
        expected: Decimal | None = None
        if price is not None and line_type == "flat":
            expected = _expected_flat(catalog, subscription_id, price, currency, period_start,
                                      period_end)
        elif price is not None and quantity is not None:
            expected = rate_usage(price, quantity, currency).amount
        rows.append({"line_id": line_id, "amount": amount, "expected_amount": expected})
    frame = pl.DataFrame(rows, schema={"line_id": pl.String, "amount": MONEY,
                                       "expected_amount": MONEY})
    return pandera_check(RepricedLines, frame)


def issued_differences(con: duckdb.DuckDBPyConnection, month: str) -> CheckOutcome:
    """A warning while corrections of the month's issued invoices wait for approval: until a
    person decides, those invoices and their corrections differ from the re-rating."""
    rows = con.execute("""
        SELECT c.correction_id, coalesce(i.invoice_number, c.invoice_id) AS invoice,
               c.description, c.covered_amount, c.rated_amount, c.delta
        FROM billing.corrections c JOIN billing.invoices i USING (invoice_id)
        WHERE i.billing_month = $month AND c.status = 'pending_approval'
        ORDER BY ALL""", {"month": month}).fetchall()
    frame = pl.DataFrame(rows, orient="row", schema=[
        "correction_id", "invoice", "line", "covered_amount", "rated_amount", "delta"])
    return CheckOutcome(
        passed=not rows, severity="warning",
        description=f"{len(rows)} correction(s) of issued invoices wait for approval "
                    "(billing corrections list)",
        metadata={"pending_approval": len(rows), "details": markdown_table(frame.head(20))})


def corrections_cover(con: duckdb.DuckDBPyConnection, month: str) -> CheckOutcome:
    """For every line of the month's invoices past draft: issued + corrections not rejected =
    the latest rating (or a person rejected the delta at this rating)."""
    frame = con.sql(sql("billing/correction_coverage"), params={"billing_month": month}).pl()
    return pandera_check(CorrectionCoverage, frame)


def usage_coverage(con: duckdb.DuckDBPyConnection, month: str) -> CheckOutcome:
    """Each event of a billed meter in a closed period counted exactly once, from one pass over
    the events of the month's event names inside its rows' span."""
    event_names, range_start, range_end = con.execute("""
        SELECT coalesce(list(DISTINCT m.event_name ORDER BY m.event_name), []),
               min(u.period_start)::TIMESTAMPTZ, max(u.period_end)::TIMESTAMPTZ
        FROM billing.usage_quantities u JOIN billing.meters m USING (meter_key)
        WHERE u.billing_month = $month""", {"month": month}).fetchall()[0]
    frame = con.sql(sql("billing/usage_audit"), params={
        "billing_month": month, "event_names": list(event_names),
        "range_start": range_start, "range_end": range_end}).pl()
    return pandera_check(UsageCoverage, frame)
