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


def build_credit_note_reconciliation(con: duckdb.DuckDBPyConnection, *,
                                     now: datetime) -> dict[str, int]:
    """finance.credit_note_reconciliation; rows per match_status."""
    register_currency_digits(con)
    _rebuild(con, "finance/credit_note_reconciliation", now)
    return _counts(con, "finance.credit_note_reconciliation", "match_status")


def measure_current_usage(con: duckdb.DuckDBPyConnection) -> int:
    """Temp tables ``usage_billing_state`` (sql/finance/usage_billing_state.sql: how far each
    period's invoice and its corrections bill it), ``current_usage`` (the usage of every period
    in billing.usage_quantities aggregated again from raw.events as they are now, by the
    rating's own rules) and ``usage_events_after`` (per subscription, meter, period and ingestion
    cutoff, the events ingested after it). Returns the number of periods measured.

    The cutoffs of a period are the times its invoice's issued amounts, its latest rating and
    the rating its corrections bill up to were rated. The aggregation takes one cutoff per period
    at a time, so it runs once per cutoff of the period that has the most: once for the periods
    never corrected (all three are the same), a second (and third) time only over the periods
    whose invoice a later rating changed."""
    run_sql(con, "finance/usage_billing_state")
    periods = con.execute("""
        SELECT DISTINCT u.subscription_id, u.customer_id, s.plan_key, u.period_start,
               u.period_end
        FROM billing.usage_quantities u
        JOIN billing.subscriptions s USING (subscription_id)""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE usage_cutoffs AS
        SELECT subscription_id, period_start,
               list_sort(list_distinct(list(cutoff))) AS cutoffs
        FROM (SELECT subscription_id, period_start, unnest([issued_cutoff, latest_cutoff,
                                                            billed_cutoff]) AS cutoff
              FROM usage_billing_state)
        WHERE cutoff IS NOT NULL
        GROUP BY ALL""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE usage_events_after (
            subscription_id VARCHAR, meter_key VARCHAR, period_start DATE,
            cutoff TIMESTAMPTZ, events_after_cutoff BIGINT)""").fetchall()
    passes = con.execute("SELECT coalesce(max(len(cutoffs)), 0) FROM usage_cutoffs"
                         ).fetchall()[0][0]
    frame = pl.DataFrame(schema=USAGE_SCHEMA)
    for number in range(1, max(passes, 1) + 1):
        wanted = periods if number == 1 else [
            p for p in periods if (p[0], p[3]) in _periods_with_cutoffs(con, number)]
        if not wanted:
            break
        register_periods(con, wanted)
        con.execute("""
            UPDATE usage_periods p SET ingested_cutoff = c.cutoffs[$n]
            FROM usage_cutoffs c
            WHERE c.subscription_id = p.subscription_id
              AND CAST(p.period_start AS DATE) = c.period_start""", {"n": number}).fetchall()
        measured = aggregate_usage(con)
        if number == 1:
            frame = measured
        con.register("usage_pass_frame", measured.select(
            "subscription_id", "meter_key", "period_start", "events_after_cutoff").to_arrow())
        try:
            con.execute("""
                INSERT INTO usage_events_after
                SELECT f.subscription_id, f.meter_key, f.period_start, c.cutoffs[$n],
                       f.events_after_cutoff
                FROM usage_pass_frame f
                JOIN usage_cutoffs c
                  ON c.subscription_id = f.subscription_id AND c.period_start = f.period_start
                WHERE len(c.cutoffs) >= $n""", {"n": number}).fetchall()
        finally:
            con.unregister("usage_pass_frame")
    con.register("current_usage_frame", frame.select(
        "subscription_id", "meter_key", "period_start", "quantity", "events_counted",
        "events_after_cutoff").to_arrow())
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE current_usage AS "
                    "SELECT * FROM current_usage_frame").fetchall()
    finally:
        con.unregister("current_usage_frame")
    return len(periods)


def _periods_with_cutoffs(con: duckdb.DuckDBPyConnection, at_least: int) -> set[tuple]:
    """(subscription, period start) of the periods with at least `at_least` cutoffs."""
    return {(row[0], row[1]) for row in con.execute(
        "SELECT subscription_id, period_start FROM usage_cutoffs WHERE len(cutoffs) >= $n",
        {"n": at_least}).fetchall()}


def build_usage_reconciliation(con: duckdb.DuckDBPyConnection, *,
                               now: datetime) -> dict[str, int]:
    """finance.usage_reconciliation; rows per match_status."""
    measure_current_usage(con)
    run_sql(con, "money_macros")
    _rebuild(con, "finance/usage_reconciliation", now)
    for table in ("current_usage", "usage_events_after", "usage_cutoffs",
                  "usage_billing_state"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
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
