"""Ingestion stage: landed usage event files into raw.events, with nothing lost."""


import dagster as dg
import polars as pl

from pipelines import settings
from pipelines.asset_checks import asset_check_result
from pipelines.checks import pandera_check
from pipelines.ingestion import (
    ingest_landed_files,
    prepare_session,
    reprocess_rejected,
)
from pipelines.ingestion.event_count_checks import IngestionLogTable
from pipelines.ingestion.landing import readable_copies, selected_files
from pipelines.ingestion.routing import logged_files, route_landed_files
from pipelines.progress import log_progress
from pipelines.resources import (
    WAREHOUSE_POOL,
    CatalogResource,
    LandingZoneResource,
    WarehouseResource,
)
from pipelines.run_context import catalog_or_fail
from pipelines.warehouse import sql


class IngestConfig(dg.Config):
    """Which files to ingest: `files` lists paths (the sensor's new files); None means every
    file now in the landing zone; [] means none (only re-process rejected events)."""

    files: list[str] | None = None
    reprocess_rejected: bool = True


@dg.asset(
    key=["raw", "events"],
    group_name="ingestion",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Accepted usage events (deduplicated by source and event_id against all "
                "history), with rejected lines and a per-file ingestion log beside them.",
)
def raw_events(context: dg.AssetExecutionContext, config: IngestConfig,
               catalog: CatalogResource, landing: LandingZoneResource,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
    customers = list(catalog_or_fail(catalog).customers)
    now = settings.now()
    scan = selected_files(landing.location, config.files)
    for path, reason in scan.refused.items():
        context.log.warning(f"{path}: refused, not read: {reason}")

    def progress(line: str) -> None:
        log_progress(context.log, line)

    shard = warehouse.shard
    routing = None
    # an s3 landing zone's objects are copied locally first: never hold the writer on the network
    with readable_copies(landing.location, scan.files) as (files, unfetched):
        if shard is not None:
            # with shards, each file is split by shard once (by whichever shard's worker gets
            # to it first) and this shard reads only its part; no warehouse is held meanwhile
            with warehouse.reader() as con:
                logged = logged_files(con)
            routing = route_landed_files(files, shard, settings.shard_count(), logged,
                                         progress=progress)
            files = routing.files
        with warehouse.writer() as con:
            prepare_session(con, customers, now)
            result = ingest_landed_files(con, files, now=now, run_id=context.run.run_id,
                                         progress=progress,
                                         parts=None if routing is None else routing.parts)
            reprocessed = (reprocess_rejected(con, now=now, run_id=context.run.run_id)
                           if config.reprocess_rejected else None)
    failed = {**unfetched, **(routing.failed if routing else {}), **result.failed}
    for counts in result.ingested:
        context.log.info(
            f"{counts.path}: received {counts.received} = accepted {counts.accepted} + "
            f"duplicates {counts.duplicates} + rejected {counts.rejected} "
            f"(conflicts {counts.conflicts})")
    for path in result.skipped:
        context.log.info(f"{path}: already ingested (same content), skipped")
    metadata: dict[str, object] = {
        "files_ingested": len(result.ingested),
        "files_skipped": len(result.skipped),
        "files_failed": len(failed),
        "files_refused": len(scan.refused),
        "refused_files": dg.MetadataValue.json(scan.refused),
        **result.totals,
    }
    if routing is not None:
        metadata["routing_seconds"] = round(routing.seconds, 3)
        metadata["files_routed_here"] = routing.routed_here
    if reprocessed is not None:
        metadata["reprocessed_candidates"] = reprocessed.candidates
        metadata["reprocessed_accepted"] = reprocessed.accepted
    if failed:
        # the good files are committed; the bad ones stay in the landing zone for the next run
        raise dg.Failure(description="files that could not be read:\n" +
                         "\n".join(failed.values()), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=raw_events, blocking=True, pool=WAREHOUSE_POOL,
                description="Per file: received = accepted + duplicates + rejected, and the "
                            "counts equal the rows stored in raw.events and raw.rejected_events.")
def ingestion_counts_add_up(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = con.sql(sql("staging/ingestion_log_audit")).pl()
    counts = frame.with_columns(
        pl.col(c).cast(pl.Int64) for c in ("received", "accepted", "duplicates", "rejected",
                                            "conflicts", "events_stored", "rejects_stored"))
    return asset_check_result(pandera_check(IngestionLogTable, counts))
