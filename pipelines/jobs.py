"""Jobs: what schedules, sensors and the `billing` CLI launch."""

from __future__ import annotations

import dagster as dg

INGEST_JOB = "ingest_events"

ingest_events_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.groups("catalog", "ingestion"),
    description="Load the catalog into billing.* and ingest landed usage event files into raw.*.",
)


def ingest_run_config(**config: object) -> dict[str, object]:
    """Run config of the ingestion job: `config` sets the `raw/events` step's `IngestConfig`
    (`files`, `reprocess_rejected`)."""
    return {"ops": {"raw__events": {"config": config}}}

BILLING_JOB = "billing_run"

billing_run_job = dg.define_asset_job(
    BILLING_JOB,
    selection=dg.AssetSelection.groups("billing"),
    description="Measure a billing month's usage, rate it into invoices and issue what is due.",
)

SYNC_JOB = "sync_run"

sync_run_job = dg.define_asset_job(
    SYNC_JOB,
    selection=dg.AssetSelection.groups("sync", "notifications"),
    description="Apply the integration API's inbox, push due invoices to Stripe and the custom "
                "invoicing hooks, pull Stripe's events back, and deliver due notifications.",
)

RECONCILE_JOB = "reconcile_run"

reconcile_run_job = dg.define_asset_job(
    RECONCILE_JOB,
    selection=(dg.AssetSelection.assets(["sync", "api_inbox"], ["sync", "stripe_invoice_snapshot"])
               | dg.AssetSelection.groups("reconciliation")
               | dg.AssetSelection.groups("accounting")
               | dg.AssetSelection.groups("notifications")),
    description="Refresh the providers' snapshots (Stripe's invoices, custom invoicing "
                "statements in the inbox), rebuild the reconciliation and health tables, post the "
                "journal and revenue recognition, open and close alerts, and announce them to "
                "the finance and operations channels.",
)

NUMBERING_JOB = "number_documents"
"""Customer shards only: numbers the documents the shards issued (assets/numbering.py: an op
job, not an asset job, since it works on every shard at once)."""

IDENTITY_JOB = "check_event_identity"
"""Customer shards only: rejects as conflicts the later copies of an event identity accepted in
two shards (assets/event_identity.py: an op job, since it reads every shard at once)."""
