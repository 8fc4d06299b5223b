"""Event identity across customer shards (contract sections 1 and 12).

An event's identity, (source, event_id), is unique over all history: the first accepted event
stands, a later one with another payload is a conflict. Each shard's ingestion checks identity
against its own file only, so the same identity sent for two customers of different shards
(necessarily two payloads: the customer differs) is accepted once in each. This global step
(`check_event_identity`: the `check_event_identity` job, launched by a run-status sensor after
every successful ingestion run of any shard and run by `billing ingest`) finds such identities
through the read-only finance view and moves every copy but the first to `raw.rejected_events`
with reason `conflict`, in its own shard, as one warehouse would have rejected it.

Which copy is first is the order one warehouse accepts in: a file ingested by a run already
checked before the files of the runs not checked yet (`new_runs`: copies from checked runs were
checked already); then by the time the file was first ingested by any shard (every shard logs
every file), then by path (a run takes its files in path order), then by line; an event
accepted on a later re-processing pass by when it was accepted. The moved copy's file keeps its
accounting: accepted - 1, rejected + 1 and conflicts + 1 in its shard's ingestion log. Running
the step again finds nothing more to move.

The ingestion runs checked are recorded in a small ledger beside the warehouses
(`warehouse.identity.duckdb`), after the copies they brought are moved; billing refuses to run
while an ingestion run of any shard is not recorded there (`require_identity_checked`), so a
reused identity is never billed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from pipelines import settings
from pipelines.sharding import connect_finance_reader, shard_of_sql, warehouse_paths
from pipelines.warehouse import connect_writer, transaction, warehouse_lock

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS checked_runs (
    run_id     VARCHAR PRIMARY KEY,    -- an ingestion run (raw.ingestion_log, reprocessing_log)
    checked_at TIMESTAMPTZ NOT NULL
)"""

RUNS_SQL = """
    SELECT run_id FROM raw.ingestion_log WHERE run_id IS NOT NULL
    UNION SELECT run_id FROM raw.reprocessing_log WHERE run_id IS NOT NULL"""
"""The ingestion runs a warehouse (or the finance view over every shard) has rows of."""


@dataclass(frozen=True)
class LaterCopy:
    """An accepted event whose identity was accepted first in another shard."""

    shard: int
    source: str
    event_id: str
    file_id: str
    line_number: int
    first: str       # where the first accepted copy is, as one warehouse's detail says it


def identity_ledger_path(base: str | None = None) -> str:
    """The ledger of ingestion runs checked, beside the configured warehouse."""
    path = Path(base or settings.warehouse_path())
    return str(path.with_name(f"{path.stem}.identity{path.suffix}"))


def checked_runs(base: str | None = None) -> set[str]:
    """The ingestion runs the identity check has covered (none before its first run)."""
    ledger = identity_ledger_path(base)
    if not Path(ledger).exists():
        return set()
    with warehouse_lock(ledger, exclusive=False):
        return _ledger_runs(ledger)


def unchecked_runs(base: str | None = None) -> list[str]:
    """The ingestion runs of any shard whose events the identity check has not covered yet
    (none with one warehouse, which checks identity as it ingests)."""
    if len(warehouse_paths(base)) == 1:
        return []
    checked = checked_runs(base)
    with connect_finance_reader(base) as con:
        runs = {run_id for (run_id,) in con.execute(RUNS_SQL).fetchall()}
    return sorted(runs - checked)


def require_identity_checked(base: str | None = None) -> None:
    """Refuse (ValueError naming the runs) while an ingestion run of any shard is not checked
    for event identities reused across shards: billing would bill both copies."""
    waiting = unchecked_runs(base)
    if waiting:
        shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5
                                          else "")
        raise ValueError(
            f"{len(waiting)} ingestion run(s) not yet checked for event ids reused across "
            f"customer shards ({shown}): billing waits for the check_event_identity job (the "
            "sensor launches it after each ingestion run; `billing ingest` runs it), so a "
            "reused event is never billed in two shards")


def later_copies(con: duckdb.DuckDBPyConnection, shards: int,
                 new_runs: Sequence[str] = ()) -> list[LaterCopy]:
    """Every accepted event whose identity an earlier accepted event (of another shard) holds,
    read through the finance view `con` over every shard; `new_runs`: the ingestion runs not
    checked yet, whose files come after every checked run's."""
    rows = con.execute(f"""
        WITH repeated AS (
            SELECT source, event_id FROM raw.events GROUP BY ALL HAVING count(*) > 1
        ), first_logged AS (
            SELECT file_id, min(ingested_at) AS first_at, min(path) AS path,
                   bool_or(list_contains($new_runs, run_id)) AS new
            FROM raw.ingestion_log GROUP BY file_id
        ), ranked AS (
            SELECT e.source, e.event_id, e.file_id, e.line_number,
                   {shard_of_sql('e.customer_id', shards)} AS shard,
                   row_number() OVER w AS nth,
                   first_value(e.file_id) OVER w AS first_file,
                   first_value(e.line_number) OVER w AS first_line
            FROM raw.events e
            JOIN repeated USING (source, event_id)
            LEFT JOIN first_logged f USING (file_id)
            WINDOW w AS (PARTITION BY e.source, e.event_id
                         ORDER BY coalesce(f.new AND e.origin = 'file', false),
                                  CASE WHEN e.origin = 'file'
                                       THEN coalesce(f.first_at, e.ingested_at)
                                       ELSE e.ingested_at END,
                                  f.path, e.file_id, e.line_number)
        )
        SELECT shard, source, event_id, file_id, line_number,
               CASE WHEN first_file = file_id THEN 'this file, line ' || first_line
                    ELSE 'file ' || first_file || ' line ' || first_line END
        FROM ranked WHERE nth > 1
        ORDER BY shard, file_id, line_number""", {"new_runs": list(new_runs)}).fetchall()
    return [LaterCopy(int(shard), *rest) for shard, *rest in rows]


@dataclass(frozen=True)
class IdentityCheck:
    """What one identity check did: copies moved to rejects, ingestion runs it covered."""

    moved: int
    runs_checked: int


def check_event_identity(now: datetime, base: str | None = None) -> IdentityCheck:
    """The global step after the shards' ingestion: with the ledger held (one check at a time),
    read every shard through the finance view, move the later copies of identities accepted in
    more than one shard (`reject_later_copies`, each shard's writer in turn, never two at once),
    then record the ingestion runs read as checked. Interrupted before the record, it runs
    again with the same runs as new and moves what is left. One warehouse: nothing to do."""
    paths = warehouse_paths(base)
    if len(paths) == 1:
        return IdentityCheck(0, 0)
    ledger = identity_ledger_path(base)
    with warehouse_lock(ledger, exclusive=True):
        checked = _ledger_runs(ledger)
        with connect_finance_reader(base) as con:
            runs = {run_id for (run_id,) in con.execute(RUNS_SQL).fetchall()}
            new = sorted(runs - checked)
            copies = later_copies(con, len(paths), new) if new else []
        moved = reject_later_copies(copies, now, base)
        con = duckdb.connect(ledger)
        try:
            con.execute(LEDGER_SCHEMA)
            if new:
                con.executemany("INSERT OR IGNORE INTO checked_runs VALUES (?, ?)",
                                [(run_id, now) for run_id in new])
        finally:
            con.close()
    return IdentityCheck(moved, len(new))


def _ledger_runs(ledger: str) -> set[str]:
    """The runs in the ledger (its lock held by the caller)."""
    if not Path(ledger).exists():
        return set()
    con = duckdb.connect(ledger, read_only=True)
    try:
        tables = con.execute("SELECT count(*) FROM duckdb_tables() "
                             "WHERE table_name = 'checked_runs'").fetchone()[0]
        rows = con.execute("SELECT run_id FROM checked_runs").fetchall() if tables else []
        return {run_id for (run_id,) in rows}
    finally:
        con.close()


def reject_later_copies(copies: Sequence[LaterCopy], now: datetime,
                        base: str | None = None) -> int:
    """Move these later copies of identities accepted in another shard to their shard's
    `raw.rejected_events` (reason `conflict`, the record in the native JSON shape), fixing
    their files' counts; returns how many were moved. Each shard is written in its own
    transaction, one after another, after the finance view is closed; a copy already moved
    is not there to move again."""
    paths = warehouse_paths(base)
    moved = 0
    for shard in sorted({copy.shard for copy in copies}):
        rows = [(c.source, c.event_id, c.file_id, c.line_number, c.first)
                for c in copies if c.shard == shard]
        with connect_writer(paths[shard]) as con, transaction(con):
            con.execute("""CREATE OR REPLACE TEMP TABLE later_copies (
                source VARCHAR, event_id VARCHAR, file_id VARCHAR, line_number BIGINT,
                first_accepted VARCHAR)""")
            con.executemany("INSERT INTO later_copies VALUES (?, ?, ?, ?, ?)", rows)
            con.execute("""
                CREATE OR REPLACE TEMP TABLE moving AS
                SELECT e.*, l.first_accepted FROM raw.events e
                JOIN later_copies l USING (source, event_id, file_id, line_number)""")
            con.execute("""
                INSERT INTO raw.rejected_events (file_id, line_number, reason, detail, raw,
                    source, event_id, customer_id, rejected_at, origin)
                SELECT file_id, line_number, 'conflict',
                    'event (source ' || source || ', event_id ' || event_id
                        || ') was already accepted with a different payload ('
                        || first_accepted || '); the first accepted event stands',
                    json_object('event_id', event_id, 'event_name', event_name,
                        'customer_id', customer_id,
                        'timestamp', strftime("timestamp", '%Y-%m-%dT%H:%M:%S.%fZ'),
                        'properties', properties, 'source', source,
                        'subscription_id', subscription_id)::VARCHAR,
                    source, event_id, customer_id, $now, origin
                FROM moving""", {"now": now})
            con.execute("""
                UPDATE raw.ingestion_log l
                SET accepted = l.accepted - m.n, rejected = l.rejected + m.n,
                    conflicts = l.conflicts + m.n
                FROM (SELECT file_id, count(*) AS n FROM moving WHERE origin = 'file'
                      GROUP BY file_id) m
                WHERE l.file_id = m.file_id""")
            con.execute("""
                DELETE FROM raw.events e USING moving m
                WHERE e.source = m.source AND e.event_id = m.event_id
                  AND e.file_id = m.file_id AND e.line_number = m.line_number""")
            moved += con.execute("SELECT count(*) FROM moving").fetchone()[0]
            con.execute("DROP TABLE moving")
            con.execute("DROP TABLE later_copies")
    return moved
