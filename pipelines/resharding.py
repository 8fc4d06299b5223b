"""Moving a warehouse from N customer shards to M (`billing reshard --to M`, contract section 12).

Every row goes where a warehouse of M shards would have put it:

- **A customer's rows** (any table with a customer, directly or through the document, line,
  correction, message, journal entry or provider id it names) go to the shard its customer
  hashes to (`sharding.shard_of_sql`); a row whose customer cannot be told (a line without a
  customer id) goes to shard 0, as ingestion routes it.
- **Catalog copies** (meters, plans, prices, profiles, accounts, ...) are whole in every shard,
  as each shard's run writes them.
- **Each landed file's ingestion log** is in every shard, with that shard's counts: accepted and
  rejected counted from the rows the shard now holds; the file's duplicates (not stored row by
  row) stay counted on shard 0. Summed over the shards, received = accepted + duplicates +
  rejected = the file's lines, as before; and no shard ingests the file again.
- **Derived summaries and logs of no customer** (health tables, the tax report's totals, the
  deferred revenue balance, re-processing and snapshot logs) go to shard 0 only, so the finance
  view over the shards reads what it read before; the next run of each shard rebuilds its own.
- **Numbers**: every numbered invoice and credit note is recorded in the numbering ledger, so the
  numbering step after the move continues each month's sequence without a gap or a repeat (to
  one warehouse: its number sequences continue from the highest number given).

Safe to interrupt: the new files are written beside the source under temporary names, each
table's row count and money totals are checked against the source, and only then are the new
files renamed into place (a marker file lets an interrupted rename be finished by running the
command again). The source files are never changed or removed: remove them once satisfied.
The source's writer locks are held from start to end, so a run that holds a writer makes the
command refuse, and no run can write a source while it is copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import duckdb

from pipelines.invoicing.shard_numbering import LEDGER_SCHEMA, ledger_path
from pipelines.sharding import shard_of_sql, warehouse_paths
from pipelines.warehouse import connect_writer, warehouse_lock

CATALOG_COPIES = frozenset({
    "billing.accounts", "billing.billing_profiles", "billing.meters", "billing.plans",
    "billing.prices", "billing.personal_properties", "notify.channels", "notify.channel_state",
    "raw.payload_digest_scheme", "sync.cursors",
})
"""Tables every shard holds whole: the catalog's copies and per-warehouse settings."""

OWNER_COLUMNS = ("customer_id", "invoice_id", "credit_note_id", "correction_id", "line_id",
                 "credit_note_line_id", "corrects_invoice_id", "document_id", "message_id",
                 "entry_id", "internal_id", "external_invoice_id", "external_id",
                 "external_customer_id", "subscription_id", "object_id", "source_id")
"""The columns that tell a row's customer, most direct first."""

OWNERS_SQL = """
CREATE OR REPLACE TEMP TABLE owners AS
WITH direct AS (
    SELECT customer_id AS key, customer_id FROM {invoices}
    UNION ALL SELECT invoice_id, customer_id FROM {invoices}
    UNION ALL SELECT credit_note_id, customer_id FROM {credit_notes}
    UNION ALL SELECT correction_id, customer_id FROM {corrections}
    UNION ALL SELECT subscription_id, customer_id FROM {subscriptions}
    UNION ALL SELECT customer_id, customer_id FROM {customers}
    UNION ALL SELECT message_id, customer_id FROM {messages}
    UNION ALL SELECT entry_id, customer_id FROM {journal_lines} WHERE customer_id IS NOT NULL
    UNION ALL SELECT l.line_id, i.customer_id FROM {invoice_lines} l
              JOIN {invoices} i USING (invoice_id)
    UNION ALL SELECT l.credit_note_line_id, c.customer_id FROM {credit_note_lines} l
              JOIN {credit_notes} c USING (credit_note_id)
), known AS (
    SELECT key, any_value(customer_id) AS customer_id FROM direct
    WHERE key IS NOT NULL AND customer_id IS NOT NULL GROUP BY key
)
SELECT * FROM known
UNION ALL
SELECT x.external_id, any_value(k.customer_id) FROM {external_ids} x
JOIN known k ON k.key = x.internal_id
WHERE x.external_id NOT IN (SELECT key FROM known) GROUP BY x.external_id
"""


@dataclass(frozen=True)
class ReshardResult:
    """What a move did: the files written and the rows per target shard."""

    targets: list[str]
    rows_per_shard: list[int]
    tables: int


def _temporary(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}.resharding{p.suffix}"))


def _marker(base: str, shards: int) -> Path:
    p = Path(base)
    return p.with_name(f"{p.stem}.reshard-to-{shards}.verified")


@contextmanager
def _source_writers(paths: list[str]) -> Iterator[None]:
    """Hold every source shard's writer lock, or refuse at once if a run holds one."""
    with ExitStack() as stack:
        for path in paths:
            try:
                stack.enter_context(warehouse_lock(path, exclusive=True, timeout_s=0))
            except TimeoutError:
                raise SystemExit(f"billing reshard: a run holds the writer of {path}; "
                                 "wait for it to end and try again") from None
        yield


def _tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Every base table of the attached database `src_0` and its columns."""
    rows = con.execute("""
        SELECT c.table_schema || '.' || c.table_name,
               list(c.column_name ORDER BY c.ordinal_position)
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE c.table_catalog = 'src_0' AND t.table_type = 'BASE TABLE'
        GROUP BY ALL ORDER BY ALL""").fetchall()
    return dict(rows)


def _union(table: str, sources: int) -> str:
    schema, name = table.split(".")
    return "(" + " UNION ALL BY NAME ".join(
        f'SELECT * FROM src_{k}."{schema}"."{name}"' for k in range(sources)) + ")"


def _money_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    schema, name = table.split(".")
    return [row[0] for row in con.execute("""
        SELECT column_name FROM information_schema.columns
        WHERE table_catalog = 'src_0' AND table_schema = $s AND table_name = $t
          AND (data_type LIKE 'DECIMAL%' OR data_type IN ('BIGINT', 'INTEGER', 'HUGEINT'))
        ORDER BY ordinal_position""", {"s": schema, "t": name}).fetchall()]


def _totals(con: duckdb.DuckDBPyConnection, relation: str,
            columns: list[str]) -> tuple[int, list[Decimal | int | None]]:
    sums = "".join(f', sum("{c}")' for c in columns)
    row = con.execute(f"SELECT count(*){sums} FROM {relation}").fetchall()[0]
    return int(row[0]), list(row[1:])


def _owner_expression(columns: list[str]) -> tuple[str, str] | None:
    """The joins and the expression that give a row's customer; None for a table of no
    customer."""
    keys = [c for c in OWNER_COLUMNS if c in columns]
    if not keys:
        return None
    joins = " ".join(f'LEFT JOIN owners o_{c} ON o_{c}.key = CAST(r."{c}" AS VARCHAR)'
                     for c in keys if c != "customer_id")
    parts = [('r."customer_id"' if c == "customer_id" else f"o_{c}.customer_id") for c in keys]
    return joins, f"coalesce({', '.join(parts)})"


def _write_target(target: str, sources: list[str], shard: int, shards: int) -> int:
    """Write shard `shard` of `shards` into the (temporary) file `target`; returns its rows."""
    written = 0
    with connect_writer(target) as con:
        for k, source in enumerate(sources):
            con.execute(f"ATTACH '{source.replace(chr(39), chr(39) * 2)}' AS src_{k} "
                        "(READ_ONLY)")
        tables = _tables(con)
        present = set(tables)
        con.execute(OWNERS_SQL.format(**{
            alias: _union(table, len(sources)) if table in present else
            "(SELECT NULL::VARCHAR AS customer_id WHERE false)"
            for alias, table in (
                ("invoices", "billing.invoices"), ("credit_notes", "billing.credit_notes"),
                ("corrections", "billing.corrections"),
                ("subscriptions", "billing.subscriptions"), ("customers", "billing.customers"),
                ("messages", "notify.events"), ("journal_lines", "finance.journal_lines"),
                ("invoice_lines", "billing.invoice_lines"),
                ("credit_note_lines", "billing.credit_note_lines"),
                ("external_ids", "sync.external_ids"))}))
        con.execute("BEGIN TRANSACTION")
        for table, columns in tables.items():
            con.execute(f"DELETE FROM {table}")
            if table == "raw.ingestion_log":
                continue
            if table in CATALOG_COPIES:
                relation = f"(SELECT * FROM src_0.{table})"
            else:
                owner = _owner_expression(columns)
                if owner is None:
                    if shard != 0:
                        continue
                    relation = _union(table, len(sources))
                else:
                    joins, expression = owner
                    target_shard = shard_of_sql(expression, shards)
                    relation = (f"(SELECT r.* FROM {_union(table, len(sources))} r {joins} "
                                f"WHERE {target_shard} = {shard})")
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {relation}")
        _write_ingestion_log(con, len(sources), shard)
        if shards == 1:
            _continue_sequences(con)
        con.execute("COMMIT")
        for table in tables:
            written += con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return written


def _write_ingestion_log(con: duckdb.DuckDBPyConnection, sources: int, shard: int) -> None:
    """Every landed file logged in this shard with the counts of the rows it now holds."""
    con.execute(f"""
        INSERT INTO raw.ingestion_log BY NAME
        WITH files AS (
            SELECT file_id, any_value(path) AS path, any_value(format) AS format,
                   any_value(bytes) AS bytes, min(ingested_at) AS ingested_at,
                   any_value(run_id) AS run_id, any_value(mtime_ns) AS mtime_ns,
                   sum(duplicates) AS duplicates
            FROM {_union('raw.ingestion_log', sources)} GROUP BY file_id
        ), accepted AS (
            SELECT file_id, count(*) AS n FROM raw.events WHERE origin = 'file' GROUP BY ALL
        ), rejected AS (
            SELECT file_id, count(*) AS n, count(*) FILTER (reason = 'conflict') AS conflicts
            FROM raw.rejected_events WHERE origin = 'file' GROUP BY ALL
        )
        SELECT f.file_id, f.path, f.format, f.bytes,
               coalesce(a.n, 0) + coalesce(r.n, 0)
                 + CASE WHEN {shard} = 0 THEN f.duplicates ELSE 0 END AS received,
               coalesce(a.n, 0) AS accepted,
               CASE WHEN {shard} = 0 THEN f.duplicates ELSE 0 END AS duplicates,
               coalesce(r.n, 0) AS rejected, coalesce(r.conflicts, 0) AS conflicts,
               f.ingested_at, f.run_id, f.mtime_ns
        FROM files f LEFT JOIN accepted a USING (file_id) LEFT JOIN rejected r USING (file_id)
    """)


def _continue_sequences(con: duckdb.DuckDBPyConnection) -> None:
    """To one warehouse: each month's number sequences continue from the highest number
    given (by the source's sequences or the numbering ledger's documents)."""
    for table, documents, column in (
            ("billing.invoice_number_sequences", "billing.invoices", "invoice_number"),
            ("billing.credit_note_number_sequences", "billing.credit_notes",
             "credit_note_number")):
        con.execute(f"""
            INSERT OR REPLACE INTO {table} (billing_month, last_number)
            SELECT billing_month, max(n) FROM (
                SELECT billing_month, last_number AS n FROM {table}
                UNION ALL
                SELECT billing_month, CAST(split_part({column}, '-', 3) AS BIGINT)
                FROM {documents} WHERE {column} IS NOT NULL)
            GROUP BY billing_month""")


def _verify(sources: list[str], targets: list[str]) -> int:
    """Each table's rows and money totals in the new files against the source; returns how many
    tables were checked. A difference stops the move before anything is switched."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for k, path in enumerate(sources):
            con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS src_{k} (READ_ONLY)")
        for k, path in enumerate(targets):
            con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS dst_{k} (READ_ONLY)")
        tables = _tables(con)
        for table in tables:
            schema, name = table.split(".")
            columns = _money_columns(con, table)
            if table == "raw.ingestion_log":
                columns = ["received", "accepted", "duplicates", "rejected", "conflicts"]
                want = _totals(con, f"(SELECT * FROM {_union(table, len(sources))})", columns)
                got = _totals(con, "(" + " UNION ALL BY NAME ".join(
                    f'SELECT * FROM dst_{k}."{schema}"."{name}"' for k in range(len(targets)))
                    + ")", columns)
                want = (0, want[1])    # one row per file in every shard: compare the counts
                got = (0, got[1])
            elif table in CATALOG_COPIES:
                want = _totals(con, f"src_0.{table}", columns)
                for k in range(len(targets)):
                    got = _totals(con, f"dst_{k}.{table}", columns)
                    if got != want:
                        raise SystemExit(f"billing reshard: {table} in {targets[k]} is "
                                         f"{got}, the source {want}; nothing switched")
                continue
            else:
                want = _totals(con, _union(table, len(sources)), columns)
                got = _totals(con, "(" + " UNION ALL BY NAME ".join(
                    f'SELECT * FROM dst_{k}."{schema}"."{name}"' for k in range(len(targets)))
                    + ")", columns)
            if table in ("billing.invoice_number_sequences",
                         "billing.credit_note_number_sequences") and len(targets) == 1:
                continue    # continued from the documents' numbers on the way to one warehouse
            if got != want:
                raise SystemExit(f"billing reshard: {table} has (rows, totals) {got} in the new "
                                 f"shards, {want} in the source; nothing switched")
        return len(tables)
    finally:
        con.close()


def _record_numbers(targets: list[str], base: str) -> None:
    """Every numbered document in the numbering ledger, so the numbering step continues each
    month's sequence after them."""
    ledger = ledger_path(base)
    with warehouse_lock(ledger, exclusive=True):
        con = duckdb.connect(ledger)
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute(LEDGER_SCHEMA)
            for path in targets:
                con.execute(f"ATTACH '{path.replace(chr(39), chr(39) * 2)}' AS t (READ_ONLY)")
                for kind, table, id_column, number_column in (
                        ("invoice", "billing.invoices", "invoice_id", "invoice_number"),
                        ("credit_note", "billing.credit_notes", "credit_note_id",
                         "credit_note_number")):
                    con.execute(f"""
                        INSERT OR IGNORE INTO document_numbers
                        SELECT '{kind}', {id_column}, billing_month,
                               CAST(split_part({number_column}, '-', 3) AS INTEGER),
                               {number_column}
                        FROM t.{table} WHERE {number_column} IS NOT NULL""")
                con.execute("DETACH t")
        finally:
            con.close()


def reshard(base: str, from_shards: int, to_shards: int) -> ReshardResult:
    """Move the warehouse configured at `base` from `from_shards` shards to `to_shards`: write,
    verify, then switch; the source files are kept."""
    if to_shards < 1 or to_shards == from_shards:
        raise SystemExit(f"billing reshard: already {from_shards} shard(s); --to must differ")
    sources = warehouse_paths(base, from_shards)
    targets = warehouse_paths(base, to_shards)
    temporaries = [_temporary(path) for path in targets]
    marker = _marker(base, to_shards)
    missing = [path for path in sources if not Path(path).exists()]
    if missing and not marker.exists():
        raise SystemExit(f"billing reshard: no warehouse at {', '.join(missing)} "
                         f"(is BILLING_SHARDS={from_shards} right?)")
    with _source_writers(sources):
        if not marker.exists():
            existing = [path for path in targets if Path(path).exists()]
            if existing:
                raise SystemExit("billing reshard: the target files exist already: "
                                 f"{', '.join(existing)}; remove them first")
            for path in temporaries:
                for leftover in (Path(path), Path(path + ".wal")):
                    leftover.unlink(missing_ok=True)
            rows = [_write_target(temporary, sources, k, to_shards)
                    for k, temporary in enumerate(temporaries)]
            tables = _verify(sources, temporaries)
            marker.write_text("\n".join(temporaries) + "\n")
        else:
            rows, tables = [], 0
        for temporary, target in zip(temporaries, targets, strict=True):
            if Path(temporary).exists():
                os.replace(temporary, target)
            Path(temporary).with_suffix(".writer.lock").unlink(missing_ok=True)
        _record_numbers(targets, base)
        marker.unlink()
    return ReshardResult(targets, rows, tables)
