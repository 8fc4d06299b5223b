"""Reconciliation stage: the ledger against the providers, usage against invoices, the
pipeline's health, and the alerts they call for (contract section 7).

Each table is one asset rebuilt whole at the run's "now", with a pandera check of what it
reports; the checks of the tables that state money (invoices, payments, receivables) are
blocking. `health/alerts` opens and closes alerts from all of them; the reconciliation job then
announces new and closed alerts to the channels that subscribe to `alert.opened` /
`alert.resolved`. Provider snapshots are refreshed first in the same job
(`sync/stripe_invoice_snapshot`; custom invoicing statements arrive through `sync/api_inbox`).
"""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pandera.polars as pa

from assets.billing import run_now
from pipelines.checks import pandera_check
from pipelines.jobs import BILLING_JOB, INGEST_JOB, SYNC_JOB
from pipelines.reconciliation import schemas, tables
from pipelines.reconciliation.alerts import FailedRun, refresh_alerts
from pipelines.resources import WAREHOUSE_POOL, WarehouseResource

GROUP = "reconciliation"
INVOICES = dg.AssetKey(["billing", "invoices"])
SNAPSHOTS = [dg.AssetKey(["sync", "stripe_invoice_snapshot"]), dg.AssetKey(["sync", "api_inbox"])]

Builder = Callable[..., dict[str, int]]


def _table_asset(key: list[str], builder: Builder, deps: list[dg.AssetKey], description: str,
                 model: type[pa.DataFrameModel], *, blocking: bool,
                 check_description: str) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    """One rebuilt table and the pandera check of its contents."""
    table = ".".join(key)

    @dg.asset(key=key, group_name=GROUP, deps=deps, pool=WAREHOUSE_POOL, kinds={"duckdb"},
              description=description)
    def build(context: dg.AssetExecutionContext,
              warehouse: WarehouseResource) -> dg.MaterializeResult:
        now: datetime = run_now(context)
        with warehouse.writer() as con:
            counts = builder(con, now=now)
        context.log.info(f"{table}: {counts}")
        return dg.MaterializeResult(metadata={
            "rows": sum(counts.values()),
            **{f"rows_{name}": n for name, n in counts.items()}})

    @dg.asset_check(asset=build, name=f"{key[-1]}_schema", blocking=blocking,
                    pool=WAREHOUSE_POOL, description=check_description)
    def check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.reader() as con:
            return pandera_check(model, con.sql(f"SELECT * FROM {table}").pl())

    return build, check


invoice_reconciliation, invoice_reconciliation_schema = _table_asset(
    ["finance", "invoice_reconciliation"], tables.build_invoice_reconciliation,
    [INVOICES, *SNAPSHOTS],
    "Every ledger invoice meant for Stripe or the custom invoicing integration against the "
    "provider's latest snapshot (matched, missing, orphan, duplicate, amount, currency, line "
    "and status mismatches, pending sync), with ages and an SLA breach flag.",
    schemas.InvoiceReconciliation, blocking=True,
    check_description="A matched invoice really matches (total, currency, lines, status); "
                      "an amount mismatch really differs; one row per invoice and provider.")

payment_reconciliation, payment_reconciliation_schema = _table_asset(
    ["finance", "payment_reconciliation"], tables.build_payment_reconciliation,
    [INVOICES, *SNAPSHOTS],
    "Payments and refunds seen at the providers against the ledger: paid there but open here, "
    "refunded but not flagged, amount paid other than due.",
    schemas.PaymentReconciliation, blocking=True,
    check_description="A matched payment is for the total due; one row per invoice, "
                      "provider and kind.")

usage_reconciliation, usage_reconciliation_schema = _table_asset(
    ["finance", "usage_reconciliation"], tables.build_usage_reconciliation,
    [INVOICES, dg.AssetKey(["billing", "usage_quantities"]), dg.AssetKey(["raw", "events"])],
    "Per customer, meter and service period: events accepted now, quantity aggregated now, "
    "quantity rated and billed, and the late events an issued invoice did not bill.",
    schemas.UsageReconciliation, blocking=False,
    check_description="Matched usage bills what was measured; unbilled events are among the "
                      "accepted ones.")

receivables_aging, receivables_aging_schema = _table_asset(
    ["finance", "receivables_aging"], tables.build_receivables_aging, [INVOICES, *SNAPSHOTS],
    "Open invoices by days past due (0-30, 31-60, 61-90, 90+), less what the provider shows "
    "paid.",
    schemas.ReceivablesAging, blocking=True,
    check_description="Every open receivable is owed (> 0) and in the bucket of its days past "
                      "due.")

sync_health, sync_health_schema = _table_asset(
    ["health", "sync_health"], tables.build_sync_health,
    [dg.AssetKey(["sync", "stripe_invoices"]), *SNAPSHOTS],
    "Provider calls per day (attempts, succeeded, failed, retried, rate limited, p50/p95 "
    "latency) and the invoices waiting on each provider.",
    schemas.SyncHealth, blocking=False,
    check_description="Attempts add up to succeeded + failed + retried; one row per provider "
                      "and day.")

pipeline_health, pipeline_health_schema = _table_asset(
    ["health", "pipeline_health"], tables.build_pipeline_health,
    [dg.AssetKey(["raw", "events"]), INVOICES],
    "The pipeline per day: files, events received, rejected and conflicting, late events, "
    "invoices stuck syncing, failed notification deliveries, payment errors.",
    schemas.PipelineHealth, blocking=False,
    check_description="Received = accepted + duplicates + rejected every day; one row per day.")


@dg.asset(
    key=["health", "alerts"],
    group_name=GROUP,
    deps=[invoice_reconciliation, payment_reconciliation, usage_reconciliation,
          receivables_aging, sync_health, pipeline_health],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Alerts opened for discrepancies and unhealthy conditions, closed when they are "
                "gone (health.alerts, history in health.alert_history).",
)
def alerts(context: dg.AssetExecutionContext,
           warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = run_now(context)
    failed = failed_runs(context.instance, (INGEST_JOB, BILLING_JOB, SYNC_JOB))
    with warehouse.writer() as con:
        opened, closed = refresh_alerts(con, now=now, failed_runs=failed)
        open_now = _open_alerts(con)
    return dg.MaterializeResult(metadata={"alerts_opened": opened, "alerts_closed": closed,
                                          "alerts_open": open_now})


FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
            dg.DagsterRunStatus.CANCELED]


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


def _open_alerts(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM health.alerts").fetchall()[0][0])
