"""Ingestion stage: landed usage event files into raw.events, with nothing lost."""


from pathlib import Path

import dagster as dg
import polars as pl

from pipelines import settings
from pipelines.catalog import CatalogError
from pipelines.checks import pandera_check
from pipelines.ingestion import (
    ingest_landed_files,
    landed_files,
    prepare_session,
    reprocess_rejected,
)
from pipelines.ingestion.landing import LandedFile, file_format
from pipelines.ingestion.schemas import IngestionLogTable
from pipelines.resources import (
    WAREHOUSE_POOL,
    CatalogResource,
    LandingZoneResource,
    WarehouseResource,
)
from pipelines.warehouse import sql


class IngestConfig(dg.Config):
    """Which files to ingest: `files` lists paths (the sensor's new files); None means every
    file now in the landing zone; [] means none (only re-process rejected events)."""

    files: list[str] | None = None
    reprocess_rejected: bool = True


def _selected_files(landing: LandingZoneResource, files: list[str] | None) -> list[LandedFile]:
    if files is None:
        return landed_files(landing.location)
    selected = []
    for path in files:
        fmt = file_format(path)
        if fmt is None:
            raise dg.Failure(description=f"{path}: not an event file (.jsonl, .ndjson, .gz, "
                                         f".csv, .parquet)")
        stat = Path(path).stat()
        selected.append(LandedFile(path, fmt, stat.st_size, stat.st_mtime_ns))
    return selected


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
    try:
        customers = list(catalog.load().customers)
    except CatalogError as exc:
        raise dg.Failure(description=str(exc)) from None
    now = settings.now()
    files = _selected_files(landing, config.files)
    with warehouse.writer() as con:
        prepare_session(con, customers, now)
        result = ingest_landed_files(con, files, now=now, run_id=context.run.run_id)
        reprocessed = (reprocess_rejected(con, now=now, run_id=context.run.run_id)
                       if config.reprocess_rejected else None)
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
        "files_failed": len(result.failed),
        **result.totals,
    }
    if reprocessed is not None:
        metadata["reprocessed_candidates"] = reprocessed.candidates
        metadata["reprocessed_accepted"] = reprocessed.accepted
    if result.failed:
        # the good files are committed; the bad ones stay in the landing zone for the next run
        raise dg.Failure(description="files that could not be read:\n" +
                         "\n".join(result.failed.values()), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=raw_events, blocking=True, pool=WAREHOUSE_POOL,
                description="Per file: received = accepted + duplicates + rejected, and the "
                            "counts equal the rows stored in raw.events and raw.rejected_events.")
def ingestion_counts_add_up(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = con.sql(sql("staging/ingestion_log_audit")).pl()
    return pandera_check(IngestionLogTable, frame.with_columns(
        pl.col(c).cast(pl.Int64) for c in ("received", "accepted", "duplicates", "rejected",
                                            "conflicts", "events_stored", "rejects_stored")))
