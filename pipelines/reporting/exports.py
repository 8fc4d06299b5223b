"""The finance exports beside the report: the reconciliation and aging tables, the corrections
(with the numbers of their invoices and documents), the journal's trial balance per month and
account, the deferred revenue balance per month and the tax report, whole.

Each table is copied with DuckDB's COPY (every month, not only the report's) to CSV with a
header and to Parquet, where its DECIMAL amounts stay exact. A file is written beside its
target and renamed over it, so a reader never sees half a file.

CSV files are opened in spreadsheets, which run a cell starting with `=`, `+`, `-` or `@` (or a
tab or carriage return) as a formula: a customer's name or a provider's detail could then fetch
URLs or run commands on finance's machine. Every CSV export goes through `spreadsheet_safe`,
which prefixes such text cells with a single quote (OWASP's advice on CSV injection); numbers,
negative amounts included, stay numbers, and Parquet keeps the text as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipelines.reporting.report_data import warehouse_tables
from pipelines.warehouse import sql

# Export name (file stem, and its query in sql/reporting/) -> the table it holds whole.
EXPORTS = {
    "finance_invoice_reconciliation": "finance.invoice_reconciliation",
    "finance_credit_note_reconciliation": "finance.credit_note_reconciliation",
    "finance_payment_reconciliation": "finance.payment_reconciliation",
    "finance_usage_reconciliation": "finance.usage_reconciliation",
    "finance_receivables_aging": "finance.receivables_aging",
    "billing_corrections": "billing.corrections",
    "finance_trial_balance": "finance.journal_lines",
    "finance_deferred_revenue_balance": "finance.deferred_revenue_balance",
    "finance_tax_report": "finance.tax_report",
}
EXPORT_FORMATS = {"csv": "(FORMAT csv, HEADER)", "parquet": "(FORMAT parquet)"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""


def spreadsheet_safe(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """`query` with each text cell that starts with one of FORMULA_STARTS prefixed with a
    single quote, so a spreadsheet shows it as text. Only text (VARCHAR) columns change:
    numeric, date and other columns keep their values and types."""
    starts = ", ".join(f"'{c}'" if c.isprintable() else f"chr({ord(c)})" for c in FORMULA_STARTS)
    cells = []
    for name, column_type, *_ in con.execute(f"DESCRIBE ({query})").fetchall():
        column = '"' + name.replace('"', '""') + '"'
        if column_type == "VARCHAR":
            column = (f"CASE WHEN left({column}, 1) IN ({starts}) THEN concat(chr(39), {column})"
                      f" ELSE {column} END AS {column}")
        cells.append(column)
    return f"SELECT {', '.join(cells)} FROM ({query})"


def write_exports(con: duckdb.DuckDBPyConnection,
                  out_dir: Path) -> tuple[list[Path], list[str]]:
    """COPY each exported table, whole, to `<name>.csv` (with header) and `<name>.parquet`
    (DECIMAL columns stay DECIMAL) in `out_dir`. Returns the files written and the tables
    skipped because they are not in the warehouse yet."""
    present = warehouse_tables(con)
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
            rows = spreadsheet_safe(con, query) if suffix == "csv" else query
            con.execute(f"COPY ({rows}) TO $path {options}", {"path": str(partial)})
            os.replace(partial, target)
            written.append(target)
    return written, skipped
