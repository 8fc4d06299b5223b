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
from pydantic import Field, PrivateAttr

from pipelines import settings, sharding
from pipelines.catalog import Catalog, load_catalog
from pipelines.warehouse import connect_reader, connect_writer

if TYPE_CHECKING:
    from pipelines.api.store import ApiStore

WAREHOUSE_POOL: str | None = "warehouse" if settings.shard_count() == 1 else None
"""Concurrency pool of every step that works in the warehouse; dagster.yaml limits it to 1.
Steps that wait on the network are outside it and hold the writer lock only briefly. With
customer shards (BILLING_SHARDS > 1) a pool is no longer one file: Dagster's pools are named per
step definition, so the unit a worker owns is the shard's run instead (dagster.yaml's run queue:
one run per `billing/shard` value), and the lock beside each shard's file keeps one writer."""


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (`BILLING_WAREHOUSE`). All writes go through `writer()`."""

    path: str | None = Field(default=None, description="DuckDB file (default: BILLING_WAREHOUSE)")
    _shard: int | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run of one customer shard works in that shard's file (its partition or tag)."""
        run = context.run
        self._shard = sharding.run_shard(run.tags) if run is not None else None

    @property
    def location(self) -> str:
        """The file this run works in: the configured one, or its shard's beside it."""
        base = self.path or settings.warehouse_path()
        shards = settings.shard_count()
        if shards == 1 or self._shard is None:
            return base
        return sharding.shard_warehouse_path(base, self._shard, shards)

    @property
    def shard(self) -> int | None:
        """The customer shard of this run (None with one warehouse)."""
        return self._shard if settings.shard_count() > 1 else None

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

    _shard: int | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run of one customer shard sees only that shard's customers and subscriptions."""
        run = context.run
        self._shard = sharding.run_shard(run.tags) if run is not None else None

    @property
    def location(self) -> str:
        return self.path or settings.catalog_path()

    def load(self) -> Catalog:
        return sharding.catalog_of_shard(load_catalog(self.location), self._shard,
                                         settings.shard_count())


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
