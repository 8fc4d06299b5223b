"""Routing landed files by customer shard (contract section 12, issue 18), so that with
`BILLING_SHARDS=N` each line is read and parsed once overall, not once per shard.

One worker routes a file once: it stages it with the ingestion's own stager and normalizing SQL
(the same line numbers, customer ids and blank-line rule as one warehouse's ingestion), computes
the shard of each DISTINCT customer id (`sharding.shard_of_sql`, sha256 on distinct ids only,
joined back to the lines) and writes, per shard, a Parquet part holding exactly that shard's
lines with their ORIGINAL line numbers (JSON Lines: `line_number, raw`; CSV: `line_number`
and the record columns as text; Parquet: the file's own columns and types with its
`file_row_number`), the CSV parser's rejects with shard 0's part, and
a manifest. Lines without a customer id go to shard 0, which rejects them as one warehouse does;
blank lines go nowhere (they are not received lines). Routing uses an in-memory DuckDB, never a
warehouse.

Where: `BILLING_ROUTING` (default `routing/` beside the warehouse), one folder per file and shard
count, `<file_id>/of-<N>/` (`shard-K/*.parquet`, `rejects.parquet`, `manifest.json`). A part set
is written in a hidden temporary folder and renamed into place, so it is complete or absent; a
temporary folder a killed worker left is ignored and removed by the next worker routing that
file. A lock file per file (`<file_id>/of-<N>.lock`, flock) keeps two workers from routing the
same file at once: a worker that finds a file locked routes its other files and comes back to it,
so the N shards' runs share the routing of a landing zone and any worker routes any file.

Each shard's ingestion stages only its part (`RoutedPart.stage`), keeping the original file's
id, path and line numbers, so the per-file accounting of the shards adds up to the file's. Once a
shard has logged the file it marks the part set (`logged-K`); a part set every shard marked is
removed (`remove_finished_parts`: at the start of each routing pass and after `billing ingest`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from pipelines import settings
from pipelines.ingestion.file_identity import LandedFile, file_sha256
from pipelines.ingestion.landing import exact_path_pattern
from pipelines.ingestion.load import (
    NORMALIZERS,
    STAGERS,
    describe_columns,
    record_column_text,
    stage_parquet_records,
    unchanged_stamps,
)
from pipelines.sharding import shard_of_sql
from pipelines.warehouse import configure_session, run_sql, sql

MANIFEST = "manifest.json"
# parts are read once, locally, then removed: written uncompressed, a quarter faster than snappy
# (measured on 10M lines: writing them is most of the routing's time)
PART_FORMAT = "FORMAT parquet, COMPRESSION uncompressed"
REJECTS = "rejects.parquet"
# retry a file another worker is routing after this pause; give up after an hour, as the
# warehouse's lock does
RETRY_PAUSE_S = 0.1
LOCK_TIMEOUT_S = 3600.0
# the CSV parser's rejects (DuckDB's `reject_errors` columns the ingestion reads)
EMPTY_REJECTS = "SELECT NULL::BIGINT AS line, NULL::VARCHAR AS csv_line, " \
                "NULL::VARCHAR AS error_message WHERE false"


@dataclass(frozen=True)
class RoutedFile:
    """A landed file split by shard: its complete part set in `folder`."""

    file_id: str
    format: str
    shards: int
    folder: Path
    lines: tuple[int, ...]            # lines per shard (blank lines are in no shard)
    parser_rejects: int               # CSV lines the parser refused, with shard 0's part
    routed_here: bool                 # this worker routed it (else it found the parts ready)

    def part(self, shard: int) -> RoutedPart:
        """What shard `shard` ingests of this file."""
        return RoutedPart(self, shard)


@dataclass(frozen=True)
class RoutedPart:
    """One shard's part of a routed file: the stager `ingest_file` uses instead of reading the
    landed file, and the mark the shard leaves once it has logged the file."""

    routed: RoutedFile
    shard: int

    def stage(self, con: duckdb.DuckDBPyConnection) -> None:
        """Stage the part as the ingestion's stager stages a whole file: the relation its
        normalizing SQL reads (`file_lines` or `file_records`) with the original line numbers,
        and for CSV the parser's rejects (`csv_rejects`, empty but in shard 0)."""
        staged = NORMALIZERS[self.routed.format][0]
        files = _literal(exact_path_pattern(str(self.routed.folder / f"shard-{self.shard}"))
                         + "/*.parquet")
        # read in place, as a landed Parquet file is: every line carries its own number
        if self.routed.format == "parquet":
            stage_parquet_records(con, f"read_parquet({files})")
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {staged} AS "
                        f"SELECT * FROM read_parquet({files})")
        if self.routed.format == "csv":
            rejects = (f"SELECT * FROM read_parquet("
                       f"{_literal(exact_path_pattern(str(self.routed.folder / REJECTS)))})"
                       if self.shard == 0 else EMPTY_REJECTS)
            con.execute("DROP TABLE IF EXISTS csv_rejects")
            con.execute(f"CREATE TEMP TABLE csv_rejects AS {rejects}")

    def mark_logged(self) -> None:
        """Say that this shard has logged the file (call after its commit): once every shard
        has, the part set is removed."""
        with suppress(FileNotFoundError):      # removed already: every shard had logged it
            (self.routed.folder / f"logged-{self.shard}").touch()


@dataclass(frozen=True)
class RoutingPass:
    """What a routing pass did: the files (each with its identity computed once), the part of
    each file this shard ingests (by path), the files that could not be routed (path -> error)
    and the seconds it took, waiting for other workers' routing included."""

    files: list[LandedFile]
    parts: dict[str, RoutedPart]
    failed: dict[str, str]
    seconds: float

    @property
    def routed_here(self) -> int:
        return sum(part.routed.routed_here for part in self.parts.values())


@dataclass(frozen=True)
class LoggedFiles:
    """What a shard has logged already: (path, bytes, mtime_ns) stamps and file ids."""

    stamps: set[tuple[str, int, int]]
    file_ids: set[str]


def logged_files(con: duckdb.DuckDBPyConnection) -> LoggedFiles:
    """The files a shard's warehouse has logged (read before routing, so a file every shard has
    ingested is never routed again)."""
    ids = {row[0] for row in con.execute("SELECT file_id FROM raw.ingestion_log").fetchall()}
    return LoggedFiles(unchanged_stamps(con), ids)


def routing_root() -> Path:
    return Path(settings.routing_path()).expanduser()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_folder(root: Path, file_id: str) -> Path:
    return root / file_id


def part_set_folder(root: Path, file_id: str, shards: int) -> Path:
    """Where the complete part set of a file for `shards` shards lives."""
    return _file_folder(root, file_id) / f"of-{shards}"


@contextmanager
def _file_lock(root: Path, file_id: str, shards: int) -> Iterator[bool]:
    """Try the file's routing lock without waiting: yields True when held, False when another
    worker holds it."""
    folder = _file_folder(root, file_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"of-{shards}.lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_part_set(folder: Path, routed_here: bool) -> RoutedFile | None:
    """The complete part set in `folder`, or None when there is none."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    return RoutedFile(manifest["file_id"], manifest["format"], manifest["shards"], folder,
                      tuple(manifest["lines"]), manifest["parser_rejects"], routed_here)


def route_file(landed: LandedFile, shards: int, root: Path | None = None) -> RoutedFile | None:
    """The file's part set for `shards` shards: found complete, or routed now by this worker;
    None when another worker is routing it at this moment (come back to it later)."""
    root = root or routing_root()
    folder = part_set_folder(root, landed.file_id, shards)
    found = _read_part_set(folder, routed_here=False)
    if found is not None:
        return found
    with _file_lock(root, landed.file_id, shards) as held:
        if not held:
            return None
        found = _read_part_set(folder, routed_here=False)   # routed while we waited
        if found is not None:
            return found
        for leftover in folder.parent.glob(f".of-{shards}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)     # a killed worker's half-written set
        temporary = folder.parent / f".of-{shards}.{os.getpid()}-{uuid.uuid4().hex}.tmp"
        try:
            temporary.mkdir()
            _write_part_set(landed, shards, temporary)
            os.rename(temporary, folder)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
        routed = _read_part_set(folder, routed_here=True)
        assert routed is not None
        return routed


def _write_part_set(landed: LandedFile, shards: int, folder: Path) -> None:
    """Stage the file once, in memory, and write each shard's lines to `shard-K/`, the CSV
    parser's rejects and the manifest (written last) into `folder`."""
    staged, relation, normalizer = NORMALIZERS[landed.format]
    con = duckdb.connect()
    try:
        configure_session(con)      # the warehouse's settings: values are cast to text alike
        con.execute(f"SET temp_directory = {_literal(str(folder / 'spill'))}")
        run_sql(con, "staging/json_macros")
        STAGERS[landed.format](con, landed.readable_path)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM {staged}")
        con.execute("CREATE OR REPLACE TEMP VIEW incoming AS " + sql(normalizer))
        if landed.format == "jsonl":
            lines = _write_json_line_parts(con, staged, shards, folder)
        else:
            lines = _write_record_parts(con, landed, shards, folder)
        parser_rejects = 0
        if landed.format == "csv":
            con.execute(f"COPY (SELECT line, csv_line, error_message FROM csv_rejects) "
                        f"TO {_literal(str(folder / REJECTS))} (FORMAT parquet)")
            parser_rejects = con.execute(
                "SELECT count(DISTINCT line) FROM csv_rejects").fetchall()[0][0]
    finally:
        con.close()
    shutil.rmtree(folder / "spill", ignore_errors=True)
    manifest = {"path": landed.path, "file_id": landed.file_id, "format": landed.format,
                "shards": shards, "lines": [int(lines.get(k, 0)) for k in range(shards)],
                "parser_rejects": int(parser_rejects)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def _write_json_line_parts(con: duckdb.DuckDBPyConnection, staged: str, shards: int,
                           folder: Path) -> dict[int, int]:
    """JSON Lines: each received line's customer by the normalizer (one JSON parse per line),
    its shard computed once per distinct customer id, the lines written with their numbers."""
    con.execute("CREATE TEMP TABLE line_customers AS "
                "SELECT line_number, customer_id FROM incoming WHERE NOT is_blank")
    con.execute(f"""
        CREATE TEMP TABLE customer_shards AS
        SELECT customer_id, {shard_of_sql('customer_id', shards)} AS shard
        FROM (SELECT DISTINCT customer_id FROM line_customers WHERE customer_id IS NOT NULL)
    """)
    con.execute("""
        CREATE TEMP TABLE line_shards AS
        SELECT l.line_number, coalesce(c.shard, 0)::USMALLINT AS shard
        FROM line_customers l LEFT JOIN customer_shards c USING (customer_id)""")
    con.execute("DROP TABLE line_customers")
    _copy_parts(con, f"SELECT s.*, r.shard FROM {staged} s JOIN line_shards r USING (line_number)",
                f"SELECT * FROM {staged} LIMIT 0", shards, folder)
    return _part_lines(con, shards, folder)


def _write_record_parts(con: duckdb.DuckDBPyConnection, landed: LandedFile, shards: int,
                        folder: Path) -> dict[int, int]:
    """CSV and Parquet: a record's customer is three of its columns (`record_customer_id`, as
    the normalizer reads it), so the file is written in one pass joined with the shard of each
    distinct customer (a small table), never with a table of every line. A Parquet file's part
    keeps the file's own columns and types and its row numbers (cheaper to write than text)."""
    if landed.format == "parquet":
        source = (f"read_parquet({_literal(exact_path_pattern(landed.readable_path))}, "
                  "file_row_number = true)")
        described = describe_columns(con, source)
        specversion, subject, customer = (record_column_text(described, column) for column in
                                          ("specversion", "subject", "customer_id"))
        customer_of = f"record_customer_id({specversion}, {subject}, {customer})"
    else:
        source = NORMALIZERS["csv"][0]
        customer_of = "record_customer_id(specversion, subject, customer_id)"
    con.execute(f"""
        CREATE TEMP TABLE customer_shards AS
        SELECT customer_id, {shard_of_sql('customer_id', shards)} AS shard
        FROM (SELECT DISTINCT {customer_of} AS customer_id FROM {source})
        WHERE customer_id IS NOT NULL""")
    _copy_parts(con, f"""
        SELECT s.* EXCLUDE (routed_customer), coalesce(c.shard, 0)::USMALLINT AS shard
        FROM (SELECT *, {customer_of} AS routed_customer FROM {source}) s
        LEFT JOIN customer_shards c ON c.customer_id = s.routed_customer""",
                f"SELECT * FROM {source} LIMIT 0", shards, folder)
    return _part_lines(con, shards, folder)


def _copy_parts(con: duckdb.DuckDBPyConnection, rows: str, empty: str, shards: int,
                folder: Path) -> None:
    """Write `rows` (with a `shard` column) into `shard-K/` folders, one per shard, a shard
    without rows getting an empty part of the same columns."""
    con.execute(f"""
        COPY ({rows}) TO {_literal(str(folder))}
        ({PART_FORMAT}, PARTITION_BY (shard), OVERWRITE_OR_IGNORE,
         FILENAME_PATTERN 'part_{{i}}')""")
    for shard in range(shards):
        target = folder / f"shard={shard}"
        if not target.exists():
            target.mkdir()
            con.execute(f"COPY ({empty}) TO {_literal(str(target / 'part_0.parquet'))} "
                        f"({PART_FORMAT})")
        target.rename(folder / f"shard-{shard}")


def _part_lines(con: duckdb.DuckDBPyConnection, shards: int, folder: Path) -> dict[int, int]:
    """Lines per shard, read from the parts' Parquet metadata."""
    return {shard: con.execute(
        "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata("
        f"{_literal(exact_path_pattern(str(folder / f'shard-{shard}')) + '/*.parquet')})"
    ).fetchall()[0][0] for shard in range(shards)}


def with_identity(landed: LandedFile) -> LandedFile:
    """The file with its identity (sha256) computed, once."""
    if landed.sha256 is not None:
        return landed
    return replace(landed, sha256=file_sha256(landed.readable_path))


def route_landed_files(files: Iterable[LandedFile], shard: int, shards: int,
                       logged: LoggedFiles, *, root: Path | None = None,
                       progress: Callable[[str], None] | None = None,
                       timeout_s: float = LOCK_TIMEOUT_S) -> RoutingPass:
    """Route every file shard `shard` has not logged yet, sharing the work with the other
    shards' workers: a file another worker is routing is left for later and taken up once its
    part set is complete (or routed here, should that worker have died). Part sets every shard
    has logged are removed first. A file that cannot be read is reported, not routed."""
    root = root or routing_root()
    started = time.monotonic()
    remove_finished_parts(shards, root)
    ready: list[LandedFile] = []
    pending: list[LandedFile] = []
    failed: dict[str, str] = {}
    for landed in files:
        if landed.local_copy is None and \
                (landed.path, landed.size, landed.mtime_ns) in logged.stamps:
            ready.append(landed)      # unchanged since this shard logged it: not even read
            continue
        try:
            landed = with_identity(landed)
        except OSError as exc:
            failed[landed.path] = _error(landed, exc)
            continue
        ready.append(landed)
        if landed.file_id in logged.file_ids:
            found = _read_part_set(part_set_folder(root, landed.file_id, shards), False)
            if found is not None:
                found.part(shard).mark_logged()
            continue
        pending.append(landed)
    parts: dict[str, RoutedPart] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        waiting: list[LandedFile] = []
        for landed in pending:
            file_started = time.monotonic()
            try:
                routed = route_file(landed, shards, root)
            except (duckdb.Error, OSError) as exc:
                failed[landed.path] = _error(landed, exc)
                continue
            if routed is None:
                waiting.append(landed)
                continue
            parts[landed.path] = routed.part(shard)
            if progress is not None and routed.routed_here:
                progress(f"routed {landed.path} into {shards} shards in "
                         f"{time.monotonic() - file_started:.1f} s: lines per shard "
                         f"{', '.join(f'{n:,}' for n in routed.lines)}")
        if waiting and time.monotonic() > deadline:
            for landed in waiting:
                failed[landed.path] = (f"{landed.path}: another worker has been routing it for "
                                       f"{timeout_s:.0f} s")
            break
        if waiting and len(waiting) == len(pending):
            time.sleep(RETRY_PAUSE_S)     # every file left is being routed elsewhere
        pending = waiting
    routable = [f for f in ready if f.path not in failed]
    return RoutingPass(routable, parts, failed, time.monotonic() - started)


def _error(landed: LandedFile, exc: Exception) -> str:
    return f"{landed.path}: {type(exc).__name__}: {exc}".splitlines()[0]


def remove_finished_parts(shards: int, root: Path | None = None) -> int:
    """Remove the part sets (for `shards` shards) that every shard has logged; returns how
    many. A set another worker holds the lock of is left for the next pass."""
    root = root or routing_root()
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.glob(f"*/of-{shards}"):
        if not all((folder / f"logged-{k}").exists() for k in range(shards)):
            continue
        file_id = folder.parent.name
        with _file_lock(root, file_id, shards) as held:
            if not held:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            (folder.parent / f"of-{shards}.lock").unlink(missing_ok=True)
        removed += 1
        with suppress(OSError):      # the file's folder, once it holds nothing else
            folder.parent.rmdir()
    return removed
