"""Sync stage: the integration API's inbox and the custom invoicing hooks.

`sync/api_inbox` applies the calls the integration API accepted (custom invoicing callbacks,
Stripe webhook events), in arrival order. `sync/custom_invoicing` moves custom invoicing invoices
and credit notes on (sync requests, issuing without the hook), raises alerts for documents
waiting past their SLA, and publishes the invoices and credit notes integrations may act on into
the API's store.
"""

import dagster as dg

from pipelines import settings
from pipelines.custom_invoicing.api_publication import publish_to_api_store
from pipelines.custom_invoicing.inbox import apply_inbox
from pipelines.custom_invoicing.invoice_progress import advance_invoices
from pipelines.resources import (
    WAREHOUSE_POOL,
    ApiStoreResource,
    CatalogResource,
    WarehouseResource,
)
from pipelines.run_context import catalog_or_fail, run_now
from pipelines.warehouse import transaction


@dg.asset(
    key=["sync", "api_inbox"],
    group_name="sync",
    deps=[dg.AssetKey(["billing", "invoices"])],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "sqlite"},
    description="Calls the integration API accepted (custom invoicing callbacks, draft "
                "adjustments, Stripe webhooks), applied to the warehouse in arrival order; each "
                "marked applied or rejected with its reason in the API's store.",
)
def api_inbox(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
              api_store: ApiStoreResource, catalog: CatalogResource) -> dg.MaterializeResult:
    now = run_now(context)
    store = api_store.open()
    with warehouse.writer() as con:
        # the catalog is loaded only if a draft adjustment needs pricing
        update = apply_inbox(con, store, now=now, catalog=lambda: catalog_or_fail(catalog),
                             shard=warehouse.shard, shards=settings.shard_count())
    context.log.info(f"inbox: {update}")
    return dg.MaterializeResult(metadata={
        "items_applied": update.applied, "items_rejected": update.rejected,
        "stripe_webhook_events": update.stripe_events,
    })


@dg.asset(
    key=["sync", "custom_invoicing"],
    group_name="sync",
    deps=[api_inbox],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "sqlite"},
    description="Custom invoicing invoices and credit notes moved on (sync requested when the "
                "profile's hook is on, else issued), SLA alerts for documents waiting on the "
                "integration, and the invoices and credit notes published to the API's store.",
)
def custom_invoicing(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     api_store: ApiStoreResource) -> dg.MaterializeResult:
    now = run_now(context)
    store = api_store.open()
    with warehouse.writer() as con:
        with transaction(con):
            update = advance_invoices(con, now=now)
        published = publish_to_api_store(con, store, shard=warehouse.shard,
                                         shards=settings.shard_count())
    context.log.info(f"custom invoicing: {update}")
    notes = update.credit_notes
    return dg.MaterializeResult(metadata={
        "issuing_sync_requested": update.sync_requested,
        "issued_without_hook": update.issued,
        "waiting_for_integration": update.waiting,
        "sla_alerts_opened": update.alerts_opened,
        "sla_alerts_closed": update.alerts_closed,
        "documents_published": published,   # invoices and credit notes
        "credit_notes_sync_requested": notes.sync_requested,
        "credit_notes_issued": notes.issued,
        "credit_notes_waiting": notes.waiting,
    })
