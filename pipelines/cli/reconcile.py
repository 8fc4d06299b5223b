"""`billing reconcile`: the reconciliation job once, then rows by match status, open
receivables and the open alerts."""

from __future__ import annotations

import argparse

from pipelines import settings
from pipelines.cli.launch import run_every_shard_numbered
from pipelines.cli.output import print_open_alerts, print_steps, print_table
from pipelines.jobs import RECONCILE_JOB
from pipelines.run_context import now_tags
from pipelines.sharding import connect_finance_reader


def cmd_reconcile(args: argparse.Namespace) -> None:
    runs = run_every_shard_numbered(RECONCILE_JOB, tags=now_tags(settings.now()))
    if args.verbose:
        print_steps(runs)
    print_reconciliation_summary()


def print_reconciliation_summary() -> None:
    """Rows by match status for each reconciliation table, then the open alerts."""
    from pipelines.rating.money import quantum

    with connect_finance_reader() as con:
        rows = con.execute("""
            SELECT 'invoices' AS "table", provider, match_status, count(*) AS "rows",
                   count(*) FILTER (WHERE sla_breached) AS past_sla
            FROM finance.invoice_reconciliation GROUP BY ALL
            UNION ALL
            SELECT 'credit_notes', provider, match_status, count(*),
                   count(*) FILTER (WHERE sla_breached)
            FROM finance.credit_note_reconciliation GROUP BY ALL
            UNION ALL
            SELECT 'payments', provider, match_status, count(*), NULL
            FROM finance.payment_reconciliation GROUP BY ALL
            UNION ALL
            SELECT 'usage', NULL, match_status, count(*), NULL
            FROM finance.usage_reconciliation GROUP BY ALL
            ORDER BY 1, 2 NULLS FIRST, match_status = 'matched' DESC, 3""").fetchall()
        aging = con.execute("""
            SELECT aging_bucket, currency, count(*), sum(amount_due)
            FROM finance.receivables_aging GROUP BY ALL ORDER BY 1, 2""").fetchall()
    if rows:
        print_table(("table", "provider", "match status", "rows", "past SLA"), rows)
    else:
        print("nothing to reconcile yet")
    if aging:
        print("open receivables:")
        print_table(("days past due", "currency", "invoices", "amount due"),
                    [(bucket, currency, n, amount.quantize(quantum(currency)))
                     for bucket, currency, n, amount in aging])
    print_open_alerts()


def register(commands: argparse._SubParsersAction) -> None:
    """Add `reconcile` to the `billing` parser."""
    reconcile = commands.add_parser(
        "reconcile", help="refresh provider snapshots, rebuild the reconciliation and health "
                          "tables and alerts (once), and print a summary by match status")
    reconcile.add_argument("--verbose", action="store_true", help="also print each step's counts")
    reconcile.set_defaults(func=cmd_reconcile)
