"""Sync stage: invoices of `stripe` profiles pushed to Stripe, Stripe's events pulled back.

Four steps of the sync job: `stripe_invoices` issues due invoices at Stripe (exactly once,
within the rate limit; supplementary invoices of corrections too), `stripe_corrections` issues
due credit notes there and voids what the ledger voided, `stripe_events` polls Stripe's events
and applies every stored one to invoice and credit note statuses, `stripe_invoice_snapshot`
keeps Stripe's view of our invoices and credit notes for reconciliation. A deployment without
Stripe work (no billing profile of app `stripe`, or one no invoice has used yet) skips them
without a key; with Stripe work and no key they fail saying what to set.
"""

import dagster as dg
import duckdb

from pipelines.providers.stripe_sync.client import StripeGateway
from pipelines.providers.stripe_sync.correction_outbound import run_corrections
from pipelines.providers.stripe_sync.inbound import (
    apply_provider_events,
    poll_events,
    read_cursor,
    record_provider_events,
    resolve_refund_invoices,
    write_cursor,
)
from pipelines.providers.stripe_sync.outbound import run_outbound
from pipelines.providers.stripe_sync.recording import (
    NOT_USED,
    AttemptCounts,
    recording_gateway,
    stripe_in_use,
)
from pipelines.providers.stripe_sync.resource import StripeNotConfigured, StripeResource
from pipelines.providers.stripe_sync.snapshot import (
    refresh_credit_note_snapshot,
    refresh_snapshot,
)
from pipelines.resources import WAREHOUSE_POOL, WarehouseResource
from pipelines.run_context import run_now
from pipelines.warehouse import transaction


def _skipped() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"skipped": NOT_USED})


def _require_key(stripe: StripeResource) -> None:
    """Stripe work is due: without a key the step fails saying what to set."""
    try:
        stripe.key()
    except StripeNotConfigured as exc:
        raise dg.Failure(description=str(exc)) from None


def _gateway(stripe: StripeResource, con: duckdb.DuckDBPyConnection,
             run_id: str) -> tuple[StripeGateway, AttemptCounts]:
    try:
        return recording_gateway(stripe.gateway, con, run_id)
    except StripeNotConfigured as exc:
        raise dg.Failure(description=str(exc)) from None


@dg.asset(
    key=["sync", "stripe_invoices"],
    group_name="sync",
    deps=[dg.AssetKey(["billing", "invoices"]), dg.AssetKey(["sync", "api_inbox"])],
    pool=WAREHOUSE_POOL,
    kinds={"stripe", "duckdb"},
    description="Invoices of `stripe` billing profiles that are due, issued at Stripe exactly "
                "once (customer, invoice, lines, finalize, send) and moved to "
                "payment_processing.pending; failures stay retryable in issuing.sync_failed.",
)
def stripe_invoices(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    stripe: StripeResource) -> dg.MaterializeResult:
    now = run_now(context)
    with warehouse.writer() as con:
        if not stripe_in_use(con):
            return _skipped()
        _require_key(stripe)
        summary = run_outbound(con, stripe.gateway, now=now, run_id=context.run.run_id,
                               max_concurrency=stripe.max_concurrency)
    for error in summary.errors[:20]:
        context.log.warning(f"stripe sync failed: {error}")
    return dg.MaterializeResult(metadata={
        "invoices_candidates": summary.candidates,
        "invoices_synced": summary.synced,
        "invoices_failed": summary.failed,
        "invoices_refused": summary.refused,
        "invoices_zero_total": summary.zero_total,
        "api_calls": summary.api_calls,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
    })


@dg.asset(
    key=["sync", "stripe_corrections"],
    group_name="sync",
    deps=[stripe_invoices],
    pool=WAREHOUSE_POOL,
    kinds={"stripe", "duckdb"},
    description="Corrections at Stripe, exactly once: due credit notes of `stripe` profiles "
                "become Stripe credit notes against the Stripe invoice (lines on Stripe's line "
                "items; unpaid: less due, paid: balance credit or refund per "
                "credit_note_refunds) and are numbered and issued; invoices the ledger voided "
                "are voided at Stripe. Failures stay retryable with an alert.",
)
def stripe_corrections(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       stripe: StripeResource) -> dg.MaterializeResult:
    now = run_now(context)
    with warehouse.writer() as con:
        if not stripe_in_use(con):
            return _skipped()
        _require_key(stripe)
        summary = run_corrections(con, stripe.gateway, now=now, run_id=context.run.run_id,
                                  max_concurrency=stripe.max_concurrency)
    for error in summary.errors[:20]:
        context.log.warning(f"stripe corrections sync failed: {error}")
    return dg.MaterializeResult(metadata={
        "credit_notes_candidates": summary.credit_notes_candidates,
        "credit_notes_issued": summary.credit_notes_issued,
        "credit_notes_failed": summary.credit_notes_failed,
        "voids_candidates": summary.voids_candidates,
        "voids_synced": summary.voids_synced,
        "voids_failed": summary.voids_failed,
        "api_calls": summary.api_calls,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
    })


@dg.asset(
    key=["sync", "stripe_events"],
    group_name="sync",
    deps=[stripe_invoices, stripe_corrections],
    pool=WAREHOUSE_POOL,
    kinds={"stripe", "duckdb"},
    description="Stripe's invoice, refund and credit note events polled since the stored "
                "cursor into sync.provider_events, then every unapplied Stripe event (polled or "
                "received by webhook) applied to invoice and credit note statuses in Stripe's "
                "order, never regressing.",
)
def stripe_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  stripe: StripeResource) -> dg.MaterializeResult:
    now = run_now(context)
    with warehouse.writer() as con:
        if not stripe_in_use(con):
            return _skipped()
        gateway, counts = _gateway(stripe, con, context.run.run_id)
        events, cursor = poll_events(gateway, read_cursor(con))
        with transaction(con):
            received = record_provider_events(con, "stripe", events, received_via="poll",
                                              now=now)
            if cursor:
                write_cursor(con, cursor, now=now)
        resolve_refund_invoices(con, gateway, now=now)
        outcomes = apply_provider_events(con, now=now)
    return dg.MaterializeResult(metadata={
        "events_polled": len(events),
        "events_received": received,
        "events_applied": outcomes.get("applied", 0),
        "events_already": outcomes.get("already", 0),
        "events_ignored": outcomes.get("ignored", 0),
        "events_recorded": outcomes.get("recorded", 0),
        "events_waiting": outcomes.get("waiting", 0),
        "events_not_ours": outcomes.get("not_billing", 0) + outcomes.get("unknown_invoice", 0),
        "api_calls": counts.api_calls,
        "retries": counts.retries,
        "rate_limited": counts.rate_limited,
    })


@dg.asset(
    key=["sync", "stripe_invoice_snapshot"],
    group_name="sync",
    deps=[stripe_events],
    pool=WAREHOUSE_POOL,
    kinds={"stripe", "duckdb"},
    description="Stripe's current view of our invoices and credit notes (status, totals in "
                "major units, lines) in sync.provider_invoices and sync.provider_credit_notes, "
                "for reconciliation with the ledger.",
)
def stripe_invoice_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            stripe: StripeResource) -> dg.MaterializeResult:
    now = run_now(context)
    with warehouse.writer() as con:
        if not stripe_in_use(con):
            return _skipped()
        gateway, counts = _gateway(stripe, con, context.run.run_id)
        rows = refresh_snapshot(con, gateway, now=now)
        credit_notes = refresh_credit_note_snapshot(con, gateway, now=now)
    return dg.MaterializeResult(metadata={
        "snapshot_rows": rows,
        "credit_note_snapshot_rows": credit_notes,
        "api_calls": counts.api_calls,
        "retries": counts.retries,
        "rate_limited": counts.rate_limited,
    })
