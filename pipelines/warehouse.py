"""The DuckDB warehouse: one file, one writer at a time, SQL kept in `sql/`.

DuckDB admits a single writing process per file. Inside Dagster the `warehouse` concurrency pool
(limit 1, see dagster.yaml) keeps writer steps apart; this module adds an OS-level lock beside the
file so that writers started outside Dagster (a CLI call during a scheduled run) wait their turn
instead of failing on DuckDB's own lock.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import cache, partial
from importlib import resources
from pathlib import Path

import duckdb

from pipelines import settings

SQL_PACKAGE = "sql"
"""The package holding the SQL files: top-level in the checkout, installed beside `pipelines`."""
# The DDL run at every writer connect, in order (each file idempotent).
SCHEMA_FILES = ("warehouse_schema", "notify_schema", "reconciliation_schema",
                "corrections_schema", "adjustments_schema", "accounting_schema",
                "erasure_schema")


@cache
def sql(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. ``sql("raw/events")``)."""
    return resources.files(SQL_PACKAGE).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def statements(name: str) -> list[str]:
    """The statements of a multi-statement SQL file, split at semicolons that end a line."""
    return [part.strip() for part in re.split(r";\s*(?:\n|$)", sql(name)) if part.strip()
            and not all(line.strip().startswith("--") or not line.strip()
                        for line in part.strip().splitlines())]


def run_sql(con: duckdb.DuckDBPyConnection, name: str,
            params: Mapping[str, object] | None = None) -> None:
    """Execute every statement of `sql/<name>.sql`, each with the named parameters it uses
    (DuckDB binds parameters for one statement at a time)."""
    for statement in statements(name):
        code = "\n".join(line for line in statement.splitlines()
                         if not line.strip().startswith("--"))
        used = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", code)}
        con.execute(code, used).fetchall()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Everything in the block commits together, or nothing does."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def scratch(con: duckdb.DuckDBPyConnection, *, tables: Sequence[str] = (),
            frames: Sequence[str] = ()) -> Iterator[None]:
    """The temp tables and registered frames a step works with, dropped once the block is done.

    When the block fails, its transaction is usually aborted and DuckDB refuses every statement
    there, a DROP included ("transaction is aborted"): dropping in a plain `finally` would put
    that in place of the real error. So after a failure the cleanup is only attempted, its own
    errors ignored, and the block's error is the one raised; the caller's ROLLBACK takes away
    what the transaction created (steps create their tables with CREATE OR REPLACE, so one left
    over outside a transaction is replaced on its next use)."""
    try:
        yield
    except BaseException:
        for drop in _drops(con, tables, frames):
            with suppress(duckdb.Error):
                drop()
        raise
    for drop in _drops(con, tables, frames):
        drop()


def _drops(con: duckdb.DuckDBPyConnection, tables: Sequence[str],
           frames: Sequence[str]) -> list[Callable[[], object]]:
    return ([partial(con.unregister, frame) for frame in frames]
            + [partial(con.execute, f"DROP TABLE IF EXISTS {table}") for table in tables])


def configure_session(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET memory_limit = '2GB'")


@contextmanager
def warehouse_lock(path: str, *, exclusive: bool, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold the lock file beside the warehouse: writers exclusively, readers shared.

    DuckDB refuses a read-only open while another process writes (and a write open while others
    read), so both wait their turn here instead of failing on DuckDB's own lock.
    """
    settings.ensure_parent(path)
    lock_path = Path(path).expanduser().resolve().with_suffix(".writer.lock")
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"timed out waiting for the warehouse lock {lock_path}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def connect_writer(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection with every schema and table in place."""
    with warehouse_lock(path, exclusive=True):
        con = duckdb.connect(path)
        try:
            configure_session(con)
            for schema_file in SCHEMA_FILES:
                con.execute(sql(schema_file))
            _rename_v1_columns(con)
            _redigest_if_scheme_changed(con)
            yield con
        finally:
            con.close()


V1_RENAMED_COLUMNS = (("billing", "invoice_status_history", "at", "changed_at"),)
"""Columns contract v2 renamed: (schema, table, v1 name, v2 name)."""


def _rename_v1_columns(con: duckdb.DuckDBPyConnection) -> None:
    """A warehouse written before contract v2 gets its renamed columns renamed in place."""
    for schema, table, old, new in V1_RENAMED_COLUMNS:
        found = con.execute("""
            SELECT count(*) FROM information_schema.columns
            WHERE table_schema = $schema AND table_name = $table AND column_name = $old""",
            {"schema": schema, "table": table, "old": old}).fetchall()[0][0]
        if found:
            con.execute(f'ALTER TABLE {schema}.{table} RENAME COLUMN "{old}" TO {new}')


def _redigest_if_scheme_changed(con: duckdb.DuckDBPyConnection) -> None:
    """Stored payload digests computed another way (an older release of ours, md5; or a DuckDB
    whose hash() changed) are recomputed in one pass, so that a re-sent event is still told a
    duplicate, not a conflict. Costs one small query when nothing changed."""
    run_sql(con, "raw/payload_digest")
    current, stored, events = con.execute("""
        SELECT payload_digest_probe(),
               (SELECT max(probe_digest) FROM raw.payload_digest_scheme),
               (SELECT count(*) FROM (SELECT 1 FROM raw.events LIMIT 1))""").fetchall()[0]
    if stored == current:
        return
    with transaction(con):
        if events:
            con.execute("""UPDATE raw.events SET payload_hash = payload_digest(
                event_name, customer_id, subscription_id, "timestamp", properties)""")
        con.execute("DELETE FROM raw.payload_digest_scheme")
        con.execute("INSERT INTO raw.payload_digest_scheme VALUES (payload_digest_probe(), now())")


@contextmanager
def connect_reader(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, for reports and CLI summaries after a run."""
    if not Path(path).exists():
        # nothing written yet: create the file with its schema so readers see empty tables
        with connect_writer(path):
            pass
    with warehouse_lock(path, exclusive=False):
        con = duckdb.connect(path, read_only=True)
        try:
            configure_session(con)
            yield con
        finally:
            con.close()


def register_currency_digits(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table ``currency_digits`` (currency, digits): the minor units of every currency the
    ledger, the catalog or a provider snapshot uses (from babel, via `minor_units`), and the
    ``money_text(amount, digits)`` macro (sql/money_macros.sql) that prints amounts with them.
    A provider's unknown currency code gets no row (its amounts print unrounded)."""
    from pipelines.rating.money import minor_units  # the money rules import nothing of ours

    codes = [row[0] for row in con.execute("""
        SELECT currency FROM billing.invoices UNION SELECT currency FROM billing.plans
        UNION SELECT currency FROM sync.provider_invoices WHERE currency IS NOT NULL""").fetchall()]
    rows = []
    for code in codes:
        try:
            rows.append((code, minor_units(code)))
        except ValueError:
            continue
    con.execute("CREATE OR REPLACE TEMP TABLE currency_digits (currency VARCHAR PRIMARY KEY, "
                "digits INTEGER NOT NULL)")
    if rows:
        con.executemany("INSERT INTO currency_digits VALUES (?, ?)", rows)
    run_sql(con, "money_macros")
