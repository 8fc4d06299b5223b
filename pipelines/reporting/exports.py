"""The finance exports beside the report: the reconciliation and aging tables and the
corrections (with the numbers of their invoices and documents), whole.

Each table is copied with DuckDB's COPY (every month, not only the report's) to CSV with a
header and to Parquet, where its DECIMAL amounts stay exact. A file is written beside its
target and renamed over it, so a reader never sees half a file.
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
}
EXPORT_FORMATS = {"csv": "(FORMAT csv, HEADER)", "parquet": "(FORMAT parquet)"}


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
            con.execute(f"COPY ({query}) TO $path {options}", {"path": str(partial)})
            os.replace(partial, target)
            written.append(target)
    return written, skipped
