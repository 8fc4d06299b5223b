"""The inbox as the pipeline sees it: accepted calls waiting, in arrival order, to be applied
to the warehouse or rejected, and the outcome it records for each; read a page at a time, and
pruned once decided and older than the retention period.

With customer shards, an item about several shards' documents is decided from the shares each
shard records (`record_share`): once every shard has recorded its own, the item is applied if
any shard applied its part, else rejected with every shard's reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pipelines.api.store.database import StoreFile, read_instant, stored_instant

_ITEM_COLUMNS = ("item_id, kind, invoice_id, body, token_name, received_at, status, reason, "
                 "applied_at, token_id")
PENDING_PAGE = 200           # items read at a time by `each_pending`
MAX_ITEM_ID = 2 ** 63 - 1    # SQLite's largest integer: no item id is beyond it


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
    token_id: int | None = None     # None for items accepted before tokens were recorded

    @property
    def actor(self) -> str:
        """Who made the call, as status histories and adjustments record it: the token's id
        (unique forever; a name is free again once its token is revoked) after its name
        (for people): `api:<token name>#<token id>`."""
        if self.token_id is None:
            return f"api:{self.token_name}"
        return f"api:{self.token_name}#{self.token_id}"


ShareOutcome = Literal["applied", "not_ours", "rejected"]


@dataclass(frozen=True)
class Share:
    """What one customer shard did with its part of an item about several shards' documents."""

    shard: int
    outcome: ShareOutcome
    detail: str | None


def item_decision(shares: list[Share]) -> tuple[Literal["applied", "rejected"], str | None]:
    """An item's outcome from every shard's share: applied when any shard applied its part
    (the reason then names the shards that refused theirs, if any), else rejected; the reason
    names each shard's reason, once when they all gave the same. Pure."""
    refused = [share for share in sorted(shares, key=lambda s: s.shard)
               if share.outcome != "applied"]
    status: Literal["applied", "rejected"] = (
        "applied" if len(refused) < len(shares) else "rejected")
    if not refused:
        return status, None
    said = {(share.outcome, share.detail) for share in refused}
    if status == "rejected" and len(said) == 1:
        outcome, detail = said.pop()
        if outcome == "rejected":
            return status, detail
        return status, f"not ours in any of the {len(shares)} customer shards: {detail}"
    return status, "; ".join(f"shard {share.shard}: {share.outcome.replace('_', ' ')}"
                             + (f" ({share.detail})" if share.detail else "")
                             for share in refused)


@dataclass(frozen=True)
class Pruned:
    """What `prune_decided` removed."""

    items: int
    responses: int


class InboxStore(StoreFile):
    """The inbox table, read and decided by the pipeline."""

    def pending_items(self, limit: int | None = None, *, after: int = 0) -> list[InboxItem]:
        """Items not yet applied nor rejected, in arrival order, from the first after item
        `after` on (at most `limit` of them)."""
        with self._read() as con:
            rows = con.execute(f"SELECT {_ITEM_COLUMNS} FROM inbox WHERE status = 'pending' "
                               "AND item_id > ? ORDER BY item_id LIMIT ?",
                               (after, -1 if limit is None else limit)).fetchall()
        return [_item(row) for row in rows]

    def each_pending(self, page_size: int = PENDING_PAGE) -> Iterator[InboxItem]:
        """Every pending item in arrival order, read `page_size` at a time (no connection is
        held between pages, so the API keeps accepting calls; those arriving meanwhile come
        too)."""
        after = 0
        while True:
            page = self.pending_items(page_size, after=after)
            yield from page
            if len(page) < page_size:
                return
            after = page[-1].item_id

    def inbox_item(self, item_id: int) -> InboxItem | None:
        """One inbox item with its outcome, or None (an id SQLite cannot hold is none)."""
        if not 0 < item_id <= MAX_ITEM_ID:
            return None
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
        if not 0 < item_id <= MAX_ITEM_ID:
            raise KeyError(f"no inbox item {item_id}")
        with self._write() as con:
            cursor = con.execute("UPDATE inbox SET status = ?, reason = ?, applied_at = ? "
                                 "WHERE item_id = ? AND status = 'pending'",
                                 (status, reason, stored_instant(at), item_id))
            if cursor.rowcount == 0 and con.execute(
                    "SELECT 1 FROM inbox WHERE item_id = ?", (item_id,)).fetchone() is None:
                raise KeyError(f"no inbox item {item_id}")

    def item_shares(self, item_id: int, shards: int) -> dict[int, Share]:
        """The shares recorded for an item by the shards of a `shards`-shard warehouse, by
        shard."""
        with self._read() as con:
            rows = con.execute("SELECT shard, outcome, detail FROM inbox_item_shares "
                               "WHERE item_id = ? AND shards = ?", (item_id, shards)).fetchall()
        return {shard: Share(shard, outcome, detail) for shard, outcome, detail in rows}

    def record_share(self, item_id: int, shard: int, shards: int, outcome: ShareOutcome,
                     detail: str | None, at: datetime) -> Literal["applied", "rejected"] | None:
        """Record shard `shard`'s share of a pending item (the first recorded stays) and, when
        every one of the `shards` shards has recorded its own, decide the item
        (`item_decision`), in the same transaction. Returns the item's status when it was
        decided now, else None."""
        if outcome not in ("applied", "not_ours", "rejected"):
            raise ValueError(f"share outcome {outcome!r}")
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} of {shards}")
        with self._write() as con:
            if con.execute("SELECT 1 FROM inbox WHERE item_id = ?",
                           (item_id,)).fetchone() is None:
                raise KeyError(f"no inbox item {item_id}")
            con.execute("INSERT OR IGNORE INTO inbox_item_shares (item_id, shard, shards, "
                        "outcome, detail, decided_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (item_id, shard, shards, outcome, detail, stored_instant(at)))
            rows = con.execute("SELECT shard, outcome, detail FROM inbox_item_shares "
                               "WHERE item_id = ? AND shards = ?", (item_id, shards)).fetchall()
            if len(rows) < shards:
                return None
            status, reason = item_decision([Share(*row) for row in rows])
            decided = con.execute("UPDATE inbox SET status = ?, reason = ?, applied_at = ? "
                                  "WHERE item_id = ? AND status = 'pending'",
                                  (status, reason, stored_instant(at), item_id)).rowcount
            return status if decided else None

    def pending_count(self) -> int:
        """How many items wait to be applied (one indexed count)."""
        with self._read() as con:
            return int(con.execute("SELECT count(*) FROM inbox "
                                   "WHERE status = 'pending'").fetchone()[0])

    def prune_decided(self, before: datetime) -> Pruned:
        """Forget the calls decided before `before`: their stored answers (a replay after that
        is a new call), then their items (their outcome can no longer be asked for). Pending
        items and their answers always stay, and so does an applied item the pipeline has not
        yet published the document of (the API still projects it)."""
        cutoff = stored_instant(before)
        with self._write() as con:
            responses = con.execute("""
                DELETE FROM responses WHERE inbox_item_id IN (
                    SELECT item_id FROM inbox WHERE status <> 'pending' AND applied_at < ?)""",
                                    (cutoff,)).rowcount
            items = con.execute("""
                DELETE FROM inbox
                WHERE status <> 'pending' AND applied_at < ?
                  AND NOT EXISTS (SELECT 1 FROM responses r
                                  WHERE r.inbox_item_id = inbox.item_id)
                  AND (status = 'rejected' OR NOT EXISTS (
                        SELECT 1 FROM published_invoices p
                        WHERE p.invoice_id = inbox.invoice_id
                          AND p.settled_through < inbox.item_id))""",
                                (cutoff,)).rowcount
            con.execute("DELETE FROM inbox_item_shares WHERE item_id NOT IN "
                        "(SELECT item_id FROM inbox)")
        return Pruned(items=items, responses=responses)


def _item(row: tuple[Any, ...]) -> InboxItem:
    (item_id, kind, invoice_id, body, token_name, received, status, reason, applied,
     token_id) = row
    return InboxItem(item_id=item_id, kind=kind, invoice_id=invoice_id, body=json.loads(body),
                     token_name=token_name, received_at=datetime.fromisoformat(received),
                     status=status, reason=reason, applied_at=read_instant(applied),
                     token_id=token_id)
