"""`billing reshard --to N`: move the warehouse from the configured number of customer shards
(`BILLING_SHARDS`) to N, writing the new files beside the source, verifying them, then switching;
the source files are kept until the user removes them (pipelines/resharding.py)."""

from __future__ import annotations

import argparse

from pipelines import settings
from pipelines.resharding import reshard


def cmd_reshard(args: argparse.Namespace) -> None:
    source = args.from_shards or settings.shard_count()
    result = reshard(settings.warehouse_path(), source, args.to)
    for number, (path, rows) in enumerate(zip(result.targets, result.rows_per_shard or
                                             [None] * len(result.targets), strict=True)):
        counted = f"{rows:,} rows" if rows is not None else "switched"
        print(f"shard {number}: {path} ({counted})")
    if result.tables:
        print(f"{result.tables} tables verified against the source (rows and money totals)")
    print(f"now set BILLING_SHARDS={args.to} in every process of the deployment; the "
          f"{source}-shard files are kept: remove them once satisfied")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `reshard` to the `billing` parser."""
    command = commands.add_parser(
        "reshard", help="move the warehouse to another number of customer shards")
    command.add_argument("--to", type=int, required=True, help="the new number of shards")
    command.add_argument("--from", dest="from_shards", type=int,
                         help="the current number of shards (default: BILLING_SHARDS)")
    command.set_defaults(func=cmd_reshard)
