"""Re-processing of rejected unknown-customer events once their customer is in the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.erasure.warehouse_erasure import pseudonymise_new_rows
from pipelines.ingestion.canonical_payloads import settle_candidate_conflicts
from pipelines.ingestion.load import drop_staging
from pipelines.warehouse import run_sql, sql, transaction


@dataclass(frozen=True)
class ReprocessCounts:
    """candidates = accepted + duplicates + conflicts + still_rejected."""

    candidates: int
    accepted: int
    duplicates: int
    conflicts: int
    still_rejected: int


def reprocess_rejected(con: duckdb.DuckDBPyConnection, *, now: datetime,
                       run_id: str | None) -> ReprocessCounts:
    """Run rejected unknown-customer lines through validation and dedup again.

    They take the same path as a landed JSON Lines file (CSV and Parquet rejects are kept in the
    native JSON shape), and keep the file and line they first arrived with.
    `prepare_session` must have run on the connection (customers and clock).
    """
    try:
        con.execute(sql("staging/reprocess_candidates"))
        con.execute("CREATE OR REPLACE TEMP VIEW incoming_lines AS "
                    "SELECT rowid + 1 AS line_number, raw FROM reprocess_candidates")
        con.execute("CREATE OR REPLACE TEMP VIEW incoming AS "
                    + sql("staging/incoming_json_lines"))
        run_sql(con, "staging/validated_events")
        con.execute("CREATE OR REPLACE TEMP VIEW candidate_events AS "
                    "SELECT * FROM validated_events WHERE reason IS NULL")
        con.execute("CREATE OR REPLACE TEMP VIEW prior_events AS SELECT source, event_id, "
                    "payload_hash, file_id, line_number FROM raw.events")
        con.execute(sql("staging/event_outcomes"))
        settle_candidate_conflicts(con)
        with transaction(con):
            con.execute(sql("raw/events_reprocessed"), {"ingested_at": now})
            con.execute(sql("raw/rejected_events_conflicts"), {"rejected_at": now})
            con.execute(sql("raw/rejected_events_resolved"), {"resolved_at": now})
            con.execute(sql("raw/reprocessing_log"), {"reprocessed_at": now, "run_id": run_id})
            pseudonymise_new_rows(con, "origin = 'reprocessed' AND ingested_at = $now",
                                  {"now": now}, "rejected_at = $now")
            row = con.execute("""
                SELECT candidates, accepted, duplicates, conflicts, still_rejected
                FROM raw.reprocessing_log WHERE reprocessed_at = $now
                ORDER BY rowid DESC LIMIT 1""", {"now": now}).fetchall()[0]
    finally:
        drop_staging(con)
        con.execute("DROP TABLE IF EXISTS reprocess_candidates")
    return ReprocessCounts(*row)
