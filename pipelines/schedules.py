"""Schedules: when billing runs without anyone asking."""

from datetime import datetime

import dagster as dg

from pipelines.jobs import BILLING_JOB, RECONCILE_JOB, SYNC_JOB
from pipelines.run_context import billing_partition_key, now_tags, run_shards, shard_tags

Requests = dg.RunRequest | list[dg.RunRequest]
"""One run with one warehouse; one per customer shard with shards."""

@dg.schedule(job_name=BILLING_JOB, cron_schedule="0 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily: rate the current month's cycles that closed so far and issue "
                         "drafts whose grace period is over.")
def daily_billing_schedule(context: dg.ScheduleEvaluationContext) -> Requests:
    """One run for the month, or with customer shards one per shard (month x shard)."""
    tick: datetime = context.scheduled_execution_time
    return _one_or_each([dg.RunRequest(
        run_key=f"billing-{tick.strftime('%Y-%m-%d')}" + _shard_suffix(shard),
        partition_key=billing_partition_key(tick.strftime("%Y-%m"), shard),
        tags={**now_tags(tick), **shard_tags(shard)},
    ) for shard in run_shards()])


def _shard_suffix(shard: int | None) -> str:
    return "" if shard is None else f"-shard-{shard}"


def _per_shard(run_key: str, tick: datetime) -> Requests:
    """The run, or with customer shards one per shard (its partition)."""
    return _one_or_each([dg.RunRequest(run_key=run_key + _shard_suffix(shard),
                                       partition_key=None if shard is None else str(shard),
                                       tags={**now_tags(tick), **shard_tags(shard)})
                         for shard in run_shards()])


def _one_or_each(requests: list[dg.RunRequest]) -> Requests:
    """One warehouse: its one request, as before shards; with shards, one per shard."""
    return requests[0] if len(requests) == 1 else requests


@dg.schedule(job_name=SYNC_JOB, cron_schedule="*/15 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 15 minutes: apply integration callbacks, push due invoices to "
                         "their providers, pull provider events, deliver due notifications.")
def sync_schedule(context: dg.ScheduleEvaluationContext) -> Requests:
    tick: datetime = context.scheduled_execution_time
    return _per_shard(f"sync-{tick.strftime('%Y-%m-%dT%H:%M')}", tick)


@dg.schedule(job_name=RECONCILE_JOB, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Hourly: refresh provider snapshots, rebuild the reconciliation and "
                         "health tables, open and close alerts and announce them.")
def reconcile_schedule(context: dg.ScheduleEvaluationContext) -> Requests:
    tick: datetime = context.scheduled_execution_time
    return _per_shard(f"reconcile-{tick.strftime('%Y-%m-%dT%H')}", tick)
