"""Building the reconciliation and health tables (contract section 7), each rebuilt whole from
the ledger, the providers' latest snapshots and the pipeline's own records.

Every builder runs its SQL file (sql/finance/*, sql/health/*) in one transaction and returns
the table's row count per match status (or per bucket), for run metadata and the CLI summary.
A discrepancy is a row, never an exception.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

from pipelines.invoicing.usage_measurement import USAGE_SCHEMA, aggregate_usage, register_periods
from pipelines.warehouse import register_currency_digits, run_sql, transaction


def _rebuild(con: duckdb.DuckDBPyConnection, name: str, now: datetime) -> None:
    run_sql(con, "finance/provider_held")
    with transaction(con):
        run_sql(con, name, {"now": now})


def _counts(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    rows = con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY ALL "
                       f"ORDER BY {column}").fetchall()
    return {str(key): int(n) for key, n in rows}


def build_invoice_reconciliation(con: duckdb.DuckDBPyConnection, *,
                                 now: datetime) -> dict[str, int]:
    """finance.invoice_reconciliation; rows per match_status."""
    register_currency_digits(con)
    _rebuild(con, "finance/invoice_reconciliation", now)
    return _counts(con, "finance.invoice_reconciliation", "match_status")


def build_payment_reconciliation(con: duckdb.DuckDBPyConnection, *,
                                 now: datetime) -> dict[str, int]:
    """finance.payment_reconciliation; rows per match_status."""
    register_currency_digits(con)
    _rebuild(con, "finance/payment_reconciliation", now)
    return _counts(con, "finance.payment_reconciliation", "match_status")


def measure_current_usage(con: duckdb.DuckDBPyConnection) -> int:
    """Temp table ``current_usage``: the usage of every period in billing.usage_quantities
    aggregated again from raw.events as they are now, by the rating's own rules, with the
    events ingested after an issued invoice was rated counted apart (events_after_cutoff).
    Returns the number of periods measured."""
    periods = con.execute("""
        SELECT DISTINCT u.subscription_id, u.customer_id, s.plan_key, u.period_start,
               u.period_end
        FROM billing.usage_quantities u
        JOIN billing.subscriptions s USING (subscription_id)""").fetchall()
    if periods:
        register_periods(con, periods)
        # an issued invoice's usage was measured when it was rated: later events missed it
        con.execute("""
            UPDATE usage_periods p SET ingested_cutoff = c.rated_at
            FROM (SELECT DISTINCT u.subscription_id, u.period_start, i.rated_at
                  FROM billing.usage_quantities u
                  JOIN billing.invoices i
                    ON i.subscription_id = u.subscription_id
                   AND i.billing_month = u.billing_month
                  WHERE i.issued_at IS NOT NULL) c
            WHERE c.subscription_id = p.subscription_id
              AND CAST(p.period_start AS DATE) = c.period_start""").fetchall()
        frame = aggregate_usage(con)
    else:
        frame = pl.DataFrame(schema=USAGE_SCHEMA)
    con.register("current_usage_frame", frame.select(
        "subscription_id", "meter_key", "period_start", "quantity", "events_counted",
        "events_after_cutoff").to_arrow())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE current_usage AS "
                    "SELECT * FROM current_usage_frame").fetchall()
    finally:
        con.unregister("current_usage_frame")
    return len(periods)


def build_usage_reconciliation(con: duckdb.DuckDBPyConnection, *,
                               now: datetime) -> dict[str, int]:
    """finance.usage_reconciliation; rows per match_status."""
    measure_current_usage(con)
    run_sql(con, "money_macros")
    _rebuild(con, "finance/usage_reconciliation", now)
    con.execute("DROP TABLE IF EXISTS current_usage")
    return _counts(con, "finance.usage_reconciliation", "match_status")


def build_receivables_aging(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """finance.receivables_aging; open invoices per aging bucket."""
    _rebuild(con, "finance/receivables_aging", now)
    return _counts(con, "finance.receivables_aging", "aging_bucket")


def build_sync_health(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """health.sync_health; days per provider."""
    _rebuild(con, "health/sync_health", now)
    return _counts(con, "health.sync_health", "provider")


def build_pipeline_health(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """health.pipeline_health; {"days": n}."""
    _rebuild(con, "health/pipeline_health", now)
    return {"days": int(con.execute(
        "SELECT count(*) FROM health.pipeline_health").fetchall()[0][0])}
