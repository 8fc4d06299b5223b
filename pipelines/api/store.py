"""The integration API's embedded store: tokens, the inbox of accepted calls, the stored answers
that replays get, and the invoices the pipeline publishes for the API to check calls against.

It is a SQLite file in WAL mode (`BILLING_API_STORE`), never the DuckDB warehouse: the API
process and the pipeline use it at the same time. Every operation opens its own short
connection (safe from any thread or process), waits for a busy writer (busy_timeout) and commits
with synchronous=FULL, so an answered call is on disk. A call is accepted in one transaction
that re-reads the invoice's state, inserts the inbox item and stores the answer: a 2xx is only
ever sent for an item already committed.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pipelines import settings
from pipelines.api import rules

BUSY_TIMEOUT_MS = 15_000
TOKEN_PREFIX = "bpk_"
SCHEMA_VERSION = 2      # 2: inbox kinds include custom_invoicing.statement

INBOX_COLUMNS = ("item_id, kind, invoice_id, event_id, body, token_name, request_key, "
                 "received_at, status, reason, applied_at")


def _inbox_table(name: str) -> str:
    """The inbox table's DDL (under another name while a migration rebuilds it: SQLite cannot
    change a CHECK constraint in place)."""
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    item_id     INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order
    kind        TEXT NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in rules.KINDS)})),
    invoice_id  TEXT,                                -- ours; NULL for Stripe events, statements
    event_id    TEXT,                                -- the Stripe event id
    body        TEXT NOT NULL,                       -- the JSON body as accepted
    token_name  TEXT NOT NULL,
    request_key TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'applied', 'rejected')),
    reason      TEXT,
    applied_at  TEXT
)"""


INBOX_INDEXES = """CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, item_id);
CREATE INDEX IF NOT EXISTS inbox_invoice ON inbox (invoice_id, item_id);"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,              -- JSON list of scopes
    token_hash  TEXT NOT NULL UNIQUE,       -- sha256 hex of the token; the token is never kept
    hint        TEXT NOT NULL,              -- the token's last 4 characters, to tell tokens apart
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_active_name ON tokens (name) WHERE revoked_at IS NULL;

{_inbox_table("inbox")};
{INBOX_INDEXES}

CREATE TABLE IF NOT EXISTS responses (
    request_key   TEXT PRIMARY KEY,     -- Idempotency-Key based, or derived from the call
    fingerprint   TEXT NOT NULL,        -- sha256 of method, path and canonical body
    status_code   INTEGER NOT NULL,
    body          TEXT NOT NULL,
    inbox_item_id INTEGER REFERENCES inbox (item_id),
    created_at    TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS published_invoices (
    invoice_id      TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    app             TEXT NOT NULL,
    status          TEXT NOT NULL,      -- the warehouse status when published
    currency        TEXT NOT NULL,
    total           TEXT NOT NULL,      -- exact decimal as text
    lines           TEXT NOT NULL,      -- JSON [{{"line_id", "line_type"}}] in invoice order
    published_at    TEXT NOT NULL,
    settled_through INTEGER NOT NULL DEFAULT 0   -- last inbox item already decided at publish
);
"""


@dataclass(frozen=True)
class PublishedLine:
    """A line of a published invoice: integrations map their external ids onto these."""

    line_id: str
    line_type: str      # usage, flat, minimum_commitment, discount, adjustment


@dataclass(frozen=True)
class PublishedInvoice:
    """An invoice as the pipeline last published it for the API (its warehouse status)."""

    invoice_id: str
    customer_id: str
    app: str
    status: str
    currency: str
    total: Decimal
    lines: tuple[PublishedLine, ...]
    published_at: datetime | None = None


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


@dataclass(frozen=True)
class TokenInfo:
    """What is known of a token once created: never the token itself."""

    name: str
    scopes: tuple[str, ...]
    hint: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Answer:
    """An HTTP answer decided by the store: status code and JSON body; `replayed` when it is the
    stored answer of an earlier identical call."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Call:
    """A call to accept into the inbox, once authenticated."""

    kind: str
    invoice_id: str | None
    body: Any                 # parsed JSON
    token_name: str
    request_key: str
    fingerprint: str
    received_at: datetime
    event_id: str | None = None


def error_body(code: str, message: str, *, field: str | None = None,
               current_state: str | None = None,
               details: Sequence[rules.FieldError] = ()) -> dict[str, Any]:
    """The one error body shape of the API."""
    error: dict[str, Any] = {"code": code, "message": message, "field": field,
                             "current_state": current_state}
    if details:
        error["details"] = [{"field": d.field, "message": d.message} for d in details]
    return {"error": error}


def hash_token(token: str) -> str:
    """How a token is kept: its sha256 (tokens are 256-bit random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no UTC offset")
    return at.astimezone(UTC).isoformat()


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ApiStore:
    """The store at `path` (created on first use). Cheap to construct; holds no connection."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path or settings.api_store_path()
        settings.ensure_parent(self.path)
        with closing(self._connect()) as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                return   # already set up: opening the store writes nothing (the sensor polls)
            if version > 0:
                _migrate(con)
                return
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL").fetchone()
            con.executescript(f"BEGIN IMMEDIATE; {SCHEMA}; "
                              f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

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

    # ------------------------------------------------------------------ tokens
    def create_token(self, name: str, scopes: Sequence[str], *,
                     at: datetime | None = None) -> str:
        """A new token with these scopes; the token is returned once and only its hash kept.
        A ValueError names an unknown scope or a name already used by an active token."""
        name = name.strip()
        if not name:
            raise ValueError("a token needs a name")
        checked = rules.check_scopes(scopes)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            with self._write() as con:
                con.execute("""
                    INSERT INTO tokens (name, scopes, token_hash, hint, created_at)
                    VALUES (?, ?, ?, ?, ?)""",
                            (name, json.dumps(list(checked)), hash_token(token), token[-4:],
                             _iso(at or datetime.now(UTC))))
        except sqlite3.IntegrityError:
            raise ValueError(f"an active token is already named {name!r}; revoke it first "
                             "or choose another name") from None
        return token

    def revoke_token(self, name: str, *, at: datetime | None = None) -> bool:
        """Revoke the active token of that name; False when there is none."""
        with self._write() as con:
            cursor = con.execute("UPDATE tokens SET revoked_at = ? "
                                 "WHERE name = ? AND revoked_at IS NULL",
                                 (_iso(at or datetime.now(UTC)), name))
            return cursor.rowcount > 0

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, active or revoked, oldest first: names, scopes and hints only."""
        with self._read() as con:
            rows = con.execute("SELECT name, scopes, hint, created_at, revoked_at "
                               "FROM tokens ORDER BY id").fetchall()
        return [TokenInfo(name, tuple(json.loads(scopes)), hint, datetime.fromisoformat(created),
                          _instant(revoked)) for name, scopes, hint, created, revoked in rows]

    def authenticate(self, token: str) -> TokenInfo | None:
        """The active token matching this secret, or None (unknown or revoked)."""
        with self._read() as con:
            row = con.execute("SELECT name, scopes, hint, created_at, revoked_at FROM tokens "
                              "WHERE token_hash = ? AND revoked_at IS NULL",
                              (hash_token(token),)).fetchone()
        if row is None:
            return None
        name, scopes, hint, created, revoked = row
        return TokenInfo(name, tuple(json.loads(scopes)), hint, datetime.fromisoformat(created),
                         _instant(revoked))

    # ------------------------------------------------------------------ published invoices
    def publish_invoices(self, invoices: Sequence[PublishedInvoice], *,
                         at: datetime | None = None) -> None:
        """Upsert the invoices integrations may act on, with their warehouse status. The new
        status replaces whatever the API projected from calls the pipeline has decided since."""
        stamp = _iso(at or settings.now())
        rows = [(inv.invoice_id, inv.customer_id, inv.app, inv.status, inv.currency,
                 str(Decimal(inv.total)),
                 json.dumps([{"line_id": line.line_id, "line_type": line.line_type}
                             for line in inv.lines]), stamp, inv.invoice_id)
                for inv in invoices]
        with self._write() as con:
            con.executemany("""
                INSERT INTO published_invoices (invoice_id, customer_id, app, status, currency,
                                                total, lines, published_at, settled_through)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?,
                        (SELECT coalesce(max(item_id), 0) FROM inbox
                         WHERE invoice_id = ? AND status <> 'pending'))
                ON CONFLICT (invoice_id) DO UPDATE SET
                    customer_id = excluded.customer_id, app = excluded.app,
                    status = excluded.status, currency = excluded.currency,
                    total = excluded.total, lines = excluded.lines,
                    published_at = excluded.published_at,
                    settled_through = excluded.settled_through""", rows)

    def unpublish_invoices(self, invoice_ids: Sequence[str]) -> int:
        """Withdraw invoices integrations may no longer act on (e.g. a discarded draft): calls
        for them get 404 from now on. Returns how many were published."""
        with self._write() as con:
            return sum(con.execute("DELETE FROM published_invoices WHERE invoice_id = ?",
                                   (invoice_id,)).rowcount for invoice_id in invoice_ids)

    def published_ids(self) -> set[str]:
        """The ids of every invoice now published."""
        with self._read() as con:
            return {row[0] for row in con.execute("SELECT invoice_id FROM published_invoices")}

    def published_invoice(self, invoice_id: str) -> PublishedInvoice | None:
        """The invoice as last published, or None."""
        with self._read() as con:
            row = _published_row(con, invoice_id)
        return _published(row) if row else None

    def projected_state(self, invoice_id: str) -> str | None:
        """The published status moved on by the calls accepted and not yet reflected in it."""
        with self._read() as con:
            row = _published_row(con, invoice_id)
            return _projected(con, row) if row else None

    def invoice_view(self, invoice_id: str) -> dict[str, Any] | None:
        """The published invoice as the API shows it to integrations: its published status,
        the state projected by accepted calls, its lines and how many calls still wait."""
        with self._read() as con:
            row = _published_row(con, invoice_id)
            if row is None:
                return None
            projected = _projected(con, row)
            pending = con.execute("SELECT count(*) FROM inbox WHERE invoice_id = ? "
                                  "AND status = 'pending'", (invoice_id,)).fetchone()[0]
        invoice = _published(row)
        return {"invoice_id": invoice.invoice_id, "customer_id": invoice.customer_id,
                "app": invoice.app, "status": invoice.status, "projected_state": projected,
                "currency": invoice.currency, "total": str(invoice.total),
                "lines": [{"line_id": line.line_id, "line_type": line.line_type}
                          for line in invoice.lines],
                "published_at": row[7], "pending_calls": int(pending)}

    # ------------------------------------------------------------------ inbox
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
                                 (status, reason, _iso(at), item_id))
            if cursor.rowcount == 0 and con.execute(
                    "SELECT 1 FROM inbox WHERE item_id = ?", (item_id,)).fetchone() is None:
                raise KeyError(f"no inbox item {item_id}")

    def pending_count(self) -> int:
        """How many items wait to be applied (one indexed count)."""
        with self._read() as con:
            return int(con.execute("SELECT count(*) FROM inbox "
                                   "WHERE status = 'pending'").fetchone()[0])

    # ------------------------------------------------------------------ accepting calls
    def accept(self, call: Call) -> Answer:
        """Decide a call in one transaction: the stored answer for a replay; 404, 422 or 409
        (nothing stored); or insert the inbox item and store its 202 answer, both committed
        before this returns."""
        with self._write() as con:
            replay = _replay(con, call)
            if replay is not None:
                return replay
            if call.kind == rules.STRIPE_EVENT:
                state = None
            elif call.kind == rules.STATEMENT:
                # about every invoice at once: no invoice to find (404) nor state (409)
                problems = rules.validate_statement(call.body)
                if problems:
                    return _invalid(problems)
                state = None
            else:
                row = _published_row(con, call.invoice_id or "")
                if row is None or row[2] != rules.CUSTOM_INVOICING_APP:
                    return Answer(404, error_body(
                        "invoice_not_found", f"no custom invoicing invoice {call.invoice_id} "
                        "is published for the API (yet)"))
                invoice = _published(row)
                problems = _validate(call.kind, call.body, invoice)
                if problems:
                    return _invalid(problems)
                current = _projected(con, row)
                conflict = rules.state_conflict(current, call.kind, call.body)
                if conflict is not None:
                    return Answer(409, error_body(conflict.code, conflict.message,
                                                  current_state=current))
                state = rules.callback_target(call.kind, call.body)
            item_id = con.execute("""
                INSERT INTO inbox (kind, invoice_id, event_id, body, token_name, request_key,
                                   received_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                                  (call.kind, call.invoice_id, call.event_id,
                                   json.dumps(call.body, sort_keys=True), call.token_name,
                                   call.request_key, _iso(call.received_at))).lastrowid
            body: dict[str, Any] = {"status": "accepted", "inbox_item_id": item_id,
                                    "kind": call.kind, "received_at": _iso(call.received_at)}
            if call.kind == rules.STRIPE_EVENT:
                body["event_id"] = call.event_id
            elif call.kind == rules.STATEMENT:
                body["as_of"] = call.body["as_of"]
                body["invoice_count"] = len(call.body["invoices"])
            else:
                body["invoice_id"] = call.invoice_id
                body["projected_state"] = state
            con.execute("""
                INSERT INTO responses (request_key, fingerprint, status_code, body,
                                       inbox_item_id, created_at)
                VALUES (?, ?, 202, ?, ?, ?)""",
                        (call.request_key, call.fingerprint, json.dumps(body), item_id,
                         _iso(call.received_at)))
            return Answer(202, body)


_ITEM_COLUMNS = ("item_id, kind, invoice_id, body, token_name, received_at, status, reason, "
                 "applied_at")

MAX_MESSAGE_PROBLEMS = 10    # a 422 message names the first problems...
MAX_DETAILS = 100            # ...and `details` lists at most this many (a statement is long)


def _invalid(problems: Sequence[rules.FieldError]) -> Answer:
    """The 422 answer naming the first problem's field, every problem (up to a limit) in
    `details`."""
    message = "; ".join(str(p) for p in problems[:MAX_MESSAGE_PROBLEMS])
    if len(problems) > MAX_MESSAGE_PROBLEMS:
        message += f" (and {len(problems) - MAX_MESSAGE_PROBLEMS} more problems)"
    return Answer(422, error_body("validation_error", message, field=problems[0].field,
                                  details=problems[:MAX_DETAILS]))


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a store of an older schema version up to SCHEMA_VERSION, once, whoever opens it
    first (the version is read again inside the write transaction)."""
    con.execute("PRAGMA foreign_keys=OFF")   # the inbox is rebuilt; responses refer to it
    con.execute("BEGIN IMMEDIATE")
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version < 2:
            # version 1 -> 2: the inbox's CHECK on kind gains the statement kind
            [sequence] = con.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence "
                                     "WHERE name = 'inbox'").fetchone()
            con.execute(_inbox_table("inbox_migrating"))
            con.execute(f"INSERT INTO inbox_migrating ({INBOX_COLUMNS}) "
                        f"SELECT {INBOX_COLUMNS} FROM inbox")
            con.execute("DROP TABLE inbox")
            con.execute("ALTER TABLE inbox_migrating RENAME TO inbox")
            for statement in INBOX_INDEXES.split(";"):
                if statement.strip():
                    con.execute(statement)
            # item ids keep growing from where they were (AUTOINCREMENT never reuses one)
            con.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'inbox'",
                        (sequence,))
            if con.execute("PRAGMA foreign_key_check").fetchall():
                raise sqlite3.IntegrityError("API store migration: responses lost their "
                                             "inbox items")
        if version < SCHEMA_VERSION:
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("PRAGMA foreign_keys=ON")


def _item(row: tuple[Any, ...]) -> InboxItem:
    item_id, kind, invoice_id, body, token_name, received, status, reason, applied = row
    return InboxItem(item_id=item_id, kind=kind, invoice_id=invoice_id, body=json.loads(body),
                     token_name=token_name, received_at=datetime.fromisoformat(received),
                     status=status, reason=reason, applied_at=_instant(applied))


def _published_row(con: sqlite3.Connection, invoice_id: str) -> tuple[Any, ...] | None:
    return con.execute("""
        SELECT invoice_id, customer_id, app, status, currency, total, lines, published_at,
               settled_through
        FROM published_invoices WHERE invoice_id = ?""", (invoice_id,)).fetchone()


def _published(row: tuple[Any, ...]) -> PublishedInvoice:
    invoice_id, customer_id, app, status, currency, total, lines, published_at, _ = row
    return PublishedInvoice(
        invoice_id=invoice_id, customer_id=customer_id, app=app, status=status,
        currency=currency, total=Decimal(total),
        lines=tuple(PublishedLine(line["line_id"], line["line_type"])
                    for line in json.loads(lines)),
        published_at=datetime.fromisoformat(published_at))


def _projected(con: sqlite3.Connection, row: tuple[Any, ...]) -> str:
    """The published status moved on by the calls still pending, and by those applied after the
    invoice was last published (the pipeline applied them but has not published since)."""
    invoice_id, status, settled = row[0], row[3], row[8]
    kinds = ", ".join(f"'{k}'" for k in rules.CALLBACK_KINDS)
    calls = con.execute(f"""
        SELECT kind, body FROM inbox
        WHERE invoice_id = ? AND kind IN ({kinds})
          AND (status = 'pending' OR (status = 'applied' AND item_id > ?))
        ORDER BY item_id""", (invoice_id, settled)).fetchall()
    return rules.project(status, ((kind, json.loads(body)) for kind, body in calls))


def _validate(kind: str, body: Any, invoice: PublishedInvoice) -> list[rules.FieldError]:
    if kind == rules.DRAFT_SYNCHRONIZED:
        return rules.validate_draft_synchronized(
            body, {line.line_id: line.line_type for line in invoice.lines})
    if kind == rules.ISSUING_SYNCHRONIZED:
        return rules.validate_issuing_synchronized(body)
    return rules.validate_payment_status(body)


def _replay(con: sqlite3.Connection, call: Call) -> Answer | None:
    row = con.execute("SELECT fingerprint, status_code, body FROM responses "
                      "WHERE request_key = ?", (call.request_key,)).fetchone()
    if row is None:
        return None
    fingerprint, status_code, body = row
    if fingerprint != call.fingerprint:
        return Answer(409, error_body(
            "idempotency_key_reused", "this Idempotency-Key was used for a different call "
            "(method, path or body); use a new key for a new call"))
    return Answer(status_code, json.loads(body), replayed=True)


def canonical_json(value: Any) -> str:
    """A JSON text that is the same for equal documents (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(*parts: str) -> str:
    """A digest of the parts, length-prefixed so that no two part lists collide."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part.encode()).to_bytes(8, "big"))
        digest.update(part.encode())
    return digest.hexdigest()
