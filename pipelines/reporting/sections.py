"""The sections of the report page, one function per section, each given the month's data.

Summary (totals per currency, reconciliation by match status), revenue by plan, the
discrepancies and their findings, sync and pipeline health, receivables aging and the open
alerts. Currencies are never added together; each is charted on its own scale.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

from pipelines.reporting.charts import Bar, BarGroup, Series, bar_chart, line_chart
from pipelines.reporting.formatting import (
    count,
    format_money,
    instant,
    missing_note,
    nothing_to_report,
    number,
    status_badge,
    table,
    text,
)
from pipelines.reporting.report_data import (
    RECONCILIATION_TABLES,
    SYNC_LOOKBACK_DAYS,
    ReportData,
    Row,
)

AGING_BUCKETS = ("0-30", "31-60", "61-90", "90+")


def summary_section(data: ReportData) -> str:
    """The month at a glance: totals per currency and reconciliation rows per match status."""
    invoices = sum(r["invoices"] for r in data.invoice_totals)
    reconciled = max((r["reconciled_at"] for r in data.match_counts if r["reconciled_at"]),
                     default=None)
    facts = [("Month", f"{data.month} ({calendar.month_name[data.first_day.month]} "
                       f"{data.first_day.year})"),
             ("Generated at", instant(data.generated_at)),
             ("Reconciled at", instant(reconciled) or "not reconciled yet"),
             ("Invoices", count(invoices))]
    parts = ['<dl class="facts">' + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>"
                                            for k, v in facts) + "</dl>"]
    parts.append("<h3>Totals per currency</h3>")
    if data.invoice_totals:
        parts.append(table(
            ("currency", "invoices", "issued", "issued total", "awaiting issue",
             "awaiting total", "voided"),
            ([text(r["currency"]), count(r["invoices"]), count(r["issued"]),
              format_money(r["issued_total"], r["currency"]), count(r["awaiting_issue"]),
              format_money(r["awaiting_total"], r["currency"]), count(r["voided"])]
             for r in data.invoice_totals), numeric=range(1, 7), css="data totals"))
    else:
        parts.append(nothing_to_report(f"no invoices for {data.month}."))
    parts.append("<h3>Reconciliation by match status</h3>")
    parts.append(missing_note(data, RECONCILIATION_TABLES))
    if data.match_counts:
        parts.append(table(
            ("kind", "match status", "rows"),
            ([text(r["kind"]), status_badge(r["match_status"]), count(r["rows"])]
             for r in data.match_counts), numeric=(2,), css="data match-counts"))
    else:
        parts.append(nothing_to_report(f"no reconciliation rows for {data.month}."))
    return "".join(parts)


def revenue_section(data: ReportData) -> str:
    """Issued revenue per plan, one subtotal and one chart scale per currency."""
    if not data.revenue:
        return nothing_to_report(f"no issued invoices for {data.month}.")
    by_currency: dict[str, list[Row]] = {}
    for row in data.revenue:
        by_currency.setdefault(row["currency"], []).append(row)
    table_rows: list[list[str]] = []
    groups = []
    for currency, rows in by_currency.items():
        for r in rows:
            table_rows.append([text(currency), text(r["plan_key"]), text(r["plan_name"]),
                               count(r["invoices"]), format_money(r["revenue"], currency)])
        subtotal = sum((r["revenue"] for r in rows), Decimal(0))
        table_rows.append([text(currency), "<strong>all plans</strong>", "",
                           count(sum(r["invoices"] for r in rows)),
                           f"<strong>{format_money(subtotal, currency)}</strong>"])
        groups.append(BarGroup(currency, [
            Bar(r["plan_key"], r["revenue"], f"{currency} {format_money(r['revenue'], currency)}")
            for r in rows]))
    return (
        '<p class="note">Issued invoices of the billing month (not draft, draft.*, issuing*, '
        "voided). Currencies are never added together.</p>"
        + table(("currency", "plan", "plan name", "invoices", "revenue"), table_rows,
                 numeric=(3, 4), css="data revenue")
        + bar_chart(f"Revenue by plan, {data.month}", groups,
                    note="Each currency is drawn on its own scale."))


def discrepancies_section(data: ReportData) -> str:
    """Reconciliation rows that do not match: counts per type, a chart, the findings."""
    parts = [missing_note(data, RECONCILIATION_TABLES)]
    counts = [r for r in data.match_counts if r["match_status"] != "matched"]
    if not counts:
        parts.append(nothing_to_report(f"every reconciled invoice, payment and usage period of "
                              f"{data.month} matches."))
        return "".join(parts)
    parts.append(table(("kind", "match status", "rows"),
                        ([text(r["kind"]), status_badge(r["match_status"]), count(r["rows"])]
                         for r in counts), numeric=(2,), css="data discrepancy-counts"))
    parts.append(bar_chart(f"Discrepancies by type, {data.month}", [BarGroup("rows", [
        Bar(f"{r['kind']} \u00b7 {r['match_status']}", r["rows"], count(r["rows"]))
        for r in counts])]))
    total = data.discrepancy_total
    shown = len(data.discrepancies)
    parts.append(f"<h3>Findings ({count(total)})</h3>")
    if shown < total:
        parts.append(f'<p class="note">The first {count(shown)} of {count(total)} are shown; '
                     f"the exports beside this page hold every row.</p>")
    parts.append('<p class="note">Orphans (provider objects whose invoice the ledger does not '
                 "know) have no billing month and appear in every month's report.</p>")
    parts.append(table(
        ("kind", "invoice", "customer", "provider", "status", "detail"),
        ([text(r["kind"]),
          text(r["invoice_id"]) + (' <span class="badge warn">orphan</span>' if r["orphan"]
                                 else ""),
          text(r["customer_id"]), text(r["provider"]), status_badge(r["match_status"]),
          text(r["detail"])] for r in data.discrepancies), wrap=(5,), css="data findings"))
    return "".join(parts)


def sync_health_section(data: ReportData) -> str:
    """Provider calls per day (the month and the days before) and the pipeline health."""
    parts = [f'<p class="note">Provider calls per day, {data.sync_first_day.isoformat()} to '
             f"{data.last_day.isoformat()} (the month and the {SYNC_LOOKBACK_DAYS} days "
             "before).</p>", missing_note(data, ("health.sync_health",))]
    if data.sync_health:
        days = [data.sync_first_day + timedelta(days=i)
                for i in range((data.last_day - data.sync_first_day).days + 1)]
        labels = [d.isoformat() for d in days]
        by_provider: dict[str, dict[date, Row]] = {}
        for row in data.sync_health:
            by_provider.setdefault(row["provider"], {})[row["day"]] = row
        for provider, rows in by_provider.items():
            series = [Series(name, [rows[d][column] if d in rows else 0 for d in days], color)
                      for name, column, color in (("attempts", "attempts", "#2f6fad"),
                                                  ("failed", "failed", "#c0392b"),
                                                  ("rate limited (429)", "rate_limited",
                                                   "#e08e0b"))]
            parts.append(f"<h3>{text(provider)}</h3>")
            parts.append(line_chart(f"{provider}: attempts, failed and rate limited per day",
                                    labels, series, marker=SYNC_LOOKBACK_DAYS,
                                    marker_label=f"{data.month} starts"))
        parts.append(table(
            ("provider", "day", "attempts", "succeeded", "failed", "retried", "rate limited",
             "p50 ms", "p95 ms", "oldest pending h", "pending"),
            ([text(r["provider"]), text(r["day"].isoformat()), count(r["attempts"]),
              count(r["succeeded"]), count(r["failed"]), count(r["retried"]),
              count(r["rate_limited"]), number(r["p50_ms"]), number(r["p95_ms"]),
              number(r["oldest_pending_hours"], 1), count(r["invoices_pending"])]
             for r in data.sync_health), numeric=range(2, 11), css="data sync"))
    else:
        parts.append(nothing_to_report("no provider calls in this window."))
    parts.append("<h3>Pipeline health</h3>")
    parts.append(missing_note(data, ("health.pipeline_health",)))
    if data.pipeline_health:
        columns = ("files", "received", "accepted", "duplicates", "rejected", "conflicts",
                   "late_events", "stuck_invoices", "failed_deliveries", "payment_errors")
        parts.append(table(
            ("day", *(c.replace("_", " ") for c in columns)),
            ([text(r["day"].isoformat()), *(count(r[c]) for c in columns)]
             for r in data.pipeline_health), numeric=range(1, 11), css="data pipeline"))
    else:
        parts.append(nothing_to_report(f"no pipeline health rows for {data.month}."))
    return "".join(parts)


def aging_section(data: ReportData) -> str:
    """What is owed, per currency and days past due."""
    parts = [missing_note(data, ("finance.receivables_aging",))]
    if not data.aging:
        parts.append(nothing_to_report("no open receivables."))
        return "".join(parts)
    cells: dict[str, dict[str, Row]] = {}
    for row in data.aging:
        cells.setdefault(row["currency"], {})[row["aging_bucket"]] = row
    buckets = list(AGING_BUCKETS) + sorted({r["aging_bucket"] for r in data.aging}
                                           - set(AGING_BUCKETS))
    reconciled = max((r["reconciled_at"] for r in data.aging), default=None)
    table_rows = []
    groups = []
    for currency, by_bucket in cells.items():
        row = [text(currency)]
        for bucket in buckets:
            cell = by_bucket.get(bucket)
            row.append(format_money(cell["amount_due"], currency) if cell else "")
        total = sum((c["amount_due"] for c in by_bucket.values()), Decimal(0))
        row.append(f"<strong>{format_money(total, currency)}</strong>")
        row.append(count(sum(c["invoices"] for c in by_bucket.values())))
        table_rows.append(row)
        groups.append(BarGroup(currency, [
            Bar(f"{bucket} days", by_bucket[bucket]["amount_due"] if bucket in by_bucket else 0,
                f"{currency} {format_money(by_bucket[bucket]['amount_due'], currency)}"
                if bucket in by_bucket else "\u2014") for bucket in buckets]))
    columns = ["currency", *(f"{bucket} days" for bucket in buckets), "total due", "invoices"]
    return "".join(parts) + (
        f'<p class="note">Amounts due as of {text(instant(reconciled))}, by days past due '
        "(0-30 includes invoices not yet due).</p>"
        + table(columns, table_rows, numeric=range(1, len(columns)), css="data aging")
        + bar_chart("Receivables by aging bucket", groups,
                    note="Each currency is drawn on its own scale."))


def alerts_section(data: ReportData) -> str:
    """The alerts open now, whatever month they started in."""
    parts = [missing_note(data, ("health.alerts",))]
    if not data.alerts:
        parts.append(nothing_to_report("no open alerts."))
        return "".join(parts)
    parts.append(table(
        ("severity", "alert", "subject", "detail", "first seen", "last seen", "source"),
        ([f'<span class="badge {text(r["severity"])}">{text(r["severity"])}</span>',
          text(r["alert_key"]), text(r["subject"]), text(r["detail"]),
          text(instant(r["first_seen"])), text(instant(r["last_seen"])), text(r.get("source"))]
         for r in data.alerts),
        wrap=(2, 3), css="data alerts"))
    return "".join(parts)
