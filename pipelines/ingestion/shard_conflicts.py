"""Event identity across customer shards (contract sections 1 and 12).

An event's identity, (source, event_id), is unique over all history: the first accepted event
stands, a later one with another payload is a conflict. Each shard's ingestion checks identity
against its own file only, so the same identity sent for two customers of different shards
(necessarily two payloads: the customer differs) is accepted once in each. This global step,
run after the shards' ingestion (`billing ingest`), finds such identities through the read-only
finance view and moves every copy but the first to `raw.rejected_events` with reason `conflict`,
in its own shard, as one warehouse would have rejected it.

Which copy is first is the order one warehouse accepts in: a file ingested by an earlier run
before the files of the runs just made (`new_runs`: copies from earlier runs were checked
already); then by the time the file was first ingested by any shard (every shard logs every
file), then by path (a run takes its files in path order), then by line; an event accepted on a
later re-processing pass by when it was accepted. The moved copy's file
keeps its accounting: accepted - 1, rejected + 1 and conflicts + 1 in its shard's ingestion log.
Running the step again finds nothing more to move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipelines.sharding import connect_finance_reader, shard_of_sql, warehouse_paths
from pipelines.warehouse import connect_writer, transaction


@dataclass(frozen=True)
class LaterCopy:
    """An accepted event whose identity was accepted first in another shard."""

    shard: int
    source: str
    event_id: str
    file_id: str
    line_number: int
    first: str       # where the first accepted copy is, as one warehouse's detail says it


def later_copies(base: str | None = None,
                 new_runs: Sequence[str] = ()) -> list[LaterCopy]:
    """Every accepted event whose identity an earlier accepted event (of another shard) holds,
    read through the finance view over every shard; `new_runs`: the ingestion runs just made,
    whose files come after every earlier run's."""
    paths = warehouse_paths(base)
    if len(paths) == 1:
        return []
    with connect_finance_reader(base) as con:
        rows = con.execute(f"""
            WITH repeated AS (
                SELECT source, event_id FROM raw.events GROUP BY ALL HAVING count(*) > 1
            ), first_logged AS (
                SELECT file_id, min(ingested_at) AS first_at, min(path) AS path,
                       bool_or(list_contains($new_runs, run_id)) AS new
                FROM raw.ingestion_log GROUP BY file_id
            ), ranked AS (
                SELECT e.source, e.event_id, e.file_id, e.line_number,
                       {shard_of_sql('e.customer_id', len(paths))} AS shard,
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


def reject_later_copies(now: datetime, base: str | None = None,
                        new_runs: Sequence[str] = ()) -> int:
    """Move every later copy of an identity accepted in another shard to its shard's
    `raw.rejected_events` (reason `conflict`, the record in the native JSON shape), fixing its
    file's counts; returns how many were moved. Each shard is written in its own transaction,
    after the finance view is closed."""
    copies = later_copies(base, new_runs)
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
