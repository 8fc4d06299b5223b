"""What Dagster's run history says: how a launched run ended, and which jobs last failed.

Sensors read it to launch a failed run again; the reconciliation reads it to raise an alert for
a job whose latest run failed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from pipelines.reconciliation.alert_rules import FailedRun

FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
FINISHED = [dg.DagsterRunStatus.SUCCESS, *FAILED]


def run_status(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRunStatus | None:
    """The status of the latest run launched with `run_key`, None if none was."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    return runs[0].status if runs else None


def failed_runs(instance: dg.DagsterInstance, job_names: tuple[str, ...]) -> list[FailedRun]:
    """The jobs whose latest finished run failed (or was canceled), with why."""
    failed = []
    for job_name in job_names:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=FINISHED),
                                 limit=1)
        if not runs or runs[0].status == dg.DagsterRunStatus.SUCCESS:
            continue
        run = runs[0]
        record = instance.get_run_record_by_id(run.run_id)
        ended = (datetime.fromtimestamp(record.end_time, UTC)
                 if record is not None and record.end_time else None)
        steps = [event.dagster_event.step_key for event in instance.all_logs(
                     run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
                 if event.dagster_event is not None]
        message = (f"steps failed: {', '.join(s for s in steps if s)}" if steps
                   else f"run {run.status.value.lower()}")
        failed.append(FailedRun(job_name, run.run_id, ended, message))
    return failed
