"""Event identity across customer shards (BILLING_SHARDS > 1), as a job of its own.

Each shard's ingestion deduplicates against its own file only, so an event id reused for
customers of two shards is accepted in both. This job, launched by a run-status sensor after
every successful ingestion run of any shard (landing sensor, UI, backfill) and run by `billing
ingest` after its shards, reads every shard through the finance view and moves the later copies
to their shard's rejects as conflicts, one shard's writer at a time
(`pipelines.ingestion.shard_conflicts`); it records the ingestion runs it covered, and billing
refuses to run while a run is not covered. Launched twice, it moves nothing the second time."""

import dagster as dg

from pipelines import settings
from pipelines.ingestion.shard_conflicts import check_event_identity
from pipelines.jobs import IDENTITY_JOB, INGEST_JOB
from pipelines.run_context import NOW_TAG


@dg.op(description="Reject as conflicts the later copies of every event identity accepted in "
                   "more than one customer shard, as one warehouse would have.")
def reject_reused_event_ids(context: dg.OpExecutionContext) -> dg.Output[None]:
    tagged = context.run.tags.get(NOW_TAG)
    now = settings.parse_instant(tagged) if tagged else settings.now()
    done = check_event_identity(now)
    context.log.info(f"{done.moved} later copies rejected as conflicts; "
                     f"{done.runs_checked} ingestion run(s) checked")
    return dg.Output(None, metadata={"conflicts_rejected": done.moved,
                                     "ingestion_runs_checked": done.runs_checked})


@dg.job(name=IDENTITY_JOB, tags={"billing/identity": "ledger"},
        description="Check event identities across the customer shards after their ingestion "
                    "(customer shards only).")
def identity_job():
    reject_reused_event_ids()


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS,
                      name="identity_check_after_ingestion", request_job=identity_job,
                      monitor_all_code_locations=False, minimum_interval_seconds=30,
                      description="After any shard's ingestion run, check event identities "
                                  "across the shards (customer shards only).")
def identity_check_after_ingestion(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    if context.dagster_run.job_name != INGEST_JOB:
        return None
    return dg.RunRequest(run_key=f"identity-after-{context.dagster_run.run_id}")
