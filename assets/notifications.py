"""Notification stage: invoice events signed and delivered to the catalog's channels.

`notifications/events` turns new invoice status transitions into events (payload frozen, one
delivery per subscribed channel); `notifications/deliveries` sends what is due at the run's
"now", retrying with backoff over the following runs. Both run in the sync job, after the steps
that move invoices.
"""

import dagster as dg

from pipelines.notifications.delivery import deliver_due
from pipelines.notifications.events import enqueue_events
from pipelines.resources import WAREHOUSE_POOL, CatalogResource, WarehouseResource
from pipelines.run_context import catalog_or_fail, run_now
from pipelines.warehouse import transaction

# after the sync steps that move invoices, so their transitions are announced in the same run
SYNC_STEPS = [dg.AssetKey(["sync", "api_inbox"]), dg.AssetKey(["sync", "custom_invoicing"]),
              dg.AssetKey(["sync", "stripe_invoices"]), dg.AssetKey(["sync", "stripe_events"])]
# and after reconciliation's alerts, so the reconciliation job announces them in the same run
ALERTS = dg.AssetKey(["health", "alerts"])


@dg.asset(
    key=["notifications", "events"],
    group_name="notifications",
    deps=[dg.AssetKey(["billing", "invoices"]), *SYNC_STEPS, ALERTS],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Invoice events (invoice.created, invoice.issued, invoice.paid, ..., sync.failed) "
                "from billing.invoice_status_history, each once, with the invoice and its lines "
                "frozen in the payload; alert.opened / alert.resolved from health.alerts; a "
                "delivery per subscribed channel.",
)
def events(context: dg.AssetExecutionContext, catalog: CatalogResource,
           warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = run_now(context)
    loaded = catalog_or_fail(catalog)
    with warehouse.writer() as con, transaction(con):
        done = enqueue_events(con, loaded, now=now, run_id=context.run.run_id)
    context.log.info(f"notifications: {done}")
    return dg.MaterializeResult(metadata={"events_created": done.events,
                                          "deliveries_created": done.deliveries})


# Not in the warehouse pool: the step waits on receivers, and a pool slot held meanwhile would
# hold back every other warehouse step. It takes the writer itself (the lock beside the file,
# which waits its turn) only to claim what is due and to record, never while sending.
@dg.asset(
    key=["notifications", "deliveries"],
    group_name="notifications",
    deps=[events],
    kinds={"duckdb"},
    description="Due deliveries sent (Standard Webhooks signatures, 10 s deadline per request, "
                "channels in parallel, the warehouse let go of while sending), every attempt "
                "recorded; failures retried with growing backoff over hours, a channel that "
                "does not answer tried once per run, 410 Gone disables the channel, deliveries "
                "given up raise alerts.",
)
def deliveries(context: dg.AssetExecutionContext, catalog: CatalogResource,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
    now = run_now(context)
    loaded = catalog_or_fail(catalog)
    counts = deliver_due(warehouse.writer, loaded, now=now, run_id=context.run.run_id)
    context.log.info(f"notifications: {counts}")
    return dg.MaterializeResult(metadata={
        "attempted": counts.attempted, "delivered": counts.delivered, "failed": counts.failed,
        "retries_scheduled": counts.retries_scheduled, "skipped": counts.skipped,
        "deferred": counts.deferred, "channels_disabled": counts.channels_disabled,
        "left_for_next_run": counts.left_for_next_run})
