"""`billing`: the commands users run. Each pipeline command launches the same Dagster job that
schedules and sensors launch, in this process, and prints what it did."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipelines.cli import (
    api,
    billing_run,
    corrections,
    credit_notes,
    customer,
    export,
    ingest,
    invoice,
    notify,
    reconcile,
    report,
    reshard,
    sql,
    sync,
)

COMMAND_GROUPS = (ingest, billing_run, corrections, invoice, credit_notes, customer, sql, sync,
                  reconcile, report, export, reshard, api, notify)
"""Each module adds its subcommands to the parser, in the order `billing --help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    args.func(args)
