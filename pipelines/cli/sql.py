"""`billing sql QUERY`: a read-only query on the warehouse, printed as a table.

The query sees the warehouse's tables and nothing else: DuckDB's external access (files,
`COPY ... TO`, `ATTACH`, extensions) is switched off and the configuration locked before it runs,
so `billing sql` cannot read or write a file beside the warehouse.
"""

from __future__ import annotations

import argparse

import duckdb

from pipelines.cli.output import print_table
from pipelines.sharding import connect_finance_reader


def cmd_sql(args: argparse.Namespace) -> None:
    with connect_finance_reader() as con:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            relation = con.sql(args.query)
            if relation is None:
                raise SystemExit("billing sql: the statement returned no rows to show")
            columns = relation.columns
            rows = relation.fetchall()
        except duckdb.Error as exc:
            raise SystemExit(f"billing sql: {exc}") from None
    print_table(columns, rows)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `sql` to the `billing` parser."""
    query = commands.add_parser("sql", help="run a read-only SQL query on the warehouse "
                                            "(its tables only: no file access)")
    query.add_argument("query")
    query.set_defaults(func=cmd_sql)
