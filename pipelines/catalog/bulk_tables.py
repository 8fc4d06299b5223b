"""Customers and subscriptions loaded in bulk from a table (contract section 11).

A catalog file names the table (`customers_table: customers.parquet`, `subscriptions_table:
subscriptions.csv`); the path is inside the catalog folder, never outside. Each row becomes the
same mapping a YAML entry is, so the loader validates it with the same rules and the faults name
the file, the row (1 is the first row under the header) and the field.

CSV cells are text: whole numbers in `billing_anchor` and `days_until_due` are read as numbers,
and `metadata`, `address` and `discounts` are JSON (an object, a list of objects). Parquet
columns keep their types; those three may be a struct / list of structs or JSON text.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

TABLE_KEYS = {"customers_table": "customers", "subscriptions_table": "subscriptions"}
"""The top-level catalog keys naming a bulk table, and the section its rows belong to."""
TABLE_SUFFIXES = (".csv", ".parquet")
WHOLE_NUMBER_COLUMNS = ("billing_anchor", "days_until_due")
JSON_COLUMNS = ("metadata", "discounts", "address")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class TableRefused(ValueError):
    """A declared table that is not read: outside the catalog folder, missing, not a file, of
    an unknown kind."""


@dataclass(frozen=True)
class TableFile:
    """A bulk table's bytes as read, by exact name, once: what is validated is what is hashed."""

    label: str          # the path as faults and billing.*.source_file show it
    content: bytes
    digest: str


def resolve_table(folder: Path, declared: Any) -> Path:
    """The file a `*_table:` value names, inside the catalog folder `folder`; TableRefused says
    why not (absolute, outside once links are followed, not a regular file, not CSV/Parquet)."""
    if not isinstance(declared, str) or not declared.strip():
        raise TableRefused(f"must be a path inside the catalog folder, got {declared!r}")
    relative = Path(declared.strip())
    if relative.is_absolute():
        raise TableRefused(f"{declared!r} is absolute: name a file inside the catalog folder "
                           f"{folder} (relative to it)")
    root = folder.resolve()
    target = (folder / relative).resolve()
    if not target.is_relative_to(root):
        raise TableRefused(f"{declared!r} resolves outside the catalog folder {folder}; "
                           "only files inside it are read")
    if target.suffix.lower() not in TABLE_SUFFIXES:
        raise TableRefused(f"{declared!r} is neither .csv nor .parquet")
    if not target.is_file():
        raise TableRefused(f"{declared!r} is not a file in the catalog folder {folder}")
    return target


def read_table(folder: Path, declared: str) -> TableFile:
    """The declared table's bytes (TableRefused when it may not be read)."""
    target = resolve_table(folder, declared)
    content = target.read_bytes()
    label = str(folder / Path(declared.strip()))
    return TableFile(label, content, hashlib.sha256(content).hexdigest())


def table_rows(table: TableFile, allowed: set[str]) -> tuple[list[tuple[int, dict[str, Any]]],
                                                             list[str]]:
    """The table's rows as catalog entries (row number, mapping), and the faults of the table
    as a whole, without its name (unreadable, unknown columns: named once, not per row)."""
    import polars as pl  # here: importing the catalog models must not load polars

    try:
        if table.label.lower().endswith(".csv"):
            frame = pl.read_csv(io.BytesIO(table.content), infer_schema=False)
        else:
            frame = pl.read_parquet(io.BytesIO(table.content))
    except Exception as exc:
        kind = "CSV" if table.label.lower().endswith(".csv") else "Parquet"
        return [], [f"not a readable {kind} table: {exc}"]
    faults: list[str] = []
    unknown = sorted(set(frame.columns) - allowed)
    if unknown:
        faults.append(f"unknown column(s) {', '.join(unknown)} "
                      f"(known: {', '.join(sorted(allowed))})")
        frame = frame.drop(unknown)
    text = table.label.lower().endswith(".csv")
    return list(_entries(frame, text)), faults


def _entries(frame: pl.DataFrame, text: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, row in enumerate(frame.iter_rows(named=True), start=1):
        entry: dict[str, Any] = {}
        for column, value in row.items():
            if value is None:
                continue
            if column in JSON_COLUMNS and isinstance(value, str):
                value = _json_or_text(value)
            elif text and column in WHOLE_NUMBER_COLUMNS and _WHOLE_NUMBER.fullmatch(value):
                value = int(value)
            entry[column] = value
        yield number, entry


def _json_or_text(value: str) -> Any:
    """A JSON cell parsed; text that is not JSON stays text, for the rule to refuse by name."""
    try:
        return json.loads(value)
    except ValueError:
        return value
