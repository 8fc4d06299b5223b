"""The DuckDB warehouse: one file, one writer at a time, SQL kept in `sql/`.

DuckDB admits a single writing process per file. Inside Dagster the `warehouse` concurrency pool
(limit 1, see dagster.yaml) keeps writer steps apart; this module adds an OS-level lock beside the
file so that writers started outside Dagster (a CLI call during a scheduled run) wait their turn
instead of failing on DuckDB's own lock.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb

from pipelines import settings

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


@cache
def sql(name: str) -> str:
    """The text of `sql/<name>.sql` (e.g. ``sql("raw/events")``)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")


@contextmanager
def writer_lock(path: str, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold the warehouse's writer lock: one writing process at a time, the others wait."""
    settings.ensure_parent(path)
    lock_path = Path(path).expanduser().resolve().with_suffix(".writer.lock")
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process holds the warehouse writer lock {lock_path}")
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def connect_writer(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection with every schema and table in place."""
    with writer_lock(path):
        con = duckdb.connect(path)
        try:
            _configure(con)
            con.execute(sql("warehouse_schema"))
            yield con
        finally:
            con.close()


@contextmanager
def connect_reader(path: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, for reports and CLI summaries after a run."""
    con = duckdb.connect(path, read_only=True)
    try:
        _configure(con)
        yield con
    finally:
        con.close()
