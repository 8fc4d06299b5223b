"""Launching a job of the code location in this process, as schedules and sensors launch it."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ShardRun:
    """What one run did, in plain data a worker process can send back: its id and each
    materialized asset's metadata values (by asset key, "billing/invoices")."""

    run_id: str
    metadata: dict[str, dict[str, object]]


def _summary(result: dg.ExecuteInProcessResult) -> ShardRun:
    return ShardRun(result.run_id, {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.materialization.metadata.items()}
        for m in result.get_asset_materialization_events() if m.asset_key})


def _run_one(job_name: str, run_config: dict[str, Any] | None, shard: int | None,
             month: str | None, tags: dict[str, str]) -> ShardRun:
    from pipelines.run_context import billing_partition_key, shard_tags

    if month is not None:
        partition: str | None = billing_partition_key(month, shard)
    else:
        partition = None if shard is None else str(shard)
    return _summary(run_job(job_name, run_config, partition_key=partition,
                            tags={**tags, **shard_tags(shard)}))


def run_every_shard(job_name: str, run_config: dict[str, Any] | None = None, *,
                    month: str | None = None,
                    tags: dict[str, str] | None = None) -> list[ShardRun]:
    """One run of the job per customer shard (one run with one warehouse): with N shards the
    runs are in parallel worker processes, each shard writing only its own file; any failed
    run exits non-zero once all are done. `month` ('YYYY-MM') for the monthly billing job."""
    from pipelines.run_context import run_shards

    shards = run_shards()
    if shards == [None]:
        return [_run_one(job_name, run_config, None, month, tags or {})]
    workers = min(len(shards), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_run_one, job_name, run_config, shard, month, tags or {})
                   for shard in shards]
        outcomes = [future.exception() for future in futures]
    failed = [(shard, error) for shard, error in zip(shards, outcomes, strict=True) if error]
    for shard, error in failed:
        # a worker's SystemExit carries no message of its own: its run already printed why
        if not isinstance(error, SystemExit):
            print(f"shard {shard}: {type(error).__name__}: {error}", file=sys.stderr)
    if failed:
        raise SystemExit(1)
    return [future.result() for future in futures]


def run_every_shard_numbered(job_name: str, run_config: dict[str, Any] | None = None, *,
                             month: str | None = None,
                             tags: dict[str, str] | None = None) -> list[ShardRun]:
    """`run_every_shard`, then, with shards, the numbering step: the documents the runs issued
    (invoices of a billing run, provider documents of a sync, correction documents of a
    reconciliation) get their gap-free numbers before the command prints them."""
    from pipelines.invoicing.shard_numbering import number_documents, numbering_deferred
    from pipelines.sharding import warehouse_paths

    runs = run_every_shard(job_name, run_config, month=month, tags=tags)
    if numbering_deferred():
        number_documents(warehouse_paths())
    return runs
