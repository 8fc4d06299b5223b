"""Reconciliation stage: the ledger against the providers, usage against invoices, the
pipeline's health, and the alerts they call for (contract section 7).

Each table is one asset rebuilt whole at the run's "now", with a pandera check of what it
reports; the checks of the tables that state money (invoices, credit notes, payments,
receivables) are blocking. `health/alerts` opens and closes alerts from all of them; the
reconciliation job then announces new and closed alerts to the channels that subscribe to
`alert.opened` / `alert.resolved`. Provider snapshots are refreshed first in the same job
(`sync/stripe_invoice_snapshot`; custom invoicing statements arrive through `sync/api_inbox`).
"""

from collections.abc import Callable
from datetime import datetime

import dagster as dg
import pandera.polars as pa

from pipelines.alerts import open_alert_count
from pipelines.asset_checks import asset_check_result
from pipelines.checks import pandera_check
from pipelines.jobs import BILLING_JOB, INGEST_JOB, SYNC_JOB
from pipelines.reconciliation import table_builders, table_checks
from pipelines.reconciliation.alert_rules import refresh_alerts
from pipelines.resources import WAREHOUSE_POOL, WarehouseResource
from pipelines.run_context import run_now
from pipelines.run_history import failed_runs

GROUP = "reconciliation"
INVOICES = dg.AssetKey(["billing", "invoices"])
SNAPSHOTS = [dg.AssetKey(["sync", "stripe_invoice_snapshot"]), dg.AssetKey(["sync", "api_inbox"])]

TableBuilder = Callable[..., dict[str, int]]


def _table_asset(key: list[str], builder: TableBuilder, deps: list[dg.AssetKey], description: str,
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
            frame = con.sql(f"SELECT * FROM {table}").pl()
        return asset_check_result(pandera_check(model, frame))

    return build, check


invoice_reconciliation, invoice_reconciliation_schema = _table_asset(
    ["finance", "invoice_reconciliation"], table_builders.build_invoice_reconciliation,
    [INVOICES, *SNAPSHOTS],
    "Every ledger invoice meant for Stripe or the custom invoicing integration against the "
    "provider's latest snapshot (matched, missing, orphan, duplicate, amount, currency, line "
    "and status mismatches, pending sync), with ages and an SLA breach flag.",
    table_checks.InvoiceReconciliation, blocking=True,
    check_description="A matched invoice really matches (total, currency, lines, status); "
                      "an amount mismatch really differs; one row per invoice and provider.")

credit_note_reconciliation, credit_note_reconciliation_schema = _table_asset(
    ["finance", "credit_note_reconciliation"], table_builders.build_credit_note_reconciliation,
    [INVOICES, *SNAPSHOTS],
    "Every ledger credit note meant for Stripe or the custom invoicing integration against the "
    "provider's latest view of its credit notes (matched, missing, orphan, duplicate, amount, "
    "credited invoice and void mismatches, pending sync), with ages and an SLA breach flag.",
    table_checks.CreditNoteReconciliation, blocking=True,
    check_description="A matched credit note really matches (amount, currency, credited "
                      "invoice, voided or not); an amount mismatch really differs; one row per "
                      "credit note and provider.")

payment_reconciliation, payment_reconciliation_schema = _table_asset(
    ["finance", "payment_reconciliation"], table_builders.build_payment_reconciliation,
    [INVOICES, *SNAPSHOTS],
    "Payments and refunds seen at the providers against the ledger: paid there but open here, "
    "refunded but not flagged, amount paid other than due.",
    table_checks.PaymentReconciliation, blocking=True,
    check_description="A matched payment is for the total due; one row per invoice, "
                      "provider and kind.")

usage_reconciliation, usage_reconciliation_schema = _table_asset(
    ["finance", "usage_reconciliation"], table_builders.build_usage_reconciliation,
    [INVOICES, dg.AssetKey(["billing", "usage_quantities"]), dg.AssetKey(["raw", "events"])],
    "Per customer, meter and service period: events accepted now, quantity aggregated now, "
    "quantity rated and billed, and the late events an issued invoice did not bill.",
    table_checks.UsageReconciliation, blocking=False,
    check_description="Matched usage bills what was measured; unbilled events are among the "
                      "accepted ones.")

receivables_aging, receivables_aging_schema = _table_asset(
    ["finance", "receivables_aging"], table_builders.build_receivables_aging,
    [INVOICES, *SNAPSHOTS],
    "Open invoices by days past due (0-30, 31-60, 61-90, 90+), less what the provider shows "
    "paid.",
    table_checks.ReceivablesAging, blocking=True,
    check_description="Every open receivable is owed (> 0) and in the bucket of its days past "
                      "due.")

sync_health, sync_health_schema = _table_asset(
    ["health", "sync_health"], table_builders.build_sync_health,
    [dg.AssetKey(["sync", "stripe_invoices"]), *SNAPSHOTS],
    "Provider calls per day (attempts, succeeded, failed, retried, rate limited, p50/p95 "
    "latency) and the invoices waiting on each provider.",
    table_checks.SyncHealth, blocking=False,
    check_description="Attempts add up to succeeded + failed + retried; one row per provider "
                      "and day.")

pipeline_health, pipeline_health_schema = _table_asset(
    ["health", "pipeline_health"], table_builders.build_pipeline_health,
    [dg.AssetKey(["raw", "events"]), INVOICES],
    "The pipeline per day: files, events received, rejected and conflicting, late events, "
    "invoices stuck syncing, failed notification deliveries, payment errors.",
    table_checks.PipelineHealth, blocking=False,
    check_description="Received = accepted + duplicates + rejected every day; one row per day.")


@dg.asset(
    key=["health", "alerts"],
    group_name=GROUP,
    deps=[invoice_reconciliation, credit_note_reconciliation, payment_reconciliation,
          usage_reconciliation,
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
        open_now = open_alert_count(con)
    return dg.MaterializeResult(metadata={"alerts_opened": opened, "alerts_closed": closed,
                                          "alerts_open": open_now})

