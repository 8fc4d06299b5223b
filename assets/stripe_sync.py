"""Sync stage: invoices of `stripe` profiles pushed to Stripe, Stripe's events pulled back.

Four steps of the sync job: `stripe_invoices` issues due invoices at Stripe (exactly once,
within the rate limit; supplementary invoices of corrections too), `stripe_corrections` issues
due credit notes there and voids what the ledger voided, `stripe_events` polls Stripe's events
and applies every stored one to invoice and credit note statuses, `stripe_invoice_snapshot`
keeps Stripe's view of our invoices and credit notes for reconciliation. A deployment without
Stripe work (no billing profile of app `stripe`, or one no invoice has used yet) skips them
without a key; with Stripe work and no key they fail saying what to set. None of them holds
the warehouse while Stripe answers (`pipelines/providers/stripe_sync/recording.py`).
"""

import dagster as dg

from pipelines import settings
from pipelines.providers.stripe_sync.correction_outbound import run_corrections
from pipelines.providers.stripe_sync.event_poll import sync_events
from pipelines.providers.stripe_sync.outbound import run_outbound
from pipelines.providers.stripe_sync.recording import NOT_USED, stripe_in_use
from pipelines.providers.stripe_sync.resource import StripeNotConfigured, StripeResource
from pipelines.providers.stripe_sync.snapshot import refresh_snapshots
from pipelines.resources import WarehouseResource
from pipelines.run_context import run_now

STRIPE_POOL = "stripe" if settings.shard_count() == 1 else None
"""The Stripe steps' concurrency pool (dagster.yaml: one step at a time), so two runs never
sync the same invoices at once. They are not in the warehouse pool: they wait on Stripe, and a
warehouse slot held meanwhile would hold back every other warehouse step. They take the writer
themselves (the lock beside the file, which waits its turn) only for short sessions between
their calls, never while Stripe answers."""


def _skipped() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"skipped": NOT_USED})


def _has_stripe_work(warehouse: WarehouseResource, stripe: StripeResource) -> bool:
    """Whether the step has Stripe work; with work and no key it fails saying what to set."""
    if not stripe_in_use(warehouse.reader):
        return False
    try:
        stripe.key()
    except StripeNotConfigured as exc:
        raise dg.Failure(description=str(exc)) from None
    return True


@dg.asset(
    key=["sync", "stripe_invoices"],
    group_name="sync",
    deps=[dg.AssetKey(["billing", "invoices"]), dg.AssetKey(["sync", "api_inbox"])],
    pool=STRIPE_POOL,
    kinds={"stripe", "duckdb"},
    description="Invoices of `stripe` billing profiles that are due, issued at Stripe exactly "
                "once (customer, invoice, lines, finalize, send) and moved to "
                "payment_processing.pending; failures stay retryable in issuing.sync_failed. "
                "The warehouse is let go of while Stripe answers.",
)
def stripe_invoices(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    stripe: StripeResource) -> dg.MaterializeResult:
    if not _has_stripe_work(warehouse, stripe):
        return _skipped()
    summary = run_outbound(warehouse.writer, stripe.gateway, now=run_now(context),
                           run_id=context.run.run_id, max_concurrency=stripe.max_concurrency)
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
    pool=STRIPE_POOL,
    kinds={"stripe", "duckdb"},
    description="Corrections at Stripe, exactly once: due credit notes of `stripe` profiles "
                "become Stripe credit notes against the Stripe invoice (lines on Stripe's line "
                "items; unpaid: less due, paid: balance credit or refund per "
                "credit_note_refunds) and are numbered and issued; invoices the ledger voided "
                "are voided at Stripe. Failures stay retryable with an alert. The warehouse is "
                "let go of while Stripe answers.",
)
def stripe_corrections(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                       stripe: StripeResource) -> dg.MaterializeResult:
    if not _has_stripe_work(warehouse, stripe):
        return _skipped()
    summary = run_corrections(warehouse.writer, stripe.gateway, now=run_now(context),
                              run_id=context.run.run_id,
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
    pool=STRIPE_POOL,
    kinds={"stripe", "duckdb"},
    description="Stripe's invoice, refund and credit note events polled since the stored "
                "cursor into sync.provider_events, then every unapplied Stripe event (polled or "
                "received by webhook) applied to invoice and credit note statuses in Stripe's "
                "order, never regressing; an event about a Stripe object the sync did not map "
                "is recorded as not ours. The warehouse is let go of while Stripe answers.",
)
def stripe_events(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  stripe: StripeResource) -> dg.MaterializeResult:
    if not _has_stripe_work(warehouse, stripe):
        return _skipped()
    summary = sync_events(warehouse.writer, stripe.gateway, now=run_now(context),
                          run_id=context.run.run_id)
    outcomes = summary.outcomes
    return dg.MaterializeResult(metadata={
        "events_polled": summary.polled,
        "events_received": summary.received,
        "events_applied": outcomes.get("applied", 0),
        "events_already": outcomes.get("already", 0),
        "events_ignored": outcomes.get("ignored", 0),
        "events_recorded": outcomes.get("recorded", 0),
        "events_waiting": outcomes.get("waiting", 0),
        "events_not_ours": sum(outcomes.get(name, 0) for name in
                               ("not_ours", "not_billing", "unknown_invoice")),
        "api_calls": summary.api_calls,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
    })


@dg.asset(
    key=["sync", "stripe_invoice_snapshot"],
    group_name="sync",
    deps=[stripe_events],
    pool=STRIPE_POOL,
    kinds={"stripe", "duckdb"},
    description="Stripe's current view of our invoices and credit notes (status, totals in "
                "major units, lines) in sync.provider_invoices and sync.provider_credit_notes, "
                "for reconciliation with the ledger; ours by the sync's mapping. The warehouse "
                "is let go of while Stripe answers.",
)
def stripe_invoice_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                            stripe: StripeResource) -> dg.MaterializeResult:
    if not _has_stripe_work(warehouse, stripe):
        return _skipped()
    summary = refresh_snapshots(warehouse.writer, stripe.gateway, now=run_now(context),
                                run_id=context.run.run_id)
    return dg.MaterializeResult(metadata={
        "snapshot_rows": summary.invoices,
        "credit_note_snapshot_rows": summary.credit_notes,
        "api_calls": summary.api_calls,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
    })
