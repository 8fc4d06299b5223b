"""`billing sync`: the sync job once, then invoices by provider and the open alerts."""

from __future__ import annotations

import argparse

from pipelines import settings
from pipelines.cli.launch import ShardRun, run_every_shard_numbered
from pipelines.cli.output import print_open_alerts, print_steps, print_table
from pipelines.jobs import SYNC_JOB
from pipelines.run_context import now_tags
from pipelines.sharding import connect_finance_reader


def cmd_sync(args: argparse.Namespace) -> None:
    runs = run_every_shard_numbered(SYNC_JOB, tags=now_tags(settings.now()))
    print_sync_summary(runs)


def print_sync_summary(runs: list[ShardRun]) -> None:
    """What each step of the sync did, then invoices by provider app and status, and the open
    alerts."""
    print_steps(runs)
    with connect_finance_reader() as con:
        statuses = con.execute("""
            SELECT app, status, count(*) FROM billing.invoices
            WHERE app <> 'none' AND status <> 'discarded'
            GROUP BY ALL ORDER BY app, status""").fetchall()
    if statuses:
        print_table(("app", "status", "invoices"), statuses)
    print_open_alerts()


def register(commands: argparse._SubParsersAction) -> None:
    """Add `sync` to the `billing` parser."""
    sync = commands.add_parser(
        "sync", help="apply the API inbox, sync invoices with Stripe and the custom invoicing "
                     "hooks, pull provider events, deliver due notifications (once)")
    sync.set_defaults(func=cmd_sync)
