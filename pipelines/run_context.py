"""What every step of a run agrees on: its "now", its billing month, and the catalog it reads.

A launcher (the `billing` CLI, a schedule, a test) pins the run's "now" in the `billing/now`
tag, so every step of the run agrees on which cycles have closed even when the run takes a
while. Billing runs are partitioned by month; a partition key is the month's first day.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import dagster as dg

from pipelines import settings, sharding
from pipelines.catalog import Catalog, CatalogError
from pipelines.resources import CatalogResource

NOW_TAG = "billing/now"
"""Run tag holding the run's "now" as an ISO instant."""

BILLING_MONTHS = dg.MonthlyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
"""The billing stage's partitions: the UTC month of the invoice boundary."""

SHARD_COUNT = settings.shard_count()
"""Customer shards the code location was loaded with (`BILLING_SHARDS`); 1 keeps one warehouse
and today's partitions."""

SHARDS: dg.StaticPartitionsDefinition | None = (
    dg.StaticPartitionsDefinition(sharding.shard_keys(SHARD_COUNT)) if SHARD_COUNT > 1 else None)
"""With shards, every stage's partitions: one per shard (the `shard` dimension)."""

MONTHS_BY_SHARD: dg.MultiPartitionsDefinition | None = (
    dg.MultiPartitionsDefinition({sharding.MONTH_DIMENSION: BILLING_MONTHS,
                                  sharding.SHARD_DIMENSION: SHARDS})
    if SHARDS is not None else None)
"""With shards, the billing stage's partitions: month x shard."""


def shard_partitions(partitions: dg.PartitionsDefinition | None) -> dg.PartitionsDefinition:
    """An asset's partitions with shards: monthly becomes month x shard, none becomes shard."""
    assert SHARDS is not None and MONTHS_BY_SHARD is not None
    return MONTHS_BY_SHARD if partitions == BILLING_MONTHS else SHARDS


def billing_partition_key(month: str, shard: int | None = None) -> str:
    """The billing stage's partition key of 'YYYY-MM' (and a shard, with shards)."""
    if shard is None:
        return month_partition(month)
    return dg.MultiPartitionKey({sharding.MONTH_DIMENSION: month_partition(month),
                                 sharding.SHARD_DIMENSION: str(shard)})


def shard_tags(shard: int | None) -> dict[str, str]:
    """The tag naming a run's shard (none with one warehouse)."""
    return {} if shard is None else {sharding.SHARD_TAG: str(shard)}


def run_shards() -> list[int | None]:
    """What a launcher runs for one stage: every shard, or the one warehouse (None)."""
    return list(range(SHARD_COUNT)) if SHARD_COUNT > 1 else [None]


StepContext = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def now_tags(now: datetime) -> dict[str, str]:
    """The tags that pin a run's "now"."""
    return {NOW_TAG: now.isoformat()}


def run_now(context: StepContext) -> datetime:
    """The run's "now": the tag the launcher pinned (CLI, schedule), else BILLING_NOW or the
    clock. Every step of a run then agrees on which cycles have closed."""
    tagged = context.run.tags.get(NOW_TAG)
    return settings.parse_instant(tagged) if tagged else settings.now()


def month_partition(month: str) -> str:
    """The partition key of billing month 'YYYY-MM' (Dagster's monthly keys are the first day)."""
    return f"{month}-01"


def run_billing_month(context: StepContext) -> str:
    """'YYYY-MM' of the run's partition (with shards, of its month dimension)."""
    key = context.partition_key
    if isinstance(key, dg.MultiPartitionKey):
        return key.keys_by_dimension[sharding.MONTH_DIMENSION][:7]
    return key[:7]


@contextmanager
def catalog_faults_fail_the_step() -> Iterator[None]:
    """A catalog that does not load or validate fails the step with its faults listed (file,
    entry, fault), without a stack trace."""
    try:
        yield
    except CatalogError as exc:
        raise dg.Failure(description=str(exc), metadata={"faults": len(exc.faults)}) from None


def catalog_or_fail(catalog: CatalogResource) -> Catalog:
    """The catalog, loaded and validated, or the step fails saying what is wrong in it."""
    with catalog_faults_fail_the_step():
        return catalog.load()
