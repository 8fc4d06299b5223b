"""Running the product's jobs as the CLI, the schedules and the sensors launch them: in process,
on a throwaway Dagster instance, with "now" pinned by the run's `billing/now` tag."""

from __future__ import annotations

import dagster as dg

from pipelines.jobs import BILLING_JOB, INGEST_JOB, SYNC_JOB
from pipelines.run_context import NOW_TAG


def run_job(name: str, now: str | None = None, *, partition: str | None = None,
            resources: dict[str, object] | None = None) -> dg.ExecuteInProcessResult:
    """One run of the code location's job `name`; a failing step fails the result, not the
    call, so a test can look at what failed."""
    from pipelines.definitions import defs

    with dg.instance_for_test() as instance:
        return defs.resolve_job_def(name).execute_in_process(
            partition_key=partition, tags={NOW_TAG: now} if now else None, instance=instance,
            raise_on_error=False, resources=resources)


def step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """The errors of the run's failed steps, as text."""
    return [e.event_specific_data.error.to_string() for e in result.all_events
            if e.is_step_failure]


def succeeded(result: dg.ExecuteInProcessResult) -> dg.ExecuteInProcessResult:
    """The result, once it is known to have succeeded (otherwise fail naming the errors)."""
    assert result.success, step_failures(result)
    return result


def materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Each materialized asset's metadata values, by asset key ("sync/stripe_invoices")."""
    return {m.asset_key.to_user_string(): {k: v.value for k, v in
                                          m.materialization.metadata.items()}
            for m in result.get_asset_materialization_events() if m.asset_key}


def ingest_landed(now: str | None = None) -> None:
    """The ingestion job over everything landed (catalog loaded first)."""
    succeeded(run_job(INGEST_JOB, now))


def run_billing(month: str, now: str) -> dg.ExecuteInProcessResult:
    """The billing job for a month (`YYYY-MM`): rates it and issues what is due."""
    return succeeded(run_job(BILLING_JOB, now, partition=f"{month}-01"))


def run_sync(now: str) -> dict[str, dict[str, object]]:
    """The sync job, as `billing sync`, the schedule and the inbox sensor launch it; returns
    each step's materialization metadata."""
    return materialized_metadata(succeeded(run_job(SYNC_JOB, now)))
