"""Schedules: when billing runs without anyone asking."""

from datetime import datetime

import dagster as dg

from pipelines.jobs import BILLING_JOB, RECONCILE_JOB, SYNC_JOB
from pipelines.run_context import month_partition, now_tags


@dg.schedule(job_name=BILLING_JOB, cron_schedule="0 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily: rate the current month's cycles that closed so far and issue "
                         "drafts whose grace period is over.")
def daily_billing_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick: datetime = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=f"billing-{tick.strftime('%Y-%m-%d')}",
        partition_key=month_partition(tick.strftime("%Y-%m")),
        tags=now_tags(tick),
    )


@dg.schedule(job_name=SYNC_JOB, cron_schedule="*/15 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every 15 minutes: apply integration callbacks, push due invoices to "
                         "their providers, pull provider events, deliver due notifications.")
def sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick: datetime = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"sync-{tick.strftime('%Y-%m-%dT%H:%M')}",
                         tags=now_tags(tick))


@dg.schedule(job_name=RECONCILE_JOB, cron_schedule="5 * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Hourly: refresh provider snapshots, rebuild the reconciliation and "
                         "health tables, open and close alerts and announce them.")
def reconcile_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick: datetime = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"reconcile-{tick.strftime('%Y-%m-%dT%H')}",
                         tags=now_tags(tick))
