"""Billing stage: usage measured and rated into invoices, by monthly partition.

The partition is the UTC month of the invoice boundary. A run rates the month's cuts that are
due by "now" (re-rating drafts in place), leaves issued invoices untouched, and issues drafts of
profiles without a provider app once their grace period is over.
"""

import dagster as dg

from pipelines.asset_checks import asset_check_result
from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.ingestion.shard_conflicts import require_identity_checked
from pipelines.invoicing import audit
from pipelines.invoicing.ledger import write_month
from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
from pipelines.invoicing.usage_measurement import measure_month, stored_usage
from pipelines.progress import log_progress
from pipelines.resources import WAREHOUSE_POOL, CatalogResource, WarehouseResource
from pipelines.run_context import (
    BILLING_MONTHS,
    catalog_or_fail,
    run_billing_month,
    run_now,
)


def identity_checked_or_fail() -> None:
    """A shard's billing refuses, by a failure naming the runs, while an ingestion run of any
    shard is not yet checked for event ids reused across shards (it would bill both copies)."""
    try:
        require_identity_checked()
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None


@dg.asset(
    key=["billing", "usage_quantities"],
    group_name="billing",
    partitions_def=BILLING_MONTHS,
    deps=[dg.AssetKey(["raw", "events"]), dg.AssetKey(["billing", "catalog"])],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Usage per subscription, meter and service period closed by the month's "
                "invoice cuts (zero usage included), measured from raw.events.",
)
def usage_quantities(context: dg.AssetExecutionContext, catalog: CatalogResource,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    if warehouse.shard is not None:
        # with customer shards, not before every shard's ingestion is identity-checked
        identity_checked_or_fail()
    month, now, loaded = run_billing_month(context), run_now(context), catalog_or_fail(catalog)
    cuts = due_cuts(loaded, month, now)
    with warehouse.writer() as con:
        # rating reads the catalog as it is now, so its tables are refreshed first
        write_catalog_tables(con, loaded)
        frame = measure_month(con, month, cuts, rated_at=now)
    log_progress(context.log, f"{month}: {frame.height:,} usage rows from "
                              f"{int(frame['events_counted'].sum() or 0):,} events, "
                              f"{len(cuts):,} cuts")
    return dg.MaterializeResult(metadata={
        "cuts_due": len(cuts),
        "usage_rows": frame.height,
        "events_counted": int(frame["events_counted"].sum() or 0),
        "now": now.isoformat(),
    })


@dg.asset(
    key=["billing", "invoices"],
    group_name="billing",
    partitions_def=BILLING_MONTHS,
    deps=[usage_quantities],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Invoices and lines of the month's cuts: drafts re-rated in place with the same "
                "ids, issued invoices never changed (differences recorded), drafts of profiles "
                "without a provider app issued with INV-YYYYMM-NNNNN numbers after the grace "
                "period.",
)
def invoices(context: dg.AssetExecutionContext, catalog: CatalogResource,
             warehouse: WarehouseResource) -> dg.MaterializeResult:
    if warehouse.shard is not None:
        identity_checked_or_fail()
    month, now, loaded = run_billing_month(context), run_now(context), catalog_or_fail(catalog)
    cuts = due_cuts(loaded, month, now)
    with warehouse.writer() as con:
        drafts = draft_invoices(loaded, cuts, stored_usage(con, month))
        update = write_month(con, month, drafts, loaded, now=now, run_id=context.run.run_id)
    context.log.info(f"{month}: {update}")
    return dg.MaterializeResult(metadata={
        "invoices_rated": update.rated, "drafts_written": update.written,
        "issued_untouched": update.frozen, "new_differences": update.differences,
        "drafts_discarded": update.discarded, "left_draft": update.left_draft,
        "corrections_proposed": update.corrections.proposed if update.corrections else 0,
        "corrections_pending_approval": update.corrections.pending if update.corrections else 0,
        "correction_documents": update.corrections.documents if update.corrections else 0,
        "credit_notes_issued": update.credit_notes_issued,
    })


@dg.asset_check(asset=invoices, blocking=True, pool=WAREHOUSE_POOL,
                description="Invoice total = sum of lines = subtotal - discounts; currency = "
                            "plan currency; at most one invoice per subscription and boundary; "
                            "each line's tax = its amount taxed again at its rate (the "
                            "invoice's), rounded once; tax_total = sum of the lines' tax; "
                            "total_including_tax = total + the exclusive tax.")
def invoice_totals_match_lines(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        return asset_check_result(audit.invoice_totals(con, run_billing_month(context)))


@dg.asset_check(asset=invoices, blocking=True, pool=WAREHOUSE_POOL,
                description="Each usage and flat line this run wrote equals its price computed "
                            "again (usage from the measured quantity, flat fees prorated by "
                            "days), rounded once to the currency's minor units.")
def lines_priced_exactly(context: dg.AssetCheckExecutionContext, catalog: CatalogResource,
                         warehouse: WarehouseResource) -> dg.AssetCheckResult:
    month, now, loaded = run_billing_month(context), run_now(context), catalog_or_fail(catalog)
    with warehouse.reader() as con:
        return asset_check_result(audit.lines_priced(con, loaded, month, now))


@dg.asset_check(asset=invoices, pool=WAREHOUSE_POOL,
                description="Warns while corrections of the month's issued invoices wait for "
                            "approval (billing corrections list): until someone decides, the "
                            "issued invoice and its corrections differ from the re-rating.")
def issued_invoices_match_rerating(context: dg.AssetCheckExecutionContext,
                                   warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        return asset_check_result(audit.issued_differences(con, run_billing_month(context)))


@dg.asset_check(asset=invoices, blocking=True, pool=WAREHOUSE_POOL,
                description="For every line of the month's invoices past draft: the issued "
                            "amount plus every correction not rejected equals the latest "
                            "rating, exactly (a delta a person rejected stands for itself).")
def corrections_cover_rerating(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        return asset_check_result(audit.corrections_cover(con, run_billing_month(context)))


@dg.asset_check(asset=usage_quantities, blocking=True, pool=WAREHOUSE_POOL,
                description="Every accepted event of a billed meter inside a closed period is "
                            "counted exactly once in the month's usage.")
def usage_counts_every_event_once(context: dg.AssetCheckExecutionContext,
                                  warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        return asset_check_result(audit.usage_coverage(con, run_billing_month(context)))
