"""Measuring a billing month's usage: the periods its cuts close, aggregated in DuckDB."""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from pipelines.invoicing.month import Cut
from pipelines.rating.usage import (
    UsageBySubscription,
    UsagePeriod,
    aggregate_usage,
    register_periods,
    usage_mapping,
)
from pipelines.warehouse import run_sql, transaction


def measure_month(con: duckdb.DuckDBPyConnection, billing_month: str, cuts: list[Cut], *,
                  rated_at: datetime) -> pl.DataFrame:
    """Aggregate the usage of every period the month's cuts close and store it in
    billing.usage_quantities (replacing the month's earlier measurement)."""
    periods = [UsagePeriod.of(cut.subscription, cut.closing) for cut in cuts if cut.closing]
    register_periods(con, periods)
    frame = aggregate_usage(con)
    con.register("measured_usage_frame", frame.to_arrow())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE measured_usage AS "
                    "SELECT * FROM measured_usage_frame")
    finally:
        con.unregister("measured_usage_frame")
    try:
        with transaction(con):
            run_sql(con, "billing/usage_quantities_month",
                    {"billing_month": billing_month, "rated_at": rated_at})
    finally:
        con.execute("DROP TABLE IF EXISTS measured_usage")
    return frame


def stored_usage(con: duckdb.DuckDBPyConnection, billing_month: str) -> UsageBySubscription:
    """The month's stored usage, shaped for the rating library."""
    frame = con.sql("""
        SELECT subscription_id, meter_key, period_start, quantity
        FROM billing.usage_quantities WHERE billing_month = $month""",
        params={"month": billing_month}).pl()
    return usage_mapping(frame)
