"""`billing run --month YYYY-MM [--to YYYY-MM]`: rate a month (or a backfill range) with the
billing job, then show the month's invoices."""

from __future__ import annotations

import argparse

from pipelines import settings
from pipelines.cli.launch import run_every_shard_numbered
from pipelines.cli.output import print_table
from pipelines.jobs import BILLING_JOB
from pipelines.run_context import now_tags
from pipelines.sharding import connect_finance_reader


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
        runs = run_every_shard_numbered(BILLING_JOB, month=month, tags=now_tags(now))
        print_invoice_summary(month, [run.metadata.get("billing/invoices", {}) for run in runs],
                              every_invoice=args.invoices)


def print_invoice_summary(month: str, shard_metadata: list[dict[str, object]], *,
                          every_invoice: bool = False) -> None:
    """What the run (one per shard) did to the month, and the month's invoices by status and
    currency (every invoice only on request: a 10,000-customer month is 10,000 rows)."""
    from pipelines.rating.money import quantum

    done: dict[str, object] = {}
    for meta in shard_metadata:
        for key, value in meta.items():
            done[key] = done.get(key, 0) + value if isinstance(value, int) else value
    print(f"{month}: rated {done.get('invoices_rated', 0)} invoice(s): "
          f"{done.get('drafts_written', 0)} draft(s) written, "
          f"{done.get('left_draft', 0)} left draft (grace period over), "
          f"{done.get('issued_untouched', 0)} already issued left unchanged "
          f"({done.get('new_differences', 0)} new difference(s) recorded), "
          f"{done.get('drafts_discarded', 0)} stale draft(s) discarded")
    if done.get("corrections_proposed") or done.get("correction_documents"):
        print(f"{month}: corrections of issued invoices: {done.get('corrections_proposed', 0)} "
              f"new ({done.get('corrections_pending_approval', 0)} waiting for approval: "
              f"billing corrections list), {done.get('correction_documents', 0)} document(s) "
              f"made, {done.get('credit_notes_issued', 0)} credit note(s) issued")
    with connect_finance_reader() as con:
        summary = con.sql("""
            SELECT status, currency, count(*) AS invoices, sum(total) AS total
            FROM billing.invoices WHERE billing_month = $month
            GROUP BY ALL ORDER BY status, currency""", params={"month": month}).fetchall()
        rows: list[tuple] = []
        if every_invoice:
            relation = con.sql("""
                SELECT i.invoice_number, i.customer_id, i.plan_key AS plan,
                       CAST(i.boundary AS VARCHAR) AS boundary, i.status, i.currency,
                       i.subtotal, i.discount_total AS discounts, i.total,
                       count(l.line_id) AS lines
                FROM billing.invoices i LEFT JOIN billing.invoice_lines l USING (invoice_id)
                WHERE i.billing_month = $month
                GROUP BY ALL ORDER BY boundary, customer_id""", params={"month": month})
            columns, rows = relation.columns, relation.fetchall()
    if summary:
        print_table(("status", "currency", "invoices", "total"),
                    [(status, code, count, total.quantize(quantum(code)))
                     for status, code, count, total in summary])
    if rows:
        money = [columns.index(c) for c in ("subtotal", "discounts", "total")]
        currency = columns.index("currency")
        print_table(columns, [[value.quantize(quantum(row[currency])) if i in money else value
                               for i, value in enumerate(row)] for row in rows])


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` to the `billing` parser."""
    run = commands.add_parser("run", help="rate a billing month (or a range) and issue what is due")
    run.add_argument("--month", required=True, help="YYYY-MM (the UTC month of the cut)")
    run.add_argument("--to", help="last month of a backfill range, YYYY-MM")
    run.add_argument("--details", "--invoices", dest="invoices", action="store_true",
                     help="also print every invoice of the month (default: totals by status "
                          "and currency)")
    run.set_defaults(func=cmd_run)
