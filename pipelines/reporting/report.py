"""The monthly finance report: one self-contained HTML page plus CSV and Parquet exports.

Finance opens the page from disk, with no server and nothing fetched (inline CSS, inline SVG
charts, no JavaScript): what the month billed, how the reconciliation with the providers came
out, what the journal posted (per account, with the trial balance per currency), the revenue
recognized and deferred, the tax per jurisdiction, how the syncs and the pipeline behaved, what
is owed and what is on fire. Beside it, the reconciliation, aging, journal, deferred revenue and
tax tables are exported whole (every month) with DuckDB's COPY, so their DECIMAL amounts stay
exact in Parquet.

The warehouse is only read (`connect_reader`); the queries are in `sql/reporting/`, one file
per dataset. Money is printed from exact Decimals with the currency's minor units
(`pipelines.rating.money`) and never summed across currencies.

`build_report` reads the month's datasets (`report_data`), writes the exports (`exports`) and
renders the page (`page`, from its `sections`, `formatting` and `charts`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipelines import settings
from pipelines.reporting.exports import write_exports
from pipelines.reporting.page import render_page
from pipelines.reporting.report_data import load_report_data, parse_month
from pipelines.sharding import connect_finance_reader


@dataclass(frozen=True)
class ReportFiles:
    """What `build_report` wrote: the page, the exports, and the exports it could not write
    because their table is not in the warehouse yet."""

    page: Path
    exports: tuple[Path, ...]
    skipped: tuple[str, ...]


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
    with connect_finance_reader(warehouse) as con:
        data = load_report_data(con, month, now or settings.now())
        exports, skipped = write_exports(con, target)
    page = target / f"billing-report-{month}.html"
    partial = page.with_name(f".{page.name}.partial")
    partial.write_text(render_page(data, [p.name for p in exports]), encoding="utf-8")
    os.replace(partial, page)
    return ReportFiles(page=page, exports=tuple(exports), skipped=tuple(skipped))
