"""Pandera checks that guard ingestion: nothing is silently dropped."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl


class EventCounts(pa.DataFrameModel):
    """Counts of event lines: every received line is accepted, a duplicate or rejected, and
    conflicts are rejected lines (raw.ingestion_log per file, health.pipeline_health per day)."""

    received: int = pa.Field(ge=0)
    accepted: int = pa.Field(ge=0)
    duplicates: int = pa.Field(ge=0)
    rejected: int = pa.Field(ge=0)
    conflicts: int = pa.Field(ge=0)

    @pa.dataframe_check(error="received != accepted + duplicates + rejected")
    def counts_add_up(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("received") == pl.col("accepted") + pl.col("duplicates") + pl.col("rejected"))

    @pa.dataframe_check(error="conflicts are part of rejected")
    def conflicts_within_rejected(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("conflicts") <= pl.col("rejected"))


class IngestionLogTable(EventCounts):
    """raw.ingestion_log joined with what the raw tables hold for each file's ingestion.

    `events_stored` and `rejects_stored` are counted in raw.events and raw.rejected_events
    (rows written by that ingestion), so the check ties the log to the data, not to itself.
    """

    file_id: str = pa.Field(unique=True, str_length=64)
    path: str
    events_stored: int = pa.Field(ge=0)
    rejects_stored: int = pa.Field(ge=0)

    @pa.dataframe_check(error="accepted differs from the events stored for the file")
    def accepted_are_stored(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("accepted") == pl.col("events_stored"))

    @pa.dataframe_check(error="rejected differs from the rejected lines kept for the file")
    def rejected_are_kept(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("rejected") == pl.col("rejects_stored"))
