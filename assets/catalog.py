"""Catalog stage: the catalog (YAML, bulk tables, the API's customers and subscriptions),
validated, as billing.* tables."""


import dagster as dg

from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.resources import WAREHOUSE_POOL, CatalogResource, WarehouseResource
from pipelines.run_context import catalog_faults_fail_the_step, catalog_or_fail


@dg.asset(
    key=["billing", "catalog"],
    group_name="catalog",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "yaml"},
    description="Meters, plans, prices, customers, subscriptions and billing profiles from the "
                "catalog folder (YAML, and the bulk tables it names) and the customers and "
                "subscriptions put through the integration API, validated, as billing.* tables "
                "finance can query.",
)
def catalog_tables(context: dg.AssetExecutionContext, catalog: CatalogResource,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    loaded = catalog_or_fail(catalog)
    warnings: list[str] = []
    with warehouse.writer() as con, catalog_faults_fail_the_step():
        counts = write_catalog_tables(con, loaded, warnings)
    for warning in warnings:      # an erased customer the user's files still name
        context.log.warning(warning)
    context.log.info(f"catalog loaded from {catalog.location}: {counts}")
    return dg.MaterializeResult(metadata={f"{table}_rows": n for table, n in counts.items()})
