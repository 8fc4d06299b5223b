"""The numbering of documents across customer shards (BILLING_SHARDS > 1), as a job of its own.

A shard issues invoices and credit notes without numbers: `billing run` numbers the month's
after its shards' runs, and documents issued elsewhere (a provider's invoice or credit note
issued during a shard's sync, a correction made by a reconciliation run) are numbered by this
job, which a run-status sensor launches after every successful run of any shard. The job reads
and writes every shard one at a time through `pipelines.invoicing.shard_numbering`: numbers in
the order of issue, gap-free per month, and a document once numbered is never numbered again,
so a job launched twice, or after a run that issued nothing, changes nothing."""


import dagster as dg

from pipelines.invoicing.shard_numbering import number_documents
from pipelines.jobs import BILLING_JOB, NUMBERING_JOB, RECONCILE_JOB, SYNC_JOB
from pipelines.sharding import warehouse_paths


@dg.op(description="Number every issued, unnumbered invoice and credit note of every shard, "
                   "in the order of issue, gap-free per billing month.")
def number_shard_documents(context: dg.OpExecutionContext) -> dg.Output[None]:
    done = number_documents(warehouse_paths())
    context.log.info(f"numbered {done.invoices} invoice(s), {done.credit_notes} credit note(s)")
    return dg.Output(None, metadata={"invoices_numbered": done.invoices,
                                     "credit_notes_numbered": done.credit_notes})


@dg.job(name=NUMBERING_JOB, tags={"billing/numbering": "ledger"},
        description="Number the documents the shards issued (customer shards only).")
def numbering_job():
    number_shard_documents()


NUMBERED_AFTER = (BILLING_JOB, SYNC_JOB, RECONCILE_JOB)
"""The jobs whose runs may issue documents: after each successful run, the numbering job."""


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, name="numbering_after_shard_runs",
                      request_job=numbering_job, monitor_all_code_locations=False,
                      minimum_interval_seconds=30,
                      description="After any shard's billing, sync or reconciliation run, "
                                  "number what it issued (customer shards only).")
def numbering_after_shard_runs(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    if context.dagster_run.job_name not in NUMBERED_AFTER:
        return None
    return dg.RunRequest(run_key=f"numbering-after-{context.dagster_run.run_id}")
