"""`billing export journal --month YYYY-MM --format csv|parquet`: the month's journal lines,
for the accounting system (docs/accounting.md). Read-only."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def export_journal(month: str, fmt: str, out: str | Path | None = None,
                   warehouse: str | None = None) -> Path:
    """Write the journal lines posted in `month` to `out` (default journal-YYYY-MM.<fmt>):
    CSV through `spreadsheet_safe`, Parquet with exact DECIMAL amounts."""
    from pipelines.reporting import parse_month
    from pipelines.reporting.exports import EXPORT_FORMATS, spreadsheet_safe
    from pipelines.sharding import connect_finance_reader
    from pipelines.warehouse import sql

    parse_month(month)  # YYYY-MM or ValueError: the month is inlined below only once valid
    target = Path(out or f"journal-{month}.{fmt}")
    partial = target.with_name(f".{target.name}.partial")
    query = "\n".join(line for line in sql("reporting/journal_export").splitlines()
                      if not line.strip().startswith("--")).replace("$month", f"'{month}'")
    with connect_finance_reader(warehouse) as con:
        rows = spreadsheet_safe(con, query) if fmt == "csv" else query
        con.execute(f"COPY ({rows}) TO $path {EXPORT_FORMATS[fmt]}", {"path": str(partial)})
    os.replace(partial, target)
    return target


def cmd_export_journal(args: argparse.Namespace) -> None:
    try:
        path = export_journal(args.month, args.format, args.out)
    except ValueError as exc:
        raise SystemExit(f"billing export journal: {exc}") from None
    print(f"wrote {path}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `export journal` to the `billing` parser."""
    export = commands.add_parser("export", help="export finance data for other systems")
    kinds = export.add_subparsers(dest="export", required=True)
    journal = kinds.add_parser(
        "journal", help="the journal lines posted in a month (CSV or Parquet)")
    journal.add_argument("--month", required=True, help="YYYY-MM (the posting month, UTC)")
    journal.add_argument("--format", choices=("csv", "parquet"), default="csv")
    journal.add_argument("--out", help="file (default: journal-YYYY-MM.<format>)")
    journal.set_defaults(func=cmd_export_journal)
