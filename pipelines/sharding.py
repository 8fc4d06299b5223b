"""Customer shards (contract section 12): which shard a customer belongs to, where each shard's
warehouse file is, and which shard a Dagster run works on.

A customer's shard is the first 8 bytes of sha256(customer_id, UTF-8) read as an unsigned
big-endian integer, modulo N (`BILLING_SHARDS`): stable across processes, machines and Python
versions (never Python's `hash()`), and computed the same way in DuckDB (`SHARD_OF_SQL`) so a
file is routed set-based. Lines without a customer id go to shard 0, where ingestion rejects
them as it does with one warehouse.

Shard K of N keeps its warehouse beside the configured one: `warehouse.duckdb` becomes
`warehouse.shard-K-of-N.duckdb` (K counted from 0). With N = 1 the configured file is used as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import duckdb

from pipelines import settings
from pipelines.catalog import Catalog
from pipelines.warehouse import connect_reader, connect_writer, warehouse_lock

SHARD_DIMENSION = "shard"
MONTH_DIMENSION = "month"
SHARD_TAG = "billing/shard"
"""Run tag naming the shard a run works on (CLI, schedules and sensors set it); Dagster's own
partition tags say the same for runs launched from the UI or a backfill."""


def shard_of(customer_id: str | None, shards: int) -> int:
    """The shard of a customer: sha256's first 8 bytes mod `shards`; no customer id: shard 0."""
    if customer_id is None or shards == 1:
        return 0
    digest = hashlib.sha256(customer_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_of_sql(column: str, shards: int) -> str:
    """The same rule as `shard_of`, as a DuckDB expression over a VARCHAR column."""
    return (f"coalesce(CAST(('0x' || left(sha256({column}), 16)) AS UBIGINT) % {int(shards)}, 0)")


def shard_keys(shards: int) -> list[str]:
    """The partition keys of the shard dimension: '0' .. 'N-1'."""
    return [str(k) for k in range(shards)]


def shard_warehouse_path(base: str, shard: int, shards: int) -> str:
    """Shard `shard`'s warehouse file, beside `base`; `base` itself when there is one shard."""
    if shards == 1:
        return base
    path = Path(base)
    return str(path.with_name(f"{path.stem}.shard-{shard}-of-{shards}{path.suffix}"))


def warehouse_paths(base: str | None = None, shards: int | None = None) -> list[str]:
    """Every shard's warehouse file, shard 0 first."""
    count = shards or settings.shard_count()
    root = base or settings.warehouse_path()
    return [shard_warehouse_path(root, k, count) for k in range(count)]


def run_shard(tags: Mapping[str, str]) -> int | None:
    """The shard a run works on, from its tags: ours (`billing/shard`), else Dagster's partition
    tags (a month x shard run has `dagster/partition/shard`; a shard-only run has its key in
    `dagster/partition`). None for a run of no shard (one warehouse, or a global step)."""
    for key in (SHARD_TAG, f"dagster/partition/{SHARD_DIMENSION}"):
        if tags.get(key, "").isdigit():
            return int(tags[key])
    partition = tags.get("dagster/partition", "")
    return int(partition) if partition.isdigit() else None


@contextmanager
def connect_finance_reader(base: str | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-only view over every shard, for finance (`billing sql`, the report, exports):
    with one warehouse its read-only connection; with N shards an in-memory database that
    ATTACHes each shard's file READ_ONLY and names every table `schema.table` as the UNION ALL
    of the shards' tables, so a query reads the same as on one warehouse and never writes."""
    paths = warehouse_paths(base)
    if len(paths) == 1:
        with connect_reader(paths[0]) as con:
            yield con
        return
    with ExitStack() as stack:
        for path in paths:
            if not Path(path).exists():
                with connect_writer(path):   # an empty shard: its tables, empty
                    pass
            stack.enter_context(warehouse_lock(path, exclusive=False))
        con = duckdb.connect()
        stack.callback(con.close)
        con.execute("SET TimeZone = 'UTC'")
        for number, path in enumerate(paths):
            literal = path.replace("'", "''")
            con.execute(f"ATTACH '{literal}' AS shard_{number} (READ_ONLY)")
        tables = con.execute("""
            SELECT schema_name, table_name FROM duckdb_tables()
            WHERE database_name = 'shard_0' ORDER BY ALL""").fetchall()
        for schema, table in tables:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            union = " UNION ALL BY NAME ".join(
                f'SELECT * FROM shard_{k}."{schema}"."{table}"' for k in range(len(paths)))
            con.execute(f'CREATE VIEW "{schema}"."{table}" AS {union}')
        yield con


def catalog_of_shard(catalog: Catalog, shard: int | None, shards: int) -> Catalog:
    """The catalog a shard's run works with: only its customers and their subscriptions (meters,
    plans, profiles and the rest whole). With one warehouse (shard None), the catalog as is."""
    if shard is None or shards == 1:
        return catalog
    customers = {key: customer for key, customer in catalog.customers.items()
                 if shard_of(key, shards) == shard}
    subscriptions = {key: subscription for key, subscription in catalog.subscriptions.items()
                     if subscription.customer in customers}
    return replace(catalog, customers=customers, subscriptions=subscriptions)
