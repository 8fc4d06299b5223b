"""An erasure in the API store (contract section 11): every copy of an erased customer's
personal data the integration API keeps, pseudonymised.

The store holds personal data in the CRM's customer versions (`catalog_versions`: every
version, not only the current one), in the answers it replays (`responses`), in the bodies of
inbox items (a Stripe event carries the customer's name and email) and in published documents.
The versions are rewritten field by field (and `catalog_revision` moves on, so the catalog is
read again); every other TEXT column of every table is searched for the customer's personal
strings, so a table added later is covered too. The customer is kept in `erased_customers`, so
a CRM's later put of it is stored pseudonymised (`CatalogVersionStore.put_catalog_entry`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pipelines.api.store.calls import canonical_json
from pipelines.api.store.database import StoreFile, stored_instant
from pipelines.erasure.pseudonyms import erased_customer_fields, replace_terms

SWEPT_TYPES = ("TEXT", "", "VARCHAR", "JSON")
"""SQLite column types searched for personal strings (an undeclared type holds text too)."""


class ErasureStore(StoreFile):
    """The API store's side of an erasure."""

    def erased_salt(self, customer_id: str) -> str | None:
        """The salt of the customer's erasure, when the store has one."""
        with self._read() as con:
            row = con.execute("SELECT salt FROM erased_customers WHERE customer_id = ?",
                              (customer_id,)).fetchone()
        return row[0] if row else None

    def personal_values(self, customer_id: str) -> list[str]:
        """Every name, email and metadata value any version of the CRM's customer had."""
        with self._read() as con:
            rows = con.execute("SELECT fields FROM catalog_versions WHERE section = 'customers' "
                               "AND entry_id = ?", (customer_id,)).fetchall()
        values: list[str] = []
        for (text,) in rows:
            fields = json.loads(text)
            values += [str(fields[k]) for k in ("name", "email") if fields.get(k)]
            values += [str(v) for v in (fields.get("metadata") or {}).values()]
        return values

    def erase(self, customer_id: str, *, pseudonym: str, salt: str,
              replacements: Mapping[str, str], at: datetime) -> dict[str, int]:
        """Pseudonymise the customer everywhere in the store, in one transaction; returns the
        rows changed per `table.column` (nothing on a second run)."""
        changes: dict[str, int] = {}
        with self._write() as con:
            con.execute("INSERT OR IGNORE INTO erased_customers (customer_id, pseudonym, salt, "
                        "erased_at) VALUES (?, ?, ?, ?)",
                        (customer_id, pseudonym, salt, stored_instant(at)))
            versions = 0
            for version_id, text in con.execute(
                    "SELECT version_id, fields FROM catalog_versions WHERE section = 'customers' "
                    "AND entry_id = ?", (customer_id,)).fetchall():
                erased = canonical_json(erased_customer_fields(json.loads(text), customer_id,
                                                               salt))
                if erased != text:
                    con.execute("UPDATE catalog_versions SET fields = ? WHERE version_id = ?",
                                (erased, version_id))
                    versions += 1
            if versions:
                changes["catalog_versions.fields"] = versions
            for key, count in _sweep(con, replacements).items():
                changes[key] = changes.get(key, 0) + count
            if any(key.startswith("catalog_versions.") for key in changes):
                con.execute("UPDATE catalog_revision SET revision = revision + 1")
        return changes


def _sweep(con: sqlite3.Connection, replacements: Mapping[str, str]) -> dict[str, int]:
    """Every text column of every table with the personal strings replaced."""
    changes: dict[str, int] = {}
    if not replacements:
        return changes
    tables = [row[0] for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name <> 'erased_customers'")]
    for table in tables:
        for column in text_columns(con, table):
            matches = " OR ".join(f'instr(lower("{column}"), ?) > 0' for _ in replacements)
            rows: list[tuple[Any, ...]] = con.execute(
                f'SELECT rowid, "{column}" FROM "{table}" WHERE {matches}',
                [ascii_lower(term) for term in replacements]).fetchall()
            changed = 0
            for rowid, value in rows:
                new = replace_terms(value, replacements)
                if new != value:
                    con.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?',
                                (new, rowid))
                    changed += 1
            if changed:
                changes[f"{table}.{column}"] = changed
    return changes


def text_columns(con: sqlite3.Connection, table: str) -> list[str]:
    """The columns of `table` that hold text."""
    return [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')
            if str(row[2]).upper() in SWEPT_TYPES]


def ascii_lower(text: str) -> str:
    """Lower case as SQLite's lower() makes it (ASCII letters only)."""
    return "".join(c.lower() if c.isascii() else c for c in text)
