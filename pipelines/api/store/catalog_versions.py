"""Customers and subscriptions a CRM puts through the API (contract section 11), versioned.

Every change is a new row of `catalog_versions` with its time and the token that made it; the
current definition of an entry is its highest version. Putting the fields an entry already has
adds nothing, so a CRM may send its whole state again and again. The pipeline reads the current
definitions with `read_current_entries`, on a read-only connection that never blocks the API.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pipelines.api.store.calls import canonical_json
from pipelines.api.store.database import BUSY_TIMEOUT_MS, StoreFile, stored_instant
from pipelines.erasure.pseudonyms import erased_customer_fields

Section = Literal["customers", "subscriptions"]
CATALOG_SECTIONS: tuple[Section, ...] = ("customers", "subscriptions")
Change = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class EntryVersion:
    """One version of a customer or subscription: its catalog fields, when and by whom."""

    section: Section
    entry_id: str
    version: int
    fields: dict[str, Any]
    changed_at: datetime
    token_id: int
    token_name: str

    def as_json(self) -> dict[str, Any]:
        """How the API shows a version."""
        return {"id": self.entry_id, "version": self.version,
                "changed_at": self.changed_at.isoformat(), "changed_by": self.token_name,
                "changed_by_token_id": self.token_id, "fields": self.fields}


@dataclass(frozen=True)
class PutResult:
    """What a put did: a first version, a new one, or nothing (the same fields again)."""

    change: Change
    current: EntryVersion


@dataclass(frozen=True)
class StoreEntries:
    """The store's current customers and subscriptions, as of `revision`."""

    path: str
    revision: int
    entries: tuple[EntryVersion, ...]


_COLUMNS = "section, entry_id, version, fields, changed_at, token_id, token_name"


def _version(row: tuple[Any, ...]) -> EntryVersion:
    section, entry_id, version, fields, changed_at, token_id, token_name = row
    return EntryVersion(section, entry_id, version, json.loads(fields),
                        datetime.fromisoformat(changed_at), token_id, token_name)


class CatalogVersionStore(StoreFile):
    """The versions of the customers and subscriptions put through the API."""

    def put_catalog_entry(self, section: Section, entry_id: str, fields: dict[str, Any], *,
                          token_id: int, token_name: str, at: datetime) -> PutResult:
        """Keep `fields` as the entry's next version, unless they are its current ones; the
        version is on disk (synchronous=FULL) when this returns. An erased customer's personal
        fields are kept pseudonymised: a CRM syncing its whole state cannot bring them back."""
        with self._write() as con:
            if section == "customers":
                erased = con.execute("SELECT salt FROM erased_customers WHERE customer_id = ?",
                                     (entry_id,)).fetchone()
                if erased is not None:
                    fields = erased_customer_fields(fields, entry_id, erased[0])
            text = canonical_json(fields)    # equal fields, equal text
            row = con.execute(f"SELECT {_COLUMNS} FROM catalog_versions "
                              "WHERE section = ? AND entry_id = ? ORDER BY version DESC LIMIT 1",
                              (section, entry_id)).fetchone()
            if row is not None and row[3] == text:
                return PutResult("unchanged", _version(row))
            version = 1 if row is None else row[2] + 1
            con.execute("INSERT INTO catalog_versions (section, entry_id, version, fields, "
                        "changed_at, token_id, token_name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (section, entry_id, version, text, stored_instant(at), token_id,
                         token_name))
            con.execute("UPDATE catalog_revision SET revision = revision + 1")
        current = EntryVersion(section, entry_id, version, json.loads(text),
                               datetime.fromisoformat(stored_instant(at)), token_id, token_name)
        return PutResult("created" if version == 1 else "updated", current)

    def catalog_entry(self, section: Section, entry_id: str) -> EntryVersion | None:
        """The entry's current version, or None when the API never received it."""
        history = self.catalog_entry_history(section, entry_id, latest_only=True)
        return history[0] if history else None

    def catalog_entry_history(self, section: Section, entry_id: str, *,
                              latest_only: bool = False) -> list[EntryVersion]:
        """Every version of the entry, newest first (only the newest with `latest_only`)."""
        limit = " LIMIT 1" if latest_only else ""
        with self._read() as con:
            rows = con.execute(f"SELECT {_COLUMNS} FROM catalog_versions "
                               "WHERE section = ? AND entry_id = ? ORDER BY version DESC"
                               + limit, (section, entry_id)).fetchall()
        return [_version(row) for row in rows]

    def subscriptions_of(self, customer_id: str) -> list[EntryVersion]:
        """The current versions of the subscriptions the API holds for a customer."""
        with self._read() as con:
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM catalog_versions v WHERE section = 'subscriptions' "
                "AND json_extract(fields, '$.customer') = ? AND version = ("
                "SELECT max(version) FROM catalog_versions w "
                "WHERE w.section = v.section AND w.entry_id = v.entry_id)",
                (customer_id,)).fetchall()
        return [_version(row) for row in rows]


def _current(con: sqlite3.Connection) -> list[EntryVersion]:
    # SQLite gives the other columns of the row holding max(version)
    rows = con.execute(
        "SELECT section, entry_id, max(version), fields, changed_at, token_id, token_name "
        "FROM catalog_versions GROUP BY section, entry_id ORDER BY section, entry_id").fetchall()
    return [_version(row) for row in rows]


@contextmanager
def _read_only(path: str) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the store at `path` in one read transaction (a snapshot: the
    API writes on meanwhile), or None when there is no store file."""
    if not Path(path).is_file():
        yield None
        return
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                 isolation_level=None)) as con:
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")


def _revision(con: sqlite3.Connection) -> int:
    try:
        row = con.execute("SELECT revision FROM catalog_revision").fetchone()
    except sqlite3.OperationalError:     # a store from before schema version 6: no entries
        return 0
    return int(row[0]) if row else 0


def read_revision(path: str) -> int:
    """The store's catalog revision (0 without a store or entries): it changes with every
    write to the customers and subscriptions put through the API."""
    with _read_only(path) as con:
        return 0 if con is None else _revision(con)


def read_current_entries(path: str) -> StoreEntries:
    """The current customers and subscriptions in the store at `path`, read-only, as one
    snapshot; none when there is no store file (or one from before they were kept)."""
    with _read_only(path) as con:
        if con is None:
            return StoreEntries(path, 0, ())
        revision = _revision(con)
        if revision == 0:
            return StoreEntries(path, 0, ())
        return StoreEntries(path, revision, tuple(_current(con)))
