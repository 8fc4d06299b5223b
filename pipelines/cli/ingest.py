"""`billing ingest` and `billing reprocess-rejected`: the ingestion job, then what it ingested."""

from __future__ import annotations

import argparse
import os

import dagster as dg

from pipelines import settings
from pipelines.cli.launch import run_job
from pipelines.cli.output import print_table
from pipelines.jobs import INGEST_JOB, ingest_run_config
from pipelines.warehouse import connect_reader


def print_ingestion_summary(result: dg.ExecuteInProcessResult) -> None:
    """The files a run ingested and the warehouse's totals, as a small table."""
    run_id = result.run_id
    materialized = {e.asset_key: e.materialization.metadata
                    for e in result.get_asset_materialization_events() if e.asset_key}
    raw_meta = materialized.get(dg.AssetKey(["raw", "events"]), {})
    skipped = raw_meta.get("files_skipped")
    refused = raw_meta.get("refused_files")
    with connect_reader(settings.warehouse_path()) as con:
        files = con.execute("""
            SELECT path, received, accepted, duplicates, rejected, conflicts
            FROM raw.ingestion_log WHERE run_id = $run_id ORDER BY path""",
            {"run_id": run_id}).fetchall()
        reasons = con.execute("""
            SELECT reason, count(*) FROM raw.rejected_events r
            JOIN raw.ingestion_log l USING (file_id)
            WHERE l.run_id = $run_id AND r.origin = 'file'
            GROUP BY reason ORDER BY count(*) DESC, reason""", {"run_id": run_id}).fetchall()
        reprocessed = con.execute("""
            SELECT candidates, accepted, duplicates, conflicts, still_rejected
            FROM raw.reprocessing_log WHERE run_id = $run_id""", {"run_id": run_id}).fetchall()
        totals = con.execute("""
            SELECT (SELECT count(*) FROM raw.events),
                   (SELECT count(*) FROM raw.rejected_events WHERE resolved_at IS NULL),
                   (SELECT count(*) FROM raw.ingestion_log)""").fetchall()[0]
    if not files:
        print("no new files to ingest")
    else:
        rows = [(os.path.basename(path), *counts) for path, *counts in files]
        rows.append(("total", *(sum(f[i] for f in files) for i in range(1, 6))))
        print_table(("file", "received", "accepted", "duplicates", "rejected", "conflicts"),
                    rows)
    if skipped is not None and skipped.value:
        print(f"{skipped.value} file(s) skipped: the same content was ingested before")
    for path, reason in (refused.value if refused is not None else {}).items():
        print(f"refused, not read: {path}: {reason}")
    if reasons:
        print("rejected by reason: " + ", ".join(f"{r} {n}" for r, n in reasons))
    for candidates, accepted, duplicates, conflicts, still in reprocessed:
        if candidates:
            print(f"re-processed {candidates} unknown-customer events: accepted {accepted}, "
                  f"duplicates {duplicates}, conflicts {conflicts}, still rejected {still}")
    print(f"warehouse {settings.warehouse_path()}: {totals[0]} events, {totals[1]} open "
          f"rejections, {totals[2]} files ingested")


def _ingest(files: list[str] | None, reprocess_rejected: bool) -> None:
    result = run_job(INGEST_JOB,
                     ingest_run_config(files=files, reprocess_rejected=reprocess_rejected))
    print_ingestion_summary(result)


def cmd_ingest(args: argparse.Namespace) -> None:
    _ingest(args.files or None, reprocess_rejected=not args.no_reprocess)


def cmd_reprocess(args: argparse.Namespace) -> None:
    _ingest([], reprocess_rejected=True)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `ingest` and `reprocess-rejected` to the `billing` parser."""
    ingest = commands.add_parser("ingest", help="ingest the files now in the landing zone")
    ingest.add_argument("files", nargs="*", help="only these files (default: the landing zone)")
    ingest.add_argument("--no-reprocess", action="store_true",
                        help="do not re-try rejected unknown-customer events")
    ingest.set_defaults(func=cmd_ingest)

    reprocess = commands.add_parser(
        "reprocess-rejected", help="re-try rejected unknown-customer events whose customer exists")
    reprocess.set_defaults(func=cmd_reprocess)
