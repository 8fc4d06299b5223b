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

from pipelines import settings
from pipelines.catalog import Catalog, CatalogError
from pipelines.resources import CatalogResource

NOW_TAG = "billing/now"
"""Run tag holding the run's "now" as an ISO instant."""

BILLING_MONTHS = dg.MonthlyPartitionsDefinition(start_date="2025-01-01", end_offset=1)
"""The billing stage's partitions: the UTC month of the invoice boundary."""

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
    """'YYYY-MM' of the run's partition."""
    return context.partition_key[:7]


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
