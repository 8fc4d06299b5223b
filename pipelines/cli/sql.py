"""`billing sql QUERY`: a read-only query on the warehouse, printed as a table."""

from __future__ import annotations

import argparse

from pipelines import settings
from pipelines.cli.output import print_table
from pipelines.warehouse import connect_reader


def cmd_sql(args: argparse.Namespace) -> None:
    with connect_reader(settings.warehouse_path()) as con:
        relation = con.sql(args.query)
        columns = relation.columns
        rows = relation.fetchall()
    print_table(columns, rows)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `sql` to the `billing` parser."""
    query = commands.add_parser("sql", help="run a read-only SQL query on the warehouse")
    query.add_argument("query")
    query.set_defaults(func=cmd_sql)
