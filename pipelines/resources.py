"""Dagster resources: the warehouse (the one route for writes) and the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field

from pipelines import settings
from pipelines.catalog import Catalog, load_catalog
from pipelines.warehouse import connect_reader, connect_writer

WAREHOUSE_POOL = "warehouse"
"""Concurrency pool of every step that writes the warehouse; dagster.yaml limits it to 1."""


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (`BILLING_WAREHOUSE`). All writes go through `writer()`."""

    path: str = Field(default_factory=settings.warehouse_path,
                      description="DuckDB file of the warehouse")

    @contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_writer(self.path) as con:
            yield con

    @contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect_reader(self.path) as con:
            yield con


class CatalogResource(dg.ConfigurableResource):
    """The catalog folder (`BILLING_CATALOG`), parsed and validated on use."""

    path: str = Field(default_factory=settings.catalog_path,
                      description="folder (or file) of catalog YAML")

    def load(self) -> Catalog:
        return load_catalog(self.path)


class LandingZoneResource(dg.ConfigurableResource):
    """The folder where usage event files land (`BILLING_LANDING`)."""

    path: str = Field(default_factory=settings.landing_path,
                      description="landing folder of usage event files")
