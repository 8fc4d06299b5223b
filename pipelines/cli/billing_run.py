"""`billing run --month YYYY-MM [--to YYYY-MM]`: rate a month (or a backfill range) with the
billing job, then show the month's invoices."""

from __future__ import annotations

import argparse

import dagster as dg

from pipelines import settings
from pipelines.cli.launch import run_job
from pipelines.cli.output import print_table
from pipelines.jobs import BILLING_JOB
from pipelines.run_context import month_partition, now_tags
from pipelines.warehouse import connect_reader


def months_between(first: str, last: str) -> list[str]:
    """Every 'YYYY-MM' from first to last, inclusive."""
    year, month = (int(p) for p in first.split("-"))
    end = tuple(int(p) for p in last.split("-"))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if not months:
        raise SystemExit(f"--to {last} is before --month {first}")
    return months


def cmd_run(args: argparse.Namespace) -> None:
    from pipelines.invoicing.month_cuts import month_bounds

    now = settings.now()
    try:
        for month in (args.month, args.to or args.month):
            month_bounds(month)
    except ValueError as exc:
        raise SystemExit(f"billing run: {exc}") from None
    for month in months_between(args.month, args.to or args.month):
        result = run_job(BILLING_JOB, partition_key=month_partition(month), tags=now_tags(now))
        print_invoice_summary(month, result)


def print_invoice_summary(month: str, result: dg.ExecuteInProcessResult) -> None:
    """What the run did to the month, and the month's invoices by status and currency."""
    from pipelines.rating.money import quantum

    meta = next((e.materialization.metadata for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey(["billing", "invoices"])), {})
    done = {k: v.value for k, v in meta.items()}
    print(f"{month}: rated {done.get('invoices_rated', 0)} invoice(s): "
          f"{done.get('drafts_written', 0)} draft(s) written, "
          f"{done.get('left_draft', 0)} left draft (grace period over), "
          f"{done.get('issued_untouched', 0)} already issued left unchanged "
          f"({done.get('new_differences', 0)} new difference(s) recorded), "
          f"{done.get('drafts_discarded', 0)} stale draft(s) discarded")
    with connect_reader(settings.warehouse_path()) as con:
        relation = con.sql("""
            SELECT i.invoice_number, i.customer_id, i.plan_key AS plan,
                   CAST(i.boundary AS VARCHAR) AS boundary, i.status, i.currency,
                   i.subtotal, i.discount_total AS discounts, i.total,
                   count(l.line_id) AS lines
            FROM billing.invoices i LEFT JOIN billing.invoice_lines l USING (invoice_id)
            WHERE i.billing_month = $month
            GROUP BY ALL ORDER BY boundary, customer_id""", params={"month": month})
        columns, rows = relation.columns, relation.fetchall()
    money = [columns.index(c) for c in ("subtotal", "discounts", "total")]
    currency = columns.index("currency")
    shown = [[value.quantize(quantum(row[currency])) if i in money else value
              for i, value in enumerate(row)] for row in rows]
    if shown:
        print_table(columns, shown)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` to the `billing` parser."""
    run = commands.add_parser("run", help="rate a billing month (or a range) and issue what is due")
    run.add_argument("--month", required=True, help="YYYY-MM (the UTC month of the cut)")
    run.add_argument("--to", help="last month of a backfill range, YYYY-MM")
    run.set_defaults(func=cmd_run)
