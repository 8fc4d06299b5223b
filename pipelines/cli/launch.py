"""Launching a job of the code location in this process, as schedules and sensors launch it."""

from __future__ import annotations

import os
import sys
from typing import Any

import dagster as dg


def _instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set (runs are kept), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_job(job_name: str, run_config: dict[str, Any] | None = None, *,
            partition_key: str | None = None,
            tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """Execute a job of the code location in process; a failed run exits non-zero."""
    from pipelines.definitions import defs
    from pipelines.progress import progress_logger

    job = defs.resolve_job_def(job_name)
    job = job.with_logger_defs({**job.loggers, "progress": progress_logger})
    with _instance() as instance:
        loggers = {"console": {"config": {"log_level": "WARNING"}}, "progress": {}}
        result = job.execute_in_process(run_config={"loggers": loggers, **(run_config or {})},
                                        instance=instance, raise_on_error=False,
                                        partition_key=partition_key, tags=tags)
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                failure = event.event_specific_data
                error = getattr(failure, "error", None)
                message = error.message.strip() if error else str(event.message)
                print(f"error in {event.step_key}: {message}", file=sys.stderr)
        raise SystemExit(1)
    return result
