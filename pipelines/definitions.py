"""The billing code location: every asset, check, job, schedule, sensor and resource, merged.

The only module that imports `assets/`: the rest of the product reaches the assets through the
jobs (`pipelines.jobs`) and these definitions."""

from __future__ import annotations

import dagster as dg

from assets import accounting as accounting_assets
from assets import billing as billing_assets
from assets import catalog as catalog_assets
from assets import custom_invoicing as custom_invoicing_assets
from assets import event_identity, numbering
from assets import ingestion as ingestion_assets
from assets import notifications as notification_assets
from assets import reconciliation as reconciliation_assets
from assets import stripe_sync as stripe_sync_assets
from pipelines.jobs import (
    billing_run_job,
    ingest_events_job,
    reconcile_run_job,
    sync_run_job,
)
from pipelines.providers.stripe_sync.resource import StripeResource
from pipelines.resources import (
    ApiStoreResource,
    CatalogResource,
    LandingZoneResource,
    WarehouseResource,
)
from pipelines.run_context import SHARDS, shard_partitions
from pipelines.schedules import daily_billing_schedule, reconcile_schedule, sync_schedule
from pipelines.sensors import api_inbox_sensor, landing_zone_sensor

ASSET_MODULES_IN_STAGE_ORDER = [
    catalog_assets, ingestion_assets, billing_assets, custom_invoicing_assets,
    stripe_sync_assets, notification_assets, reconciliation_assets, accounting_assets,
]
"""Every module of `assets/`, in the order a month's data flows through them."""



def by_shard(assets: list) -> list:
    """With customer shards (BILLING_SHARDS > 1), every asset partitioned by shard: monthly ones
    by month x shard, the others by shard; one warehouse keeps the assets as declared."""
    if SHARDS is None:
        return assets
    return [asset.map_asset_specs(lambda spec: spec.replace_attributes(
                partitions_def=shard_partitions(spec.partitions_def)))
            if isinstance(asset, dg.AssetsDefinition) else asset for asset in assets]


NUMBERING_JOBS = [] if SHARDS is None else [numbering.numbering_job]
NUMBERING_SENSORS = [] if SHARDS is None else [numbering.numbering_after_shard_runs]
"""With customer shards, the job that numbers what the shards issued, and its sensor; one
warehouse numbers each document as it is issued."""

IDENTITY_JOBS = [] if SHARDS is None else [event_identity.identity_job]
IDENTITY_SENSORS = [] if SHARDS is None else [event_identity.identity_check_after_ingestion]
"""With customer shards, the job that checks event identities across the shards after their
ingestion, and its sensor; one warehouse checks identity as it ingests."""


defs = dg.Definitions(
    assets=by_shard(list(dg.load_assets_from_modules(ASSET_MODULES_IN_STAGE_ORDER))),
    asset_checks=dg.load_asset_checks_from_modules(ASSET_MODULES_IN_STAGE_ORDER),
    jobs=[ingest_events_job, billing_run_job, sync_run_job, reconcile_run_job,
          *NUMBERING_JOBS, *IDENTITY_JOBS],
    schedules=[daily_billing_schedule, sync_schedule, reconcile_schedule],
    sensors=[landing_zone_sensor, api_inbox_sensor, *NUMBERING_SENSORS, *IDENTITY_SENSORS],
    resources={
        "warehouse": WarehouseResource(),
        "catalog": CatalogResource(),
        "landing": LandingZoneResource(),
        "api_store": ApiStoreResource(),
        "stripe": StripeResource(),
    },
)
