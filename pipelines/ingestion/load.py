"""Set-based ingestion of one landed file into the warehouse (contract section 1).

DuckDB reads the file; validation, dedup against all history and the counts are SQL in `sql/`.
One file is one transaction: it is either fully ingested (events, rejects, log row) or not at all,
and the log row (keyed by the file's sha256) makes landing the same file again a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from pipelines.erasure.warehouse_erasure import pseudonymise_new_rows
from pipelines.ingestion.canonical_payloads import settle_candidate_conflicts
from pipelines.ingestion.landing import LandedFile, exact_path_pattern
from pipelines.warehouse import run_sql, sql, transaction

if TYPE_CHECKING:
    from pipelines.ingestion.routing import RoutedPart

# Columns understood in CSV and Parquet files: the native shape and CloudEvents.
RECORD_COLUMNS = (
    "event_id", "event_name", "customer_id", "timestamp", "properties", "source",
    "subscription_id", "specversion", "id", "type", "subject", "time", "data",
)
# read_csv buffers 16 lines of this size per thread, so it is kept small; a longer line makes
# the file fail to read, named in the error, and the file stays in the landing zone.
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileCounts:
    """What became of one file's lines; received = accepted + duplicates + rejected."""

    file_id: str
    path: str
    received: int
    accepted: int
    duplicates: int
    rejected: int
    conflicts: int


def _literal(path: str) -> str:
    """The file at `path`, exactly, as a SQL string literal for DuckDB's readers."""
    return "'" + exact_path_pattern(path).replace("'", "''") + "'"


def prepare_session(con: duckdb.DuckDBPyConnection, customers: Iterable[str],
                    now: datetime) -> None:
    """What staging and validation read: JSON macros, the catalog's customers, the clock."""
    run_sql(con, "staging/json_macros")
    run_sql(con, "raw/payload_digest")
    con.execute("CREATE OR REPLACE TEMP TABLE known_customers (customer_id VARCHAR PRIMARY KEY)")
    ids = sorted(set(customers))
    if ids:
        con.execute("INSERT INTO known_customers SELECT unnest($ids)", {"ids": ids})
    con.execute("CREATE OR REPLACE TEMP TABLE ingestion_clock AS SELECT $now::TIMESTAMPTZ AS now",
                {"now": now})


def _stage_json_lines(con: duckdb.DuckDBPyConnection, path: str) -> None:
    # Lines are materialized first (text only, not parsed): a table keeps file order (rowid + 1
    # is the line number), which later joins would not.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE incoming_rows AS
        SELECT raw FROM read_csv({_literal(path)}, columns = {{'raw': 'VARCHAR'}}, header = false,
            delim = '\\0', quote = '', escape = '', comment = '', auto_detect = false,
            strict_mode = false, max_line_size = {MAX_LINE_BYTES})
    """)
    con.execute("CREATE OR REPLACE TEMP VIEW file_lines AS "
                "SELECT rowid + 1 AS line_number, raw FROM incoming_rows")


def record_column_text(described: list[tuple[str, str]], column: str) -> str:
    """A known column of a CSV or Parquet file as VARCHAR (NULL when absent; nested → JSON
    text), from the file's described columns."""
    by_name = {name.lower(): (name, typ) for name, typ in described}
    if column not in by_name:
        return "CAST(NULL AS VARCHAR)"
    name, typ = by_name[column]
    quoted = '"' + name.replace('"', '""') + '"'
    if typ.startswith(("STRUCT", "MAP", "UNION")) or typ.endswith("]"):
        return f"CAST(to_json({quoted}) AS VARCHAR)"
    return f"CAST({quoted} AS VARCHAR)"


def _record_projection(described: list[tuple[str, str]]) -> str:
    """SELECT list giving every known column as VARCHAR (NULL when absent); nested → JSON text."""
    return ", ".join(f'{record_column_text(described, column)} AS "{column}"'
                     for column in RECORD_COLUMNS)


def describe_columns(con: duckdb.DuckDBPyConnection, reader: str) -> list[tuple[str, str]]:
    return [(row[0], row[1])
            for row in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]


def _stage_csv(con: duckdb.DuckDBPyConnection, path: str) -> None:
    con.execute("DROP TABLE IF EXISTS csv_rejects")
    con.execute("DROP TABLE IF EXISTS csv_reject_scans")
    reader = (f"read_csv({_literal(path)}, header = true, all_varchar = true, delim = ',', "
              f"quote = '\"', escape = '\"', store_rejects = true, rejects_table = 'csv_rejects', "
              f"rejects_scan = 'csv_reject_scans', max_line_size = {MAX_LINE_BYTES})")
    projection = _record_projection(describe_columns(con, reader))
    # materialized in file order: rowid + 1 is the record number (header excluded)
    con.execute(f"CREATE OR REPLACE TEMP TABLE incoming_rows AS SELECT {projection} FROM {reader}")
    con.execute("CREATE OR REPLACE TEMP VIEW file_records AS "
                "SELECT rowid + 1 AS line_number, * FROM incoming_rows")


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: str) -> None:
    # Parquet numbers its rows itself, so the file is read straight into validation
    stage_parquet_records(con, f"read_parquet({_literal(path)}, file_row_number = true)")


def stage_parquet_records(con: duckdb.DuckDBPyConnection, reader: str) -> None:
    """Stage Parquet rows as `file_records`: the known columns as text, numbered by their
    `file_row_number` column (the reader's own, or the one a routed part kept)."""
    described = [(n, t) for n, t in describe_columns(con, reader) if n != "file_row_number"]
    con.execute(f"CREATE OR REPLACE TEMP VIEW file_records AS SELECT "
                f"file_row_number + 1 AS line_number, {_record_projection(described)} "
                f"FROM {reader}")


# Per format: the staged relation of the file (numbered lines or records), the relation name its
# normalizing SQL reads, and that SQL.
NORMALIZERS = {
    "jsonl": ("file_lines", "incoming_lines", "staging/incoming_json_lines"),
    "csv": ("file_records", "incoming_records", "staging/incoming_records"),
    "parquet": ("file_records", "incoming_records", "staging/incoming_records"),
}


def validate_staged(con: duckdb.DuckDBPyConnection, file_format: str, *,
                    only_lines: str | None = None) -> None:
    """(Re)define the views `incoming` and `validated_events` over the staged file: all of it,
    or only the lines listed in the temp table `only_lines(line_number)`, which is filtered
    before any line is parsed or validated."""
    staged, relation, normalizer = NORMALIZERS[file_format]
    where = (f" WHERE line_number IN (SELECT line_number FROM {only_lines})"
             if only_lines else "")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM {staged}{where}")
    con.execute("CREATE OR REPLACE TEMP VIEW incoming AS " + sql(normalizer))
    run_sql(con, "staging/validated_events")


def _collect_parser_rejects(con: duckdb.DuckDBPyConnection, file_format: str) -> None:
    """Records the CSV parser refused (known once the file was read, or from shard 0's routed
    part: such a line has no customer): each is one received line, rejected as malformed."""
    if file_format != "csv":
        con.execute("CREATE OR REPLACE TEMP TABLE parser_rejects "
                    "(line_number BIGINT, raw VARCHAR, detail VARCHAR)")
        return
    con.execute("""
        CREATE OR REPLACE TEMP TABLE parser_rejects AS
        SELECT line AS line_number, any_value(csv_line) AS raw,
               'CSV line ' || line || ': ' || string_agg(DISTINCT error_message, '; ') AS detail
        FROM csv_rejects GROUP BY line
    """)


STAGERS = {"jsonl": _stage_json_lines, "csv": _stage_csv, "parquet": _stage_parquet}


def unchanged_stamps(con: duckdb.DuckDBPyConnection) -> set[tuple[str, int, int]]:
    """(path, bytes, mtime_ns) of the local files logged: such a file, unchanged, is skipped
    without being read."""
    return {(path, size, mtime) for path, size, mtime in con.execute(
        "SELECT path, bytes, mtime_ns FROM raw.ingestion_log WHERE mtime_ns IS NOT NULL"
    ).fetchall()}


def already_ingested(con: duckdb.DuckDBPyConnection, file_id: str) -> bool:
    return con.execute("SELECT count(*) FROM raw.ingestion_log WHERE file_id = $file_id",
                       {"file_id": file_id}).fetchall()[0][0] > 0


def ingest_file(con: duckdb.DuckDBPyConnection, *, path: str, file_format: str, file_id: str,
                size: int, now: datetime, run_id: str | None,
                mtime_ns: int | None = None, part: RoutedPart | None = None,
                source: str | None = None) -> FileCounts | None:
    """Ingest one file; None when this content was ingested before.

    The file's identities are read first, to set aside the lines that may be duplicates or
    conflicts (an identity seen twice in the file, or already stored); every other valid line
    goes into raw.events in one pass, never staged. The lines set aside, and those that did not
    go in, are then validated alone and deduplicated exactly. All writes (events, rejects, log
    row) commit together or not at all. The caller holds the warehouse's single writer, so
    history cannot change between dedup and commit. `prepare_session` must have run on the
    connection (customers and clock). With a routed `part` (BILLING_SHARDS > 1), only that
    customer shard's lines are read, from its part (`pipelines.ingestion.routing`), with the
    file's id and line numbers. `source` is the local file DuckDB reads when it is not `path`
    (an object's staged copy; `path` is logged).
    """
    if already_ingested(con, file_id):
        return None
    try:
        # Staging runs outside the transaction: DuckDB numbers a temp table's rows from 0 in file
        # order only once committed, and rowid + 1 is the line number every table keeps.
        if part is None:
            STAGERS[file_format](con, source or path)
        else:
            part.stage(con)
        validate_staged(con, file_format)
        _collect_parser_rejects(con, file_format)
        with transaction(con):
            run_sql(con, "staging/suspect_lines")
            con.execute(sql("raw/events"), {"file_id": file_id, "ingested_at": now})
            received = _examine_the_rest(con, file_format, file_id)
            con.execute(sql("staging/event_outcomes"))
            settle_candidate_conflicts(con)
            con.execute(sql("raw/events_examined"), {"file_id": file_id, "ingested_at": now})
            _keep_conflicting_lines(con, file_format)
            con.execute(sql("raw/rejected_events"), {"file_id": file_id, "rejected_at": now})
            # erased customers' personal properties never reach a table as sent (section 11)
            pseudonymise_new_rows(con, "file_id = $file_id", {"file_id": file_id})
            con.execute(sql("raw/ingestion_log"), {
                "file_id": file_id, "path": path, "format": file_format, "bytes": size,
                "mtime_ns": mtime_ns, "ingested_at": now, "run_id": run_id,
                "received": received,
            })
            counts = file_counts(con, file_id)
    finally:
        drop_staging(con)
    return counts


def _examine_the_rest(con: duckdb.DuckDBPyConnection, file_format: str, file_id: str) -> int:
    """Validate, alone, the file's lines that did not go into raw.events in the first pass (set
    aside for dedup, or invalid), into temp table `examined_rows`, and define the views dedup
    reads (sql/staging/event_outcomes.sql); returns how many lines the file has (blank lines
    aside). Only those lines are parsed again, found by their numbers before any parsing."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE examined_lines AS
        SELECT line_number FROM incoming
        WHERE NOT is_blank
          AND line_number NOT IN (SELECT line_number FROM raw.events
                                  WHERE file_id = $file_id AND origin = 'file')""",
                {"file_id": file_id})
    received = con.execute("SELECT count(*) FROM incoming WHERE NOT is_blank").fetchall()[0][0]
    validate_staged(con, file_format, only_lines="examined_lines")
    con.execute("CREATE OR REPLACE TEMP TABLE examined_rows AS SELECT * FROM validated_events")
    con.execute("CREATE OR REPLACE TEMP VIEW rejected_rows AS "
                "SELECT * FROM examined_rows WHERE reason IS NOT NULL")
    con.execute("CREATE OR REPLACE TEMP VIEW candidate_events AS "
                "SELECT * FROM examined_rows WHERE reason IS NULL")
    con.execute("CREATE OR REPLACE TEMP VIEW prior_events AS SELECT * FROM stored_matches")
    return int(received)


def drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp tables and views one file's staging made."""
    for view in ("validated_events", "validated_rows", "incoming", "incoming_lines",
                 "incoming_records", "file_lines", "file_records", "candidate_events",
                 "prior_events", "rejected_rows"):
        con.execute(f"DROP VIEW IF EXISTS {view}")
    for table in ("event_outcomes", "parser_rejects", "conflict_lines", "incoming_rows",
                  "file_keys", "stored_matches", "suspect_lines", "examined_lines",
                  "examined_rows"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _keep_conflicting_lines(con: duckdb.DuckDBPyConnection, file_format: str) -> None:
    """The received text of JSON lines that turned out to be conflicts (validation keeps the
    raw text of invalid lines only; conflicts are known after dedup)."""
    con.execute("CREATE OR REPLACE TEMP TABLE conflict_lines (line_number BIGINT, raw VARCHAR)")
    conflicts = con.execute(
        "SELECT count(*) FROM event_outcomes WHERE outcome = 'conflict'").fetchall()[0][0]
    if file_format != "jsonl" or not conflicts:
        return
    con.execute("""
        INSERT INTO conflict_lines
        SELECT line_number, raw FROM file_lines
        WHERE line_number IN (SELECT line_number FROM event_outcomes WHERE outcome = 'conflict')
    """)


def file_counts(con: duckdb.DuckDBPyConnection, file_id: str) -> FileCounts:
    row = con.execute("""
        SELECT file_id, path, received, accepted, duplicates, rejected, conflicts
        FROM raw.ingestion_log WHERE file_id = $file_id
    """, {"file_id": file_id}).fetchall()[0]
    return FileCounts(*row)


@dataclass(frozen=True)
class LandingIngestion:
    """What one pass over the landing zone did."""

    ingested: list[FileCounts]
    skipped: list[str]            # paths whose content was ingested before
    failed: dict[str, str]        # path -> error; the file stays in the landing zone

    @property
    def totals(self) -> dict[str, int]:
        keys = ("received", "accepted", "duplicates", "rejected", "conflicts")
        return {k: sum(getattr(c, k) for c in self.ingested) for k in keys}


def ingest_landed_files(con: duckdb.DuckDBPyConnection, files: Iterable[LandedFile], *,
                        now: datetime, run_id: str | None,
                        progress: Callable[[str], None] | None = None,
                        parts: Mapping[str, RoutedPart] | None = None) -> LandingIngestion:
    """Ingest each file once; a file that cannot be read is reported, not half-loaded.

    A local path logged with the same size and mtime is skipped without reading it; any other
    file (an object-store file always: its time is to the second) is identified by the sha256
    of its bytes, so a copy or a touched file is still skipped.
    `progress` gets a line per file: its counts, time and rate, and the files and rows so far.
    With `parts` (BILLING_SHARDS > 1: each file's routed part for this shard, by path), only
    that customer shard's lines of each file are read; a file without a part was not routed
    (this shard had logged it, or routing failed and reported it) and is not read.
    """
    files = list(files)
    started = time.monotonic()
    rows_done = 0
    ingested: list[FileCounts] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    unchanged = unchanged_stamps(con)
    for number, landed in enumerate(files, start=1):
        if landed.local_copy is None and (landed.path, landed.size, landed.mtime_ns) in unchanged:
            skipped.append(landed.path)
            continue
        part = None if parts is None else parts.get(landed.path)
        if parts is not None and part is None:
            if already_ingested(con, landed.file_id):
                skipped.append(landed.path)
            else:
                failed[landed.path] = f"{landed.path}: not routed to this shard"
            continue
        file_started = time.monotonic()
        try:
            counts = ingest_file(con, path=landed.path, file_format=landed.format,
                                 file_id=landed.file_id, size=landed.size, now=now,
                                 run_id=run_id, mtime_ns=landed.mtime_ns, part=part,
                                 source=landed.local_copy)
        except (duckdb.Error, OSError) as exc:
            failed[landed.path] = f"{landed.path}: {type(exc).__name__}: {exc}".splitlines()[0]
            continue
        if part is not None:
            part.mark_logged()      # committed (or logged before): its part may go
        if counts is None:
            skipped.append(landed.path)
            continue
        ingested.append(counts)
        rows_done += counts.received
        if progress is not None:
            took = time.monotonic() - file_started
            elapsed = time.monotonic() - started
            progress(f"file {number} of {len(files)} {landed.path}: {counts.received:,} rows "
                     f"({counts.accepted:,} accepted) in {took:.1f} s, "
                     f"{counts.received / max(took, 1e-9):,.0f} rows/s; {rows_done:,} rows in "
                     f"{elapsed:.1f} s so far")
    return LandingIngestion(ingested, skipped, failed)
