"""Catalog stage: the YAML catalog, validated, as billing.* tables."""


import dagster as dg

from pipelines.catalog import CatalogError
from pipelines.catalog.tables import write_catalog_tables
from pipelines.resources import WAREHOUSE_POOL, CatalogResource, WarehouseResource


@dg.asset(
    key=["billing", "catalog"],
    group_name="catalog",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "yaml"},
    description="Meters, plans, prices, customers, subscriptions and billing profiles from the "
                "catalog folder, validated, as billing.* tables finance can query.",
)
def catalog_tables(context: dg.AssetExecutionContext, catalog: CatalogResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    try:
        loaded = catalog.load()
        with warehouse.writer() as con:
            counts = write_catalog_tables(con, loaded)
    except CatalogError as exc:
        raise dg.Failure(description=str(exc), metadata={"faults": len(exc.faults)}) from None
    context.log.info(f"catalog loaded from {catalog.location}: {counts}")
    return dg.MaterializeResult(metadata={f"{table}_rows": n for table, n in counts.items()})
