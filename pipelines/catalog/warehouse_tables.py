"""The catalog as warehouse tables (`billing.*`), checked with pandera before they are written.

Finance and engineers query these tables; the rating SQL joins them. They are rebuilt from the
catalog's sources at every run (delete-then-insert in one transaction), so the warehouse never
drifts from the catalog users edit; a customer or subscription put through the integration API
shows its `source_version`, `changed_at` and `changed_by` (its history: the API's GET
.../versions).
"""

from __future__ import annotations

import json
from typing import Annotated

import duckdb
import pandera.polars as pa
import polars as pl
from babel.numbers import get_currency_precision

from pipelines.catalog.accounts import account_rows
from pipelines.catalog.loader import CatalogError
from pipelines.catalog.models import Catalog, SourceVersion, Tier
from pipelines.erasure.warehouse_erasure import erase_catalog_customers
from pipelines.warehouse import transaction

MONEY = pl.Decimal(38, 12)


class PlanTable(pa.DataFrameModel):
    """billing.plans: one row per plan."""

    plan_key: str = pa.Field(unique=True)
    name: str
    currency: str = pa.Field(str_matches=r"^[A-Z]{3}$")
    currency_minor_units: int = pa.Field(ge=0, le=4)
    billing_period: str = pa.Field(isin=["monthly", "quarterly", "yearly"])
    minimum_commitment: Annotated[pl.Decimal, 38, 12] = pa.Field(nullable=True, ge=0)
    source_file: str


class PriceTable(pa.DataFrameModel):
    """billing.prices: one row per plan price; fixed amounts must fit the currency's minor units."""

    plan_key: str
    price_key: str
    price_type: str = pa.Field(isin=["flat", "per_unit", "package", "tiered"])
    meter_key: str = pa.Field(nullable=True)
    cadence: str = pa.Field(isin=["in_advance", "in_arrears"])
    currency_minor_units: int
    amount: Annotated[pl.Decimal, 38, 12] = pa.Field(nullable=True, ge=0)
    unit_price: Annotated[pl.Decimal, 38, 12] = pa.Field(nullable=True, ge=0)
    included_units: Annotated[pl.Decimal, 38, 12] = pa.Field(ge=0)
    package_size: Annotated[pl.Decimal, 38, 12] = pa.Field(nullable=True, gt=0)
    package_price: Annotated[pl.Decimal, 38, 12] = pa.Field(nullable=True, ge=0)
    tier_mode: str = pa.Field(nullable=True, isin=["graduated", "volume"])
    tiers: str = pa.Field(nullable=True)

    class Config:
        unique = ("plan_key", "price_key")

    @pa.dataframe_check(error="a flat amount or package price has more decimals than the currency")
    def fixed_amounts_fit_minor_units(cls, data: pa.PolarsData) -> pl.LazyFrame:
        def fits(column: str) -> pl.Expr:
            # exact: the amount equals itself rounded to the currency's minor units
            rounded = pl.lit(None, dtype=MONEY)
            for units in range(5):
                rounded = pl.when(pl.col("currency_minor_units") == units).then(
                    pl.col(column).round(units)).otherwise(rounded)
            return pl.col(column).is_null() | (rounded == pl.col(column))
        return data.lazyframe.select(fits("amount") & fits("package_price"))

    @pa.dataframe_check(error="a usage price needs a meter and a flat price must not have one")
    def meter_matches_type(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("price_type") == "flat") == pl.col("meter_key").is_null())


class CustomerTable(pa.DataFrameModel):
    """billing.customers: one row per customer id that events carry."""

    customer_id: str = pa.Field(unique=True, str_length={"min_value": 1, "max_value": 255})
    name: str
    billing_profile: str = pa.Field(nullable=True)


class SubscriptionTable(pa.DataFrameModel):
    """billing.subscriptions: one row per subscription."""

    subscription_id: str = pa.Field(unique=True)
    customer_id: str
    plan_key: str
    billing_anchor: int = pa.Field(ge=1, le=31)
    collection_method: str = pa.Field(isin=["charge_automatically", "send_invoice"])
    days_until_due: int = pa.Field(nullable=True, ge=0)

    @pa.dataframe_check(error="end_date must be after start_date")
    def ends_after_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("end_date").is_null() | (pl.col("end_date") > pl.col("start_date")))


class AccountTable(pa.DataFrameModel):
    """billing.accounts: the chart of accounts, one row per role and scope (docs/accounting.md)."""

    role: str = pa.Field(isin=["receivable", "revenue", "deferred_revenue", "tax_payable",
                               "cash", "contra_revenue", "bad_debt"])
    plan_key: str = pa.Field(nullable=True)
    price_key: str = pa.Field(nullable=True)
    provider: str = pa.Field(nullable=True, isin=["stripe", "custom_invoicing", "none"])
    account: str = pa.Field(str_length={"min_value": 1, "max_value": 120})
    source_file: str = pa.Field(nullable=True)

    class Config:
        unique = ("role", "plan_key", "price_key", "provider")


def _tiers_json(tiers: tuple[Tier, ...]) -> str | None:
    if not tiers:
        return None
    return json.dumps([{"up_to": None if t.up_to is None else str(t.up_to),
                        "unit_price": str(t.unit_price), "flat_fee": str(t.flat_fee)}
                       for t in tiers])


VERSION_SCHEMA = {"source_version": pl.Int64, "changed_at": pl.Datetime("us", "UTC"),
                  "changed_by": pl.String}


def _version_columns(version: SourceVersion | None) -> dict[str, object]:
    """Which version of an entry put through the integration API the run used (finance sees
    it beside the entry); all None for the YAML and the bulk tables."""
    if version is None:
        return {"source_version": None, "changed_at": None, "changed_by": None}
    return {"source_version": version.version, "changed_at": version.changed_at,
            "changed_by": version.changed_by}


def catalog_frames(catalog: Catalog) -> dict[str, pl.DataFrame]:
    """The catalog as one polars frame per billing.* table."""
    meters = pl.DataFrame([{
        "meter_key": m.key, "event_name": m.event_name, "aggregation": m.aggregation,
        "value_property": m.value_property, "unique_property": m.unique_property,
        "filters": json.dumps(m.filters, sort_keys=True), "source_file": m.source_file,
    } for m in catalog.meters.values()], schema={
        "meter_key": pl.String, "event_name": pl.String, "aggregation": pl.String,
        "value_property": pl.String, "unique_property": pl.String, "filters": pl.String,
        "source_file": pl.String})
    plans = pl.DataFrame([{
        "plan_key": p.key, "name": p.name, "currency": p.currency,
        "currency_minor_units": get_currency_precision(p.currency),
        "billing_period": p.billing_period, "minimum_commitment": p.minimum_commitment,
        "source_file": p.source_file,
    } for p in catalog.plans.values()], schema={
        "plan_key": pl.String, "name": pl.String, "currency": pl.String,
        "currency_minor_units": pl.Int64, "billing_period": pl.String,
        "minimum_commitment": MONEY, "source_file": pl.String})
    prices = pl.DataFrame([{
        "plan_key": p.key, "price_key": price.key, "price_type": price.type,
        "meter_key": price.meter, "cadence": price.cadence,
        "currency_minor_units": get_currency_precision(p.currency),
        "amount": price.amount, "unit_price": price.unit_price,
        "included_units": price.included_units, "package_size": price.package_size,
        "package_price": price.package_price, "tier_mode": price.tier_mode,
        "tiers": _tiers_json(price.tiers), "description": price.description,
    } for p in catalog.plans.values() for price in p.prices], schema={
        "plan_key": pl.String, "price_key": pl.String, "price_type": pl.String,
        "meter_key": pl.String, "cadence": pl.String, "currency_minor_units": pl.Int64,
        "amount": MONEY, "unit_price": MONEY, "included_units": MONEY, "package_size": MONEY,
        "package_price": MONEY, "tier_mode": pl.String, "tiers": pl.String,
        "description": pl.String})
    customers = pl.DataFrame([{
        "customer_id": c.id, "name": c.name, "email": c.email,
        "billing_profile": c.billing_profile, "metadata": json.dumps(c.metadata, sort_keys=True),
        "source_file": c.source_file, **_version_columns(c.source_version),
    } for c in catalog.customers.values()], schema={
        "customer_id": pl.String, "name": pl.String, "email": pl.String,
        "billing_profile": pl.String, "metadata": pl.String, "source_file": pl.String,
        **VERSION_SCHEMA})
    subscriptions = pl.DataFrame([{
        "subscription_id": s.id, "customer_id": s.customer, "plan_key": s.plan,
        "start_date": s.start_date, "end_date": s.end_date, "billing_anchor": s.anchor_day,
        "collection_method": s.collection_method, "days_until_due": s.days_until_due,
        "discounts": json.dumps([{"type": d.type,
                                  "percent": None if d.percent is None else str(d.percent),
                                  "amount": None if d.amount is None else str(d.amount),
                                  "periods": d.periods} for d in s.discounts]),
        "source_file": s.source_file, **_version_columns(s.source_version),
    } for s in catalog.subscriptions.values()], schema={
        "subscription_id": pl.String, "customer_id": pl.String, "plan_key": pl.String,
        "start_date": pl.Date, "end_date": pl.Date, "billing_anchor": pl.Int64,
        "collection_method": pl.String, "days_until_due": pl.Int64, "discounts": pl.String,
        "source_file": pl.String, **VERSION_SCHEMA})
    profiles = pl.DataFrame([{
        "profile_key": p.key, "app": p.app, "is_default": p.default,
        "grace_period_seconds": int(p.grace_period.total_seconds()),
        "sync_sla_seconds": int(p.sync_sla.total_seconds()),
        "draft_sync_hook": p.draft_sync_hook, "issuing_sync_hook": p.issuing_sync_hook,
        "corrections": p.corrections,
        "auto_approve_corrections_up_to": p.auto_approve_corrections_up_to,
        "credit_note_refunds": p.credit_note_refunds, "source_file": p.source_file,
    } for p in catalog.billing_profiles.values()], schema={
        "profile_key": pl.String, "app": pl.String, "is_default": pl.Boolean,
        "grace_period_seconds": pl.Int64, "sync_sla_seconds": pl.Int64,
        "draft_sync_hook": pl.Boolean, "issuing_sync_hook": pl.Boolean,
        "corrections": pl.String, "auto_approve_corrections_up_to": pl.Decimal(38, 12),
        "credit_note_refunds": pl.Boolean, "source_file": pl.String})
    accounts = pl.DataFrame(account_rows(catalog.accounts), schema={
        "role": pl.String, "plan_key": pl.String, "price_key": pl.String,
        "provider": pl.String, "account": pl.String, "source_file": pl.String})
    personal = pl.DataFrame([{"property_path": path} for path in catalog.personal_properties],
                            schema={"property_path": pl.String})
    return {"meters": meters, "plans": plans, "prices": prices, "customers": customers,
            "subscriptions": subscriptions, "billing_profiles": profiles,
            "accounts": accounts, "personal_properties": personal}


TABLE_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "plans": PlanTable, "prices": PriceTable, "customers": CustomerTable,
    "subscriptions": SubscriptionTable, "accounts": AccountTable,
}
ENTRY_KEYS = {"plans": ("plan_key",), "prices": ("plan_key", "price_key"),
              "customers": ("customer_id",), "subscriptions": ("subscription_id",),
              "accounts": ("role", "plan_key", "price_key", "provider")}


def check_catalog_frames(frames: dict[str, pl.DataFrame]) -> None:
    """Run the pandera schemas; raise CatalogError naming the file, the entry and the fault."""
    faults: list[str] = []
    for table, model in TABLE_SCHEMAS.items():
        frame = frames[table]
        try:
            model.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            for case in exc.failure_cases.iter_rows(named=True):
                index = case.get("index")
                where = f"billing.{table}"
                if index is not None and 0 <= index < frame.height:
                    row = frame.row(index, named=True)
                    entry = ".".join(str(row[k]) for k in ENTRY_KEYS[table])
                    source = row.get("source_file") or frames["plans"].filter(
                        pl.col("plan_key") == row.get("plan_key"))["source_file"].first()
                    where = f"{source}: {table}[{entry}]"
                column = case.get("column") or "entry"
                faults.append(f"{where}.{column}: {case['check']} "
                              f"(got {case['failure_case']})")
    if faults:
        raise CatalogError(faults)


def write_catalog_tables(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                         warnings: list[str] | None = None) -> dict[str, int]:
    """Replace the billing.* catalog tables with the catalog, atomically; returns row counts.
    An erased customer is written pseudonymised whatever its source says; `warnings` gets a
    line per erased customer whose source still holds personal fields (section 11)."""
    frames = catalog_frames(catalog)
    check_catalog_frames(frames)
    frames["customers"], erased_left = erase_catalog_customers(con, frames["customers"])
    if warnings is not None:
        warnings.extend(erased_left)
    with transaction(con):
        for table, frame in frames.items():
            columns = [c for c in frame.columns if c != "currency_minor_units"]
            con.register("catalog_frame", frame.select(columns).to_arrow())
            con.execute(f"DELETE FROM billing.{table}")
            con.execute(f"INSERT INTO billing.{table} ({', '.join(columns)}) "
                        f"SELECT {', '.join(columns)} FROM catalog_frame")
            con.unregister("catalog_frame")
    return {table: frame.height for table, frame in frames.items()}
