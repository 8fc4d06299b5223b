"""Dagster resources: the warehouse (the one route for writes), the catalog, the landing zone and
the integration API's store.

Paths left unset are read from the environment (contract section 8) when used, not when the
code location is imported, so one process can serve runs with different settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
from pydantic import Field

from pipelines import settings
from pipelines.catalog import Catalog, load_catalog
from pipelines.warehouse import connect_reader, connect_writer

if TYPE_CHECKING:
    from pipelines.api.store import ApiStore

WAREHOUSE_POOL = "warehouse"
"""Concurrency pool of every step that works in the warehouse; dagster.yaml limits it to 1.
Steps that wait on the network are outside it and hold the writer lock only briefly."""


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (`BILLING_WAREHOUSE`). All writes go through `writer()`."""

    path: str | None = Field(default=None, description="DuckDB file (default: BILLING_WAREHOUSE)")

    @property
    def location(self) -> str:
        return self.path or settings.warehouse_path()

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_writer(self.location) as con:
            yield con

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_reader(self.location) as con:
            yield con


class CatalogResource(dg.ConfigurableResource):
    """The catalog folder (`BILLING_CATALOG`), parsed and validated on use."""

    path: str | None = Field(default=None, description="catalog folder (default: BILLING_CATALOG)")

    @property
    def location(self) -> str:
        return self.path or settings.catalog_path()

    def load(self) -> Catalog:
        return load_catalog(self.location)


class LandingZoneResource(dg.ConfigurableResource):
    """The folder where usage event files land (`BILLING_LANDING`)."""

    path: str | None = Field(default=None, description="landing folder (default: BILLING_LANDING)")

    @property
    def location(self) -> str:
        return self.path or settings.landing_path()


class ApiStoreResource(dg.ConfigurableResource):
    """The integration API's embedded store (`BILLING_API_STORE`): its inbox of accepted calls
    and the invoices the pipeline publishes for it. Never the warehouse."""

    path: str | None = Field(default=None,
                             description="SQLite file (default: BILLING_API_STORE, else beside "
                                         "the warehouse)")

    @property
    def location(self) -> str:
        return self.path or settings.api_store_path()

    def open(self) -> ApiStore:
        from pipelines.api.store import ApiStore

        return ApiStore(self.location)
