"""The monthly finance report: one self-contained HTML page plus CSV and Parquet exports.

Finance opens the page from disk, with no server and nothing fetched (inline CSS, inline SVG
charts, no JavaScript): what the month billed, how the reconciliation with the providers came
out, how the syncs and the pipeline behaved, what is owed and what is on fire. Beside it, the
reconciliation and aging tables are exported whole (every month) with DuckDB's COPY, so their
DECIMAL amounts stay exact in Parquet.

The warehouse is only read (`connect_reader`); the queries are in `sql/reporting/`, one file
per dataset. Money is printed from exact Decimals with the currency's minor units
(`pipelines.rating.money`) and never summed across currencies.
"""

from __future__ import annotations

import calendar
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from pipelines import settings
from pipelines.rating.money import round_money
from pipelines.reporting.charts import Bar, BarGroup, Series, bar_chart, line_chart
from pipelines.warehouse import connect_reader, run_sql, sql

MONTH_PATTERN = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
AGING_BUCKETS = ("0-30", "31-60", "61-90", "90+")
SYNC_LOOKBACK_DAYS = 30
DISCREPANCY_ROW_LIMIT = 1000
RECONCILIATION_TABLES = ("finance.invoice_reconciliation", "finance.payment_reconciliation",
                         "finance.usage_reconciliation")
# Export name (file stem, and its query in sql/reporting/) -> the table it holds whole.
EXPORTS = {
    "finance_invoice_reconciliation": "finance.invoice_reconciliation",
    "finance_payment_reconciliation": "finance.payment_reconciliation",
    "finance_usage_reconciliation": "finance.usage_reconciliation",
    "finance_receivables_aging": "finance.receivables_aging",
}
EXPORT_FORMATS = {"csv": "(FORMAT csv, HEADER)", "parquet": "(FORMAT parquet)"}
SECTIONS = (("summary", "Summary"), ("revenue", "Revenue"), ("discrepancies", "Discrepancies"),
            ("sync-health", "Sync health"), ("aging", "Receivables aging"),
            ("alerts", "Open alerts"))

Row = dict[str, Any]


@dataclass(frozen=True)
class ReportFiles:
    """What `build_report` wrote: the page, the exports, and the exports it could not write
    because their table is not in the warehouse yet."""

    page: Path
    exports: tuple[Path, ...]
    skipped: tuple[str, ...]


@dataclass
class ReportData:
    """Every dataset of one month's report, as read from the warehouse."""

    month: str
    first_day: date
    last_day: date
    generated_at: datetime
    missing: set[str] = field(default_factory=set)
    invoice_totals: list[Row] = field(default_factory=list)
    match_counts: list[Row] = field(default_factory=list)
    discrepancies: list[Row] = field(default_factory=list)
    revenue: list[Row] = field(default_factory=list)
    sync_health: list[Row] = field(default_factory=list)
    pipeline_health: list[Row] = field(default_factory=list)
    aging: list[Row] = field(default_factory=list)
    alerts: list[Row] = field(default_factory=list)

    @property
    def sync_first_day(self) -> date:
        """The first day of the sync-health window: 30 days before the month."""
        return self.first_day - timedelta(days=SYNC_LOOKBACK_DAYS)

    @property
    def discrepancy_total(self) -> int:
        """How many reconciliation rows of the month are not a match."""
        return sum(r["rows"] for r in self.match_counts if r["match_status"] != "matched")


def parse_month(text: str) -> tuple[date, date]:
    """The first and last day of a report month given as 'YYYY-MM'; ValueError otherwise."""
    match = MONTH_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"--month must be YYYY-MM (e.g. 2026-01), got {text!r}")
    year, month = int(match[1]), int(match[2])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


# ----------------------------------------------------------------------------- reading


def _rows(con: duckdb.DuckDBPyConnection, name: str,
          params: Mapping[str, object] | None = None) -> list[Row]:
    """The rows of the query `sql/reporting/<name>.sql` as dicts, binding the parameters it
    uses."""
    text = sql(f"reporting/{name}")
    code = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("--"))
    used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", code)}
    cursor = con.execute(code, used)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}


def load_report_data(con: duckdb.DuckDBPyConnection, month: str, now: datetime) -> ReportData:
    """Read every dataset of `month`'s report; a table that does not exist yet reads as empty
    and is listed in `missing`, so the page says so instead of failing."""
    first, last = parse_month(month)
    data = ReportData(month=month, first_day=first, last_day=last, generated_at=now)
    present = _tables(con)
    needed = {"billing.invoices", "billing.plans", "finance.receivables_aging",
              "health.sync_health", "health.pipeline_health", "health.alerts",
              *RECONCILIATION_TABLES}
    data.missing = needed - present
    run_sql(con, "reporting/invoice_is_issued")
    params = {"month": month, "first_day": first, "last_day": last}
    if not {"billing.invoices", "billing.plans"} & data.missing:
        data.invoice_totals = _rows(con, "invoice_totals", params)
        data.revenue = _rows(con, "revenue_by_plan", params)
    if not set(RECONCILIATION_TABLES) & data.missing:
        run_sql(con, "reporting/reconciliation_in_month")
        data.match_counts = _rows(con, "match_status_counts", params)
        data.discrepancies = _rows(con, "discrepancies",
                                   {**params, "limit": DISCREPANCY_ROW_LIMIT})
    if "health.sync_health" not in data.missing:
        data.sync_health = _rows(con, "sync_health",
                                 {**params, "first_day": data.sync_first_day})
    if "health.pipeline_health" not in data.missing:
        data.pipeline_health = _rows(con, "pipeline_health", params)
    if "finance.receivables_aging" not in data.missing:
        data.aging = _rows(con, "receivables_aging")
    if "health.alerts" not in data.missing:
        data.alerts = _rows(con, "open_alerts")
    return data


def write_exports(con: duckdb.DuckDBPyConnection,
                  out_dir: Path) -> tuple[list[Path], list[str]]:
    """COPY each exported table, whole, to `<name>.csv` (with header) and `<name>.parquet`
    (DECIMAL columns stay DECIMAL) in `out_dir`. Returns the files written and the tables
    skipped because they are not in the warehouse yet."""
    present = _tables(con)
    written: list[Path] = []
    skipped: list[str] = []
    for name, table in EXPORTS.items():
        if table not in present:
            skipped.append(table)
            continue
        query = "\n".join(ln for ln in sql(f"reporting/{name}").splitlines()
                          if not ln.strip().startswith("--")).strip().rstrip(";")
        for suffix, options in EXPORT_FORMATS.items():
            target = out_dir / f"{name}.{suffix}"
            partial = target.with_name(f".{target.name}.partial")
            con.execute(f"COPY ({query}) TO $path {options}", {"path": str(partial)})
            os.replace(partial, target)
            written.append(target)
    return written, skipped


# ----------------------------------------------------------------------------- formatting


def _e(value: object) -> str:
    """Escaped text for the page; a missing value shows as a dash."""
    return "\u2014" if value is None or value == "" else escape(str(value), quote=True)


def format_money(amount: Decimal | int | None, currency: str) -> str:
    """An exact amount with the currency's minor units and thousands separators
    (EUR 1234.5 -> '1,234.50', JPY 150000 -> '150,000'). Unknown codes print as stored."""
    if amount is None:
        return ""
    try:
        return f"{round_money(Decimal(amount), currency):,}"
    except ValueError:
        return f"{Decimal(amount):,f}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _instant(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _table(columns: Sequence[str], rows: Iterable[Sequence[str]], *,
           numeric: Iterable[int] = (), wrap: Iterable[int] = (), css: str = "") -> str:
    """An HTML table; cells are given already escaped (from `_e` and the formatters).
    Numeric columns are right-aligned; only the `wrap` columns (free text) break lines."""
    classes = {i: ' class="num"' for i in numeric} | {i: ' class="wrap"' for i in wrap}
    head = "".join(f"<th{classes.get(i, '')}>{_e(c)}</th>" for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f"<td{classes.get(i, '')}>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="{_e(css) if css else "data"}"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div>")


def _nothing(text: str) -> str:
    return f'<p class="empty">Nothing to report: {_e(text)}</p>'


def _missing_note(data: ReportData, tables: Iterable[str]) -> str:
    gone = sorted(set(tables) & data.missing)
    if not gone:
        return ""
    return (f'<p class="note">Not in the warehouse yet: {_e(", ".join(gone))} '
            f"(the reconciliation has not built it yet).</p>")


# ----------------------------------------------------------------------------- sections


def _summary(data: ReportData) -> str:
    invoices = sum(r["invoices"] for r in data.invoice_totals)
    reconciled = max((r["reconciled_at"] for r in data.match_counts if r["reconciled_at"]),
                     default=None)
    facts = [("Month", f"{data.month} ({calendar.month_name[data.first_day.month]} "
                       f"{data.first_day.year})"),
             ("Generated at", _instant(data.generated_at)),
             ("Reconciled at", _instant(reconciled) or "not reconciled yet"),
             ("Invoices", _count(invoices))]
    parts = ['<dl class="facts">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>"
                                            for k, v in facts) + "</dl>"]
    parts.append("<h3>Totals per currency</h3>")
    if data.invoice_totals:
        parts.append(_table(
            ("currency", "invoices", "issued", "issued total", "awaiting issue",
             "awaiting total", "voided"),
            ([_e(r["currency"]), _count(r["invoices"]), _count(r["issued"]),
              format_money(r["issued_total"], r["currency"]), _count(r["awaiting_issue"]),
              format_money(r["awaiting_total"], r["currency"]), _count(r["voided"])]
             for r in data.invoice_totals), numeric=range(1, 7), css="data totals"))
    else:
        parts.append(_nothing(f"no invoices for {data.month}."))
    parts.append("<h3>Reconciliation by match status</h3>")
    parts.append(_missing_note(data, RECONCILIATION_TABLES))
    if data.match_counts:
        parts.append(_table(
            ("kind", "match status", "rows"),
            ([_e(r["kind"]), _status(r["match_status"]), _count(r["rows"])]
             for r in data.match_counts), numeric=(2,), css="data match-counts"))
    else:
        parts.append(_nothing(f"no reconciliation rows for {data.month}."))
    return "".join(parts)


def _status(status: str) -> str:
    css = "ok" if status == "matched" else "bad"
    return f'<span class="badge {css}">{_e(status)}</span>'


def _revenue(data: ReportData) -> str:
    if not data.revenue:
        return _nothing(f"no issued invoices for {data.month}.")
    by_currency: dict[str, list[Row]] = {}
    for row in data.revenue:
        by_currency.setdefault(row["currency"], []).append(row)
    table_rows: list[list[str]] = []
    groups = []
    for currency, rows in by_currency.items():
        for r in rows:
            table_rows.append([_e(currency), _e(r["plan_key"]), _e(r["plan_name"]),
                               _count(r["invoices"]), format_money(r["revenue"], currency)])
        subtotal = sum((r["revenue"] for r in rows), Decimal(0))
        table_rows.append([_e(currency), "<strong>all plans</strong>", "",
                           _count(sum(r["invoices"] for r in rows)),
                           f"<strong>{format_money(subtotal, currency)}</strong>"])
        groups.append(BarGroup(currency, [
            Bar(r["plan_key"], r["revenue"], f"{currency} {format_money(r['revenue'], currency)}")
            for r in rows]))
    return (
        '<p class="note">Issued invoices of the billing month (not draft, draft.*, issuing*, '
        "voided). Currencies are never added together.</p>"
        + _table(("currency", "plan", "plan name", "invoices", "revenue"), table_rows,
                 numeric=(3, 4), css="data revenue")
        + bar_chart(f"Revenue by plan, {data.month}", groups,
                    note="Each currency is drawn on its own scale."))


def _discrepancies(data: ReportData) -> str:
    parts = [_missing_note(data, RECONCILIATION_TABLES)]
    counts = [r for r in data.match_counts if r["match_status"] != "matched"]
    if not counts:
        parts.append(_nothing(f"every reconciled invoice, payment and usage period of "
                              f"{data.month} matches."))
        return "".join(parts)
    parts.append(_table(("kind", "match status", "rows"),
                        ([_e(r["kind"]), _status(r["match_status"]), _count(r["rows"])]
                         for r in counts), numeric=(2,), css="data discrepancy-counts"))
    parts.append(bar_chart(f"Discrepancies by type, {data.month}", [BarGroup("rows", [
        Bar(f"{r['kind']} \u00b7 {r['match_status']}", r["rows"], _count(r["rows"]))
        for r in counts])]))
    total = data.discrepancy_total
    shown = len(data.discrepancies)
    parts.append(f"<h3>Findings ({_count(total)})</h3>")
    if shown < total:
        parts.append(f'<p class="note">The first {_count(shown)} of {_count(total)} are shown; '
                     f"the exports beside this page hold every row.</p>")
    parts.append('<p class="note">Orphans (provider objects whose invoice the ledger does not '
                 "know) have no billing month and appear in every month's report.</p>")
    parts.append(_table(
        ("kind", "invoice", "customer", "provider", "status", "detail"),
        ([_e(r["kind"]),
          _e(r["invoice_id"]) + (' <span class="badge warn">orphan</span>' if r["orphan"]
                                 else ""),
          _e(r["customer_id"]), _e(r["provider"]), _status(r["match_status"]),
          _e(r["detail"])] for r in data.discrepancies), wrap=(5,), css="data findings"))
    return "".join(parts)


def _sync_health(data: ReportData) -> str:
    parts = [f'<p class="note">Provider calls per day, {data.sync_first_day.isoformat()} to '
             f"{data.last_day.isoformat()} (the month and the {SYNC_LOOKBACK_DAYS} days "
             "before).</p>", _missing_note(data, ("health.sync_health",))]
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
            parts.append(f"<h3>{_e(provider)}</h3>")
            parts.append(line_chart(f"{provider}: attempts, failed and rate limited per day",
                                    labels, series, marker=SYNC_LOOKBACK_DAYS,
                                    marker_label=f"{data.month} starts"))
        parts.append(_table(
            ("provider", "day", "attempts", "succeeded", "failed", "retried", "rate limited",
             "p50 ms", "p95 ms", "oldest pending h", "pending"),
            ([_e(r["provider"]), _e(r["day"].isoformat()), _count(r["attempts"]),
              _count(r["succeeded"]), _count(r["failed"]), _count(r["retried"]),
              _count(r["rate_limited"]), _number(r["p50_ms"]), _number(r["p95_ms"]),
              _number(r["oldest_pending_hours"], 1), _count(r["invoices_pending"])]
             for r in data.sync_health), numeric=range(2, 11), css="data sync"))
    else:
        parts.append(_nothing("no provider calls in this window."))
    parts.append("<h3>Pipeline health</h3>")
    parts.append(_missing_note(data, ("health.pipeline_health",)))
    if data.pipeline_health:
        columns = ("files", "received", "accepted", "duplicates", "rejected", "conflicts",
                   "late_events", "stuck_invoices", "failed_deliveries", "payment_errors")
        parts.append(_table(
            ("day", *(c.replace("_", " ") for c in columns)),
            ([_e(r["day"].isoformat()), *(_count(r[c]) for c in columns)]
             for r in data.pipeline_health), numeric=range(1, 11), css="data pipeline"))
    else:
        parts.append(_nothing(f"no pipeline health rows for {data.month}."))
    return "".join(parts)


def _aging(data: ReportData) -> str:
    parts = [_missing_note(data, ("finance.receivables_aging",))]
    if not data.aging:
        parts.append(_nothing("no open receivables."))
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
        row = [_e(currency)]
        for bucket in buckets:
            cell = by_bucket.get(bucket)
            row.append(format_money(cell["amount_due"], currency) if cell else "")
        total = sum((c["amount_due"] for c in by_bucket.values()), Decimal(0))
        row.append(f"<strong>{format_money(total, currency)}</strong>")
        row.append(_count(sum(c["invoices"] for c in by_bucket.values())))
        table_rows.append(row)
        groups.append(BarGroup(currency, [
            Bar(f"{bucket} days", by_bucket[bucket]["amount_due"] if bucket in by_bucket else 0,
                f"{currency} {format_money(by_bucket[bucket]['amount_due'], currency)}"
                if bucket in by_bucket else "\u2014") for bucket in buckets]))
    columns = ["currency", *(f"{bucket} days" for bucket in buckets), "total due", "invoices"]
    return "".join(parts) + (
        f'<p class="note">Amounts due as of {_e(_instant(reconciled))}, by days past due '
        "(0-30 includes invoices not yet due).</p>"
        + _table(columns, table_rows, numeric=range(1, len(columns)), css="data aging")
        + bar_chart("Receivables by aging bucket", groups,
                    note="Each currency is drawn on its own scale."))


def _alerts(data: ReportData) -> str:
    parts = [_missing_note(data, ("health.alerts",))]
    if not data.alerts:
        parts.append(_nothing("no open alerts."))
        return "".join(parts)
    parts.append(_table(
        ("severity", "alert", "subject", "detail", "first seen", "last seen", "source"),
        ([f'<span class="badge {_e(r["severity"])}">{_e(r["severity"])}</span>',
          _e(r["alert_key"]), _e(r["subject"]), _e(r["detail"]), _e(_instant(r["first_seen"])),
          _e(_instant(r["last_seen"])), _e(r.get("source"))] for r in data.alerts),
        wrap=(2, 3), css="data alerts"))
    return "".join(parts)


CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --accent:#2f6fad; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
header { background:#102a43; color:#fff; padding:20px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; color:#bcccdc; }
nav { margin-top:12px; }
nav a { color:#d9e2ec; margin-right:16px; text-decoration:none; font-weight:600; }
main { max-width:1240px; margin:0 auto; padding:12px 20px 36px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px;
  margin:18px 0; }
h2 { margin:0 0 10px; font-size:19px; color:#102a43; border-bottom:2px solid var(--accent);
  padding-bottom:4px; }
h3 { margin:18px 0 8px; font-size:15px; color:#243b53; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; margin:6px 0 14px; min-width:40%; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; white-space:nowrap; }
td.wrap { white-space:normal; min-width:160px; }
th { background:#f0f4f8; font-weight:600; color:#334e68; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0 0 8px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; font-weight:600; }
p.empty { color:var(--muted); font-style:italic; margin:8px 0; }
p.note { color:var(--muted); font-size:13px; margin:4px 0 8px; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px;
  background:#e4e7eb; white-space:nowrap; }
.badge.ok { background:#e3f9e5; color:#207227; }
.badge.bad, .badge.critical { background:#ffe3e3; color:#a61b1b; }
.badge.warn, .badge.warning { background:#fff3c4; color:#8d2b0b; }
.badge.info { background:#dceefb; color:#0b4f8a; }
svg.chart { display:block; margin:8px 0 16px; max-width:100%; height:auto; }
svg.chart text { font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
  fill:var(--ink); }
svg.chart text.group { font-weight:700; font-size:13px; }
svg.chart text.value, svg.chart text.axis, svg.chart text.note { fill:var(--muted); }
svg.chart line.grid { stroke:#e4e7eb; }
svg.chart line.marker { stroke:#9aa5b1; stroke-dasharray:4 3; }
footer { max-width:1240px; margin:0 auto; padding:0 20px 32px; color:var(--muted); }
footer a { color:var(--accent); }
@media print { header { background:none; color:var(--ink); } nav { display:none; }
  section { break-inside:avoid; border:none; } }
"""


def render_page(data: ReportData, exports: Sequence[str] = ()) -> str:
    """The whole report as one HTML document: inline CSS and SVG, no script, no external
    resource; every text from the warehouse escaped."""
    bodies = {"summary": _summary(data), "revenue": _revenue(data),
              "discrepancies": _discrepancies(data), "sync-health": _sync_health(data),
              "aging": _aging(data), "alerts": _alerts(data)}
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title in SECTIONS)
    sections = "".join(f'<section id="{key}"><h2>{_e(title)}</h2>{bodies[key]}</section>'
                       for key, title in SECTIONS)
    links = ", ".join(f'<a href="{_e(name)}">{_e(name)}</a>' for name in exports)
    footer = (f"<p>Exports beside this page (whole tables, every month): {links}.</p>"
              if exports else "<p>No exports: the finance tables are not in the warehouse "
                              "yet.</p>")
    month_name = f"{calendar.month_name[data.first_day.month]} {data.first_day.year}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Billing report {_e(data.month)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>Billing report \u2014 {_e(month_name)}</h1>"
        f"<p>Billing month {_e(data.month)} \u00b7 generated {_e(_instant(data.generated_at))}"
        f"</p><nav>{nav}</nav></header><main>{sections}</main>"
        f"<footer>{footer}</footer></body></html>\n")


# ----------------------------------------------------------------------------- entry point


def build_report(month: str, out_dir: str | Path | None = None, *,
                 warehouse: str | None = None, now: datetime | None = None) -> ReportFiles:
    """Write `billing-report-<month>.html` and the finance exports into `out_dir` (default
    `reports/<month>/` under the current directory), reading the warehouse read-only.

    `month` is 'YYYY-MM' (ValueError otherwise); `warehouse` defaults to BILLING_WAREHOUSE and
    `now` (the page's "generated at") to BILLING_NOW or the clock.
    """
    parse_month(month)
    month = month.strip()
    target = Path(out_dir) if out_dir is not None else Path.cwd() / "reports" / month
    target.mkdir(parents=True, exist_ok=True)
    with connect_reader(warehouse or settings.warehouse_path()) as con:
        data = load_report_data(con, month, now or settings.now())
        exports, skipped = write_exports(con, target)
    page = target / f"billing-report-{month}.html"
    partial = page.with_name(f".{page.name}.partial")
    partial.write_text(render_page(data, [p.name for p in exports]), encoding="utf-8")
    os.replace(partial, page)
    return ReportFiles(page=page, exports=tuple(exports), skipped=tuple(skipped))
