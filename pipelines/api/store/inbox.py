"""The inbox as the pipeline sees it: accepted calls waiting, in arrival order, to be applied
to the warehouse or rejected, and the outcome it records for each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pipelines.api.store.database import StoreFile, read_instant, stored_instant

_ITEM_COLUMNS = ("item_id, kind, invoice_id, body, token_name, received_at, status, reason, "
                 "applied_at")


@dataclass(frozen=True)
class InboxItem:
    """An accepted call waiting for (or already given) its outcome in the warehouse."""

    item_id: int
    kind: str
    invoice_id: str | None
    body: dict[str, Any]
    token_name: str
    received_at: datetime
    status: str = "pending"
    reason: str | None = None
    applied_at: datetime | None = None


class InboxStore(StoreFile):
    """The inbox table, read and decided by the pipeline."""

    def pending_items(self, limit: int | None = None) -> list[InboxItem]:
        """Items not yet applied nor rejected, in arrival order."""
        with self._read() as con:
            rows = con.execute(f"SELECT {_ITEM_COLUMNS} FROM inbox WHERE status = 'pending' "
                               "ORDER BY item_id LIMIT ?",
                               (-1 if limit is None else limit,)).fetchall()
        return [_item(row) for row in rows]

    def inbox_item(self, item_id: int) -> InboxItem | None:
        """One inbox item with its outcome, or None."""
        with self._read() as con:
            row = con.execute(f"SELECT {_ITEM_COLUMNS} FROM inbox WHERE item_id = ?",
                              (item_id,)).fetchone()
        return _item(row) if row else None

    def mark_item(self, item_id: int, status: Literal["applied", "rejected"],
                  reason: str | None, at: datetime) -> None:
        """Record what the pipeline did with a pending item. The first outcome stays: marking
        an item already decided changes nothing; a KeyError names an unknown item."""
        if status not in ("applied", "rejected"):
            raise ValueError(f"status {status!r}: must be 'applied' or 'rejected'")
        with self._write() as con:
            cursor = con.execute("UPDATE inbox SET status = ?, reason = ?, applied_at = ? "
                                 "WHERE item_id = ? AND status = 'pending'",
                                 (status, reason, stored_instant(at), item_id))
            if cursor.rowcount == 0 and con.execute(
                    "SELECT 1 FROM inbox WHERE item_id = ?", (item_id,)).fetchone() is None:
                raise KeyError(f"no inbox item {item_id}")

    def pending_count(self) -> int:
        """How many items wait to be applied (one indexed count)."""
        with self._read() as con:
            return int(con.execute("SELECT count(*) FROM inbox "
                                   "WHERE status = 'pending'").fetchone()[0])


def _item(row: tuple[Any, ...]) -> InboxItem:
    item_id, kind, invoice_id, body, token_name, received, status, reason, applied = row
    return InboxItem(item_id=item_id, kind=kind, invoice_id=invoice_id, body=json.loads(body),
                     token_name=token_name, received_at=datetime.fromisoformat(received),
                     status=status, reason=reason, applied_at=read_instant(applied))
