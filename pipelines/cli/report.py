"""`billing report --month YYYY-MM`: the month's finance report and table exports."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> None:
    """The month's finance report (HTML page) and the finance table exports, read-only."""
    from pipelines.reporting import build_report, parse_month

    try:
        parse_month(args.month)
    except ValueError as exc:
        raise SystemExit(f"billing report: {exc}") from None
    written = build_report(args.month, args.out)
    print(f"wrote {written.page}")
    for path in written.exports:
        print(f"wrote {path}")
    for table in written.skipped:
        print(f"skipped {table}: not in the warehouse yet (the reconciliation has not run)")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `report` to the `billing` parser."""
    report = commands.add_parser(
        "report", help="write the month's finance report (one HTML page) and CSV/Parquet exports")
    report.add_argument("--month", required=True, help="YYYY-MM (the billing month)")
    report.add_argument("--out", help="folder (default: reports/YYYY-MM under the current one)")
    report.set_defaults(func=cmd_report)
