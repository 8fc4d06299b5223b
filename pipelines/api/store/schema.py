"""The API store's tables, and the migration that brings a store file of an older version up to
date. The version is SQLite's `user_version`; opening a store that is already current writes
nothing.
"""

from __future__ import annotations

import sqlite3

from pipelines.api import rules

SCHEMA_VERSION = 9      # 2: inbox kinds include custom_invoicing.statement
#                         3: credit note callbacks; published documents carry their type
#                         4: inbox kinds include custom_invoicing.update_invoice
#                         5: inbox items name their token's id (a name can be reused)
#                         6: published documents carry their tax (docs/tax.md)
#                         7: customers and subscriptions put by a CRM, every version kept
#                         8: erased customers (their pseudonym and salt), so later puts stay
#                            erased
#                         9: each customer shard's share of an item about several shards'
#                            documents (statements, Stripe webhook events)

INBOX_COLUMNS = ("item_id", "kind", "invoice_id", "event_id", "body", "token_name", "token_id",
                 "request_key", "received_at", "status", "reason", "applied_at")


def _inbox_table(name: str) -> str:
    """The inbox table's DDL (under another name while a migration rebuilds it: SQLite cannot
    change a CHECK constraint in place)."""
    return f"""CREATE TABLE IF NOT EXISTS {name} (
    item_id     INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order
    kind        TEXT NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in rules.KINDS)})),
    invoice_id  TEXT,                                -- ours; NULL for Stripe events, statements
    event_id    TEXT,                                -- the Stripe event id
    body        TEXT NOT NULL,                       -- the JSON body as accepted
    token_name  TEXT NOT NULL,                       -- shown; reused once revoked
    token_id    INTEGER,                             -- tokens.id: who called (NULL before v5)
    request_key TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'applied', 'rejected')),
    reason      TEXT,
    applied_at  TEXT
)"""


# published_invoices holds credit notes too (schema version 3): which document a row is
# (invoice | credit_note), and the invoice it corrects (a supplementary invoice's corrected
# invoice, a credit note's credited one)
PUBLISHED_DOCUMENT_COLUMNS = ("document_type TEXT NOT NULL DEFAULT 'invoice'",
                              "corrects_invoice_id TEXT")
# and their tax (schema version 6): exact decimals as text; NULL in a row published before
# (read as no tax: tax_total 0, total_including_tax = total)
PUBLISHED_TAX_COLUMNS = ("tax_total TEXT", "total_including_tax TEXT", "tax_note TEXT")

INBOX_INDEXES = """CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, item_id);
CREATE INDEX IF NOT EXISTS inbox_invoice ON inbox (invoice_id, item_id);"""

# Customers and subscriptions a CRM puts (contract section 11), every version kept: the current
# one is the highest `version` of an entry. `catalog_revision` changes with every write to
# these rows (a new version, or a rewrite such as an erasure): the catalog loader keys its
# memo by it.
CATALOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog_versions (
    version_id  INTEGER PRIMARY KEY AUTOINCREMENT,   -- store-wide order of changes
    section     TEXT NOT NULL CHECK (section IN ('customers', 'subscriptions')),
    entry_id    TEXT NOT NULL,
    version     INTEGER NOT NULL,                    -- 1, 2, ... per entry
    fields      TEXT NOT NULL,                       -- canonical JSON of the catalog fields
    changed_at  TEXT NOT NULL,
    token_id    INTEGER NOT NULL,                    -- tokens.id: who changed it
    token_name  TEXT NOT NULL,
    UNIQUE (section, entry_id, version)
);
CREATE TABLE IF NOT EXISTS catalog_revision (
    only_row    INTEGER PRIMARY KEY CHECK (only_row = 1),
    revision    INTEGER NOT NULL
);
INSERT OR IGNORE INTO catalog_revision (only_row, revision) VALUES (1, 0);
"""

# Customers erased on request (contract section 11): a CRM's later puts of one are kept with
# its personal fields pseudonymised (pipelines/erasure/pseudonyms.py), with the same salt the
# warehouse's billing.erasures record holds.
ERASURE_SCHEMA = """
CREATE TABLE IF NOT EXISTS erased_customers (
    customer_id TEXT PRIMARY KEY,
    pseudonym   TEXT NOT NULL,
    salt        TEXT NOT NULL,
    erased_at   TEXT NOT NULL
);
"""

# With customer shards (BILLING_SHARDS = N > 1), an item about documents of several shards (a
# statement) or about a document no one can name before looking (a Stripe webhook event: ours
# only through a shard's own Stripe mapping) is offered to every shard; each records here what
# it did with its part, once, and the item is decided when all `shards` shards have recorded.
SHARE_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox_item_shares (
    item_id     INTEGER NOT NULL,                    -- inbox.item_id
    shard       INTEGER NOT NULL,                    -- 0 .. shards - 1
    shards      INTEGER NOT NULL,                    -- BILLING_SHARDS when it was recorded
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'not_ours', 'rejected')),
    detail      TEXT,                                -- why not applied
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (item_id, shard, shards)
);
"""

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
    lines           TEXT NOT NULL,      -- JSON [{{"line_id", "line_type", "corrects_line_id",
    --                                     "tax_rate_key", "tax_rate_percent", "tax_inclusive",
    --                                     "tax_amount"}}]
    published_at    TEXT NOT NULL,
    settled_through INTEGER NOT NULL DEFAULT 0,  -- last inbox item already decided at publish
    {", ".join((*PUBLISHED_DOCUMENT_COLUMNS, *PUBLISHED_TAX_COLUMNS))}
);
{CATALOG_SCHEMA}
{ERASURE_SCHEMA}
{SHARE_SCHEMA}"""


def set_up(con: sqlite3.Connection) -> None:
    """Bring the store file behind `con` to SCHEMA_VERSION: create it (in WAL mode) when new,
    migrate it when older, and write nothing when it is current (the sensor polls it)."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    if version > 0:
        _migrate(con)
        return
    if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        con.execute("PRAGMA journal_mode=WAL").fetchone()
    con.executescript(f"BEGIN IMMEDIATE; {SCHEMA}; "
                      f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a store of an older schema version up to SCHEMA_VERSION, once, whoever opens it
    first (the version is read again inside the write transaction)."""
    con.execute("PRAGMA foreign_keys=OFF")   # the inbox is rebuilt; responses refer to it
    con.execute("BEGIN IMMEDIATE")
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            # 1 -> 2 -> 3 -> 4 -> 5: the inbox's CHECK on kind gains the statement kind, the
            # credit note callbacks, then the Update Invoice call; items gain their token's id
            # (rebuilt once with today's kinds and columns)
            [sequence] = con.execute("SELECT coalesce(max(seq), 0) FROM sqlite_sequence "
                                     "WHERE name = 'inbox'").fetchone()
            present = {row[1] for row in con.execute("PRAGMA table_info(inbox)")}
            kept = ", ".join(c for c in INBOX_COLUMNS if c in present)
            con.execute(_inbox_table("inbox_migrating"))
            con.execute(f"INSERT INTO inbox_migrating ({kept}) SELECT {kept} FROM inbox")
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
        if version < 6:
            # 2 -> 3: credit notes are published beside invoices; 5 -> 6: with their tax
            present = {row[1] for row in con.execute("PRAGMA table_info(published_invoices)")}
            for column in (*PUBLISHED_DOCUMENT_COLUMNS, *PUBLISHED_TAX_COLUMNS):
                if column.split()[0] not in present:
                    con.execute(f"ALTER TABLE published_invoices ADD COLUMN {column}")
        if version < 7:
            # 6 -> 7: customers and subscriptions from a CRM
            for statement in CATALOG_SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
        if version < 8:
            # 7 -> 8: erased customers
            for statement in ERASURE_SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
        if version < 9:
            # 8 -> 9: shards' shares of items about several shards' documents
            for statement in SHARE_SCHEMA.split(";"):
                if statement.strip():
                    con.execute(statement)
        if version < SCHEMA_VERSION:
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("PRAGMA foreign_keys=ON")
