"""The store file and how every operation reaches it.

Every operation opens its own short connection (safe from any thread or process), waits for a
busy writer (busy_timeout) and commits with synchronous=FULL, so an answered call is on disk.
Instants are kept as ISO 8601 text in UTC. The file holds token hashes and every call's body:
it is created readable by its owner only (0600), and SQLite gives its -wal and -shm files the
same mode.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from datetime import UTC, datetime

from pipelines import settings
from pipelines.api.store.schema import set_up

BUSY_TIMEOUT_MS = 15_000
STORE_FILE_MODE = 0o600


class StoreFile:
    """The store at `path` (created or migrated on first use). Cheap to construct; holds no
    connection."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or settings.api_store_path()
        settings.ensure_parent(self.path)
        _owner_only(self.path)
        with closing(self._connect()) as con:
            set_up(con)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (taken at once, so its reads see the latest commit)."""
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as con:
            yield con


def _owner_only(path: str) -> None:
    """Create the store file readable and writable by its owner only, before SQLite opens it
    (SQLite creates -wal and -shm with the mode of the database file); a store file of ours
    left wider by an earlier version is narrowed."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, STORE_FILE_MODE))
        return
    except FileExistsError:
        pass
    status = os.stat(path)
    if status.st_uid == os.getuid() and status.st_mode & 0o777 & ~STORE_FILE_MODE:
        for name in (path, f"{path}-wal", f"{path}-shm"):
            with suppress(FileNotFoundError):     # -wal and -shm come and go
                os.chmod(name, STORE_FILE_MODE)


def stored_instant(at: datetime) -> str:
    """How an instant is kept: ISO 8601 in UTC; a naive datetime is refused."""
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no UTC offset")
    return at.astimezone(UTC).isoformat()


def read_instant(text: str | None) -> datetime | None:
    """A kept instant back (None stays None)."""
    return datetime.fromisoformat(text) if text else None
