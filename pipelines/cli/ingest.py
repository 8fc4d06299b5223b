"""`billing ingest` and `billing reprocess-rejected`: the ingestion job, then what it ingested."""

from __future__ import annotations

import argparse
import os

from pipelines import settings
from pipelines.cli.launch import ShardRun, run_every_shard, run_job
from pipelines.cli.output import print_table
from pipelines.jobs import IDENTITY_JOB, INGEST_JOB, ingest_run_config
from pipelines.run_context import now_tags
from pipelines.sharding import connect_finance_reader


def print_ingestion_summary(runs: list[ShardRun]) -> None:
    """The files the run (one per customer shard) ingested and the warehouse's totals, as a
    small table; with shards a file's counts are summed over its shards."""
    run_ids = [run.run_id for run in runs]
    raw_meta = [run.metadata.get("raw/events", {}) for run in runs]
    skipped = max((meta.get("files_skipped", 0) for meta in raw_meta), default=0)
    refused: dict[str, str] = {}
    for meta in raw_meta:
        refused.update(meta.get("refused_files") or {})
    with connect_finance_reader() as con:
        files = con.execute("""
            SELECT path, sum(received), sum(accepted), sum(duplicates), sum(rejected),
                   sum(conflicts)
            FROM raw.ingestion_log WHERE list_contains($run_ids, run_id)
            GROUP BY path ORDER BY path""", {"run_ids": run_ids}).fetchall()
        reasons = con.execute("""
            SELECT reason, count(*) FROM raw.rejected_events r
            WHERE r.origin = 'file' AND r.file_id IN (
                SELECT file_id FROM raw.ingestion_log WHERE list_contains($run_ids, run_id))
            GROUP BY reason ORDER BY count(*) DESC, reason""", {"run_ids": run_ids}).fetchall()
        reprocessed = con.execute("""
            SELECT sum(candidates), sum(accepted), sum(duplicates), sum(conflicts),
                   sum(still_rejected)
            FROM raw.reprocessing_log WHERE list_contains($run_ids, run_id)
            HAVING count(*) > 0""", {"run_ids": run_ids}).fetchall()
        totals = con.execute("""
            SELECT (SELECT count(*) FROM raw.events),
                   (SELECT count(*) FROM raw.rejected_events WHERE resolved_at IS NULL),
                   (SELECT count(DISTINCT file_id) FROM raw.ingestion_log)""").fetchall()[0]
    if not files:
        print("no new files to ingest")
    else:
        rows = [(os.path.basename(path), *counts) for path, *counts in files]
        rows.append(("total", *(sum(f[i] for f in files) for i in range(1, 6))))
        print_table(("file", "received", "accepted", "duplicates", "rejected", "conflicts"),
                    rows)
    routed = [(k, meta) for k, meta in enumerate(raw_meta) if "routing_seconds" in meta]
    if any(meta.get("files_routed_here") for _, meta in routed):
        print("routing by shard: " + ", ".join(
            f"shard {k} routed {meta['files_routed_here']} file(s), "
            f"{float(meta['routing_seconds']):.1f} s" for k, meta in routed))
    if skipped:
        print(f"{skipped} file(s) skipped: the same content was ingested before")
    for path, reason in refused.items():
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
    runs = run_every_shard(
        INGEST_JOB, ingest_run_config(files=files, reprocess_rejected=reprocess_rejected))
    moved = 0
    if settings.shard_count() > 1:
        from pipelines.ingestion.routing import remove_finished_parts

        # every shard has logged the files it was given: their routed parts can go
        remove_finished_parts(settings.shard_count())
        # identity is then checked across the shards (one warehouse checked it already)
        # (the check_event_identity job, as after the landing sensor's ingestion runs)
        moved = _identity_check()
    print_ingestion_summary(runs)
    if moved:
        print(f"{moved} event(s) rejected as conflicts: their (source, event_id) was accepted "
              "first for a customer of another shard")


def _identity_check() -> int:
    """Run the event identity check across the shards (the `check_event_identity` job); how
    many later copies it rejected as conflicts."""
    result = run_job(IDENTITY_JOB, tags=now_tags(settings.now()))
    return sum(int(event.event_specific_data.metadata["conflicts_rejected"].value)
               for event in result.all_events if event.event_type_value == "STEP_OUTPUT")


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
