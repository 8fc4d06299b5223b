"""The billing code location: every asset, check, job, schedule, sensor and resource, merged."""

from __future__ import annotations

import dagster as dg

from assets import catalog as catalog_assets
from assets import ingestion as ingestion_assets
from pipelines.jobs import ingest_events_job
from pipelines.resources import CatalogResource, LandingZoneResource, WarehouseResource
from pipelines.sensors import landing_zone_sensor

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([catalog_assets, ingestion_assets]),
    asset_checks=dg.load_asset_checks_from_modules([ingestion_assets]),
    jobs=[ingest_events_job],
    sensors=[landing_zone_sensor],
    resources={
        "warehouse": WarehouseResource(),
        "catalog": CatalogResource(),
        "landing": LandingZoneResource(),
    },
)
