"""The datasets of one month's finance report, read from the warehouse.

Each dataset is the result of one query in `sql/reporting/` (one file per dataset), read as
rows of dicts. A table the reconciliation has not built yet reads as empty and is listed in
`ReportData.missing`, so the page says so instead of failing.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from pipelines.warehouse import run_sql, sql

MONTH_PATTERN = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
SYNC_LOOKBACK_DAYS = 30
DISCREPANCY_ROW_LIMIT = 1000
RECONCILIATION_TABLES = ("finance.invoice_reconciliation", "finance.credit_note_reconciliation",
                         "finance.payment_reconciliation", "finance.usage_reconciliation")
CORRECTION_TABLES = ("billing.corrections", "billing.correction_history", "billing.credit_notes")
JOURNAL_TABLES = ("finance.journal_entries", "finance.journal_lines")
ACCOUNTING_TABLES = (*JOURNAL_TABLES, "finance.revenue_schedule",
                     "finance.deferred_revenue_balance")

Row = dict[str, Any]


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
    correction_totals: list[Row] = field(default_factory=list)
    corrections: list[Row] = field(default_factory=list)
    correction_history: list[Row] = field(default_factory=list)
    pending_corrections: list[Row] = field(default_factory=list)
    credit_notes: list[Row] = field(default_factory=list)
    supplementary_invoices: list[Row] = field(default_factory=list)
    credit_note_matches: dict[str, Row] = field(default_factory=dict)
    journal_accounts: list[Row] = field(default_factory=list)
    revenue_recognized: list[Row] = field(default_factory=list)
    deferred_revenue: list[Row] = field(default_factory=list)
    tax_report: list[Row] = field(default_factory=list)

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


def warehouse_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every table and view in the warehouse, as 'schema.table'."""
    return {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
        "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def journal_by_account(con: duckdb.DuckDBPyConnection, month: str) -> list[Row]:
    """The journal per currency and account for `month` (YYYY-MM): the month's debits, credits
    and net, and the balance at the month's end (sql/reporting/journal_by_account.sql)."""
    first, last = parse_month(month)
    return _rows(con, "journal_by_account", {"month": month, "first_day": first,
                                             "last_day": last})


def trial_balance(accounts: list[Row]) -> list[Row]:
    """Per currency, the sums over the accounts of `journal_by_account`: the month's debits,
    credits and net, and the balances at the month's end; `balanced` when the month's debits
    equal its credits and the balances sum to zero (double entry: always, unless the journal
    is broken)."""
    totals: dict[str, Row] = {}
    for row in accounts:
        total = totals.setdefault(row["currency"], {
            "currency": row["currency"], "debits": Decimal(0), "credits": Decimal(0),
            "net": Decimal(0), "balance": Decimal(0)})
        for column in ("debits", "credits", "net", "balance"):
            total[column] += row[column]
    for total in totals.values():
        total["balanced"] = (total["debits"] == total["credits"] and total["net"] == 0
                             and total["balance"] == 0)
    return list(totals.values())


def load_report_data(con: duckdb.DuckDBPyConnection, month: str, now: datetime) -> ReportData:
    """Read every dataset of `month`'s report; a table that does not exist yet reads as empty
    and is listed in `missing`, so the page says so instead of failing."""
    first, last = parse_month(month)
    data = ReportData(month=month, first_day=first, last_day=last, generated_at=now)
    present = warehouse_tables(con)
    needed = {"billing.invoices", "billing.plans", "finance.receivables_aging",
              "health.sync_health", "health.pipeline_health", "health.alerts",
              "finance.tax_report", *RECONCILIATION_TABLES, *CORRECTION_TABLES,
              *ACCOUNTING_TABLES}
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
    if not {"billing.invoices", *CORRECTION_TABLES} & data.missing:
        data.correction_totals = _rows(con, "corrections_by_currency", params)
        data.corrections = _rows(con, "corrections_in_month", params)
        data.correction_history = _rows(con, "correction_history", params)
        data.pending_corrections = _rows(con, "pending_corrections")
        data.credit_notes = _rows(con, "credit_notes_in_month", params)
        data.supplementary_invoices = _rows(con, "supplementary_invoices_in_month", params)
    if "finance.credit_note_reconciliation" not in data.missing:
        data.credit_note_matches = {r["credit_note_id"]: r
                                    for r in _rows(con, "credit_note_match_status")}
    if not set(JOURNAL_TABLES) & data.missing:
        data.journal_accounts = journal_by_account(con, month)
    if "finance.revenue_schedule" not in data.missing:
        data.revenue_recognized = _rows(con, "revenue_recognized_by_month", params)
    if "finance.deferred_revenue_balance" not in data.missing:
        data.deferred_revenue = _rows(con, "deferred_revenue_by_month", params)
    if "finance.tax_report" not in data.missing:
        data.tax_report = _rows(con, "tax_report_in_month", params)
    return data
