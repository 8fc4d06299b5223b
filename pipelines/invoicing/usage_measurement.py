"""Measuring usage in DuckDB: quantities per subscription, meter and service period (contract §3).

The rating library (`pipelines.rating.invoices.build_invoice`) takes usage as a mapping
``(meter_key, period_start) -> Decimal``. This module measures it from ``raw.events`` with one
set-based query, for any number of subscriptions and periods at once:

1. `register_periods` loads the service periods to measure into the temp table
   ``usage_periods`` (one row per subscription and period, UTC midnights, end exclusive);
2. `aggregate_usage` runs ``sql/billing/usage_functions.sql`` (macros),
   ``sql/billing/usage_meters.sql`` (the billed meters and the JSON paths they read) and
   ``sql/billing/usage_quantities.sql`` (one pass over ``raw.events``), returning one row per
   subscription x meter priced in its plan x period, zero usage included;
3. `usage_mapping` reshapes that frame for `build_invoice`, per subscription.

A billing run measures the periods its month's cuts close with `measure_month`, which stores
them in ``billing.usage_quantities``; `stored_usage` reads them back for rating.

The semantics (filters, subscription scoping, events without a value, ties of ``latest``,
exact decimals) are written down at the top of ``sql/billing/usage_quantities.sql``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from itertools import pairwise
from typing import NamedTuple

import duckdb
import polars as pl

from pipelines.catalog.models import Subscription
from pipelines.invoicing.month_cuts import InvoiceCut
from pipelines.rating.invoices import UsageBySubscription
from pipelines.rating.periods import ServicePeriod
from pipelines.warehouse import run_sql, sql, transaction

QUANTITY = pl.Decimal(38, 12)

USAGE_SCHEMA: dict[str, pl.DataType] = {
    "subscription_id": pl.String(),
    "customer_id": pl.String(),
    "meter_key": pl.String(),
    "aggregation": pl.String(),
    "period_start": pl.Date(),
    "period_end": pl.Date(),
    "quantity": QUANTITY,
    "events_counted": pl.Int64(),
    "events_without_value": pl.Int64(),
    "events_after_cutoff": pl.Int64(),
    "latest_source": pl.String(),
    "latest_event_id": pl.String(),
    "latest_timestamp": pl.Datetime("us", "UTC"),
}
"""Columns of `aggregate_usage`'s frame, in order."""


class UsagePeriod(NamedTuple):
    """One service period of one subscription to measure: [start, end) at UTC midnight."""

    subscription_id: str
    customer_id: str
    plan_key: str
    start: date
    end: date

    @classmethod
    def of(cls, subscription: Subscription, period: ServicePeriod) -> UsagePeriod:
        return cls(subscription.id, subscription.customer, subscription.plan,
                   period.start, period.end)


def _midnight(value: object, field: str) -> datetime:
    """A period bound as the UTC midnight it stands for."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{field} {value!r} has no UTC offset")
        moment = value.astimezone(UTC)
        if moment.time() != time(0):
            raise ValueError(f"{field} {value!r} is not a UTC midnight")
        return moment
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise TypeError(f"{field} must be a date, got {value!r}")


def _as_period(row: UsagePeriod | Sequence[object] | Mapping[str, object]) -> UsagePeriod:
    if isinstance(row, UsagePeriod):
        return row
    if isinstance(row, Mapping):
        return UsagePeriod(*(row[name] for name in UsagePeriod._fields))  # type: ignore[arg-type]
    return UsagePeriod(*row)  # type: ignore[arg-type]


def register_periods(con: duckdb.DuckDBPyConnection,
                     rows: Iterable[UsagePeriod | Sequence[object] | Mapping[str, object]]
                     ) -> int:
    """Load the periods to measure into temp table ``usage_periods``; returns its row count.

    Each row is a `UsagePeriod`, a ``(subscription_id, customer_id, plan_key, start, end)``
    sequence or a mapping with those keys; ``start``/``end`` are dates (or UTC-midnight
    datetimes), stored as TIMESTAMPTZ at UTC midnight, ``end`` exclusive. Replaces the table
    of an earlier call; repeated rows are kept once. Raises ValueError for a period that does
    not end after its start, or periods of one subscription that overlap (their events would
    be counted twice).
    """
    periods = [_as_period(row) for row in rows]
    starts = [_midnight(p.start, "start") for p in periods]
    ends = [_midnight(p.end, "end") for p in periods]
    spans: dict[str, set[tuple[datetime, datetime]]] = {}
    for period, start, end in zip(periods, starts, ends, strict=True):
        if end <= start:
            raise ValueError(f"period of {period.subscription_id} ends ({period.end}) "
                             f"before it starts ({period.start})")
        spans.setdefault(period.subscription_id, set()).add((start, end))
    for subscription_id, own in spans.items():
        ordered = sorted(own)
        for (_, end), (next_start, _) in pairwise(ordered):
            if next_start < end:
                raise ValueError(f"periods of {subscription_id} overlap: one runs to "
                                 f"{end.date()}, the next starts {next_start.date()}")
    stamp = pl.Datetime("us", "UTC")
    frame = pl.DataFrame({
        "subscription_id": [p.subscription_id for p in periods],
        "customer_id": [p.customer_id for p in periods],
        "plan_key": [p.plan_key for p in periods],
        "period_start": starts,
        "period_end": ends,
    }, schema={"subscription_id": pl.String, "customer_id": pl.String, "plan_key": pl.String,
               "period_start": stamp, "period_end": stamp})
    con.register("usage_periods_frame", frame.to_arrow())
    try:
        con.execute("""
            CREATE OR REPLACE TEMP TABLE usage_periods AS
            SELECT DISTINCT
                   CAST(subscription_id AS VARCHAR) AS subscription_id,
                   CAST(customer_id AS VARCHAR) AS customer_id,
                   CAST(plan_key AS VARCHAR) AS plan_key,
                   CAST(period_start AS TIMESTAMPTZ) AS period_start,
                   CAST(period_end AS TIMESTAMPTZ) AS period_end,
                   CAST(NULL AS TIMESTAMPTZ) AS ingested_cutoff
            FROM usage_periods_frame""").fetchall()
    finally:
        con.unregister("usage_periods_frame")
    return con.execute("SELECT count(*) FROM usage_periods").fetchall()[0][0]


def aggregate_usage(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Usage of every period in ``usage_periods`` for every meter priced in its plan.

    One row per (subscription_id, meter_key, period_start), zero usage included, with the
    columns of `USAGE_SCHEMA`: ``quantity`` is an exact DECIMAL(38, 12), ``events_counted``
    the events that matched the meter in the period, ``events_without_value`` those of them
    left out of a value aggregation (no numeric value, or no unique property), and
    ``latest_*`` the event a ``latest`` meter took. Reads ``raw.events`` and the catalog tables
    ``billing.meters`` and ``billing.prices``.
    """
    registered = con.execute("""
        SELECT count(*) FROM duckdb_tables()
        WHERE temporary AND table_name = 'usage_periods'""").fetchall()[0][0]
    if not registered:
        raise RuntimeError("no usage_periods on this connection: call register_periods first")
    run_sql(con, "billing/usage_functions")
    run_sql(con, "billing/usage_meters")
    paths, event_names, range_start, range_end = con.execute("""
        SELECT (SELECT paths FROM usage_paths),
               (SELECT coalesce(list(DISTINCT event_name ORDER BY event_name), [])
                FROM usage_meters),
               (SELECT min(period_start) FROM usage_periods),
               (SELECT max(period_end) FROM usage_periods)""").fetchall()[0]
    if range_start is None or not event_names:
        return pl.DataFrame(schema=USAGE_SCHEMA)
    frame = con.sql(sql("billing/usage_quantities"), params={
        "paths": list(paths), "event_names": list(event_names),
        "range_start": range_start, "range_end": range_end,
    }).pl()
    return frame.select([pl.col(name).cast(dtype) for name, dtype in USAGE_SCHEMA.items()])


def usage_mapping(frame: pl.DataFrame) -> UsageBySubscription:
    """`aggregate_usage`'s frame as ``{subscription_id: {(meter_key, period_start): quantity}}``,
    the shape `build_invoice` takes (per subscription)."""
    usage: UsageBySubscription = {}
    for subscription_id, meter_key, period_start, quantity in frame.select(
            "subscription_id", "meter_key", "period_start", "quantity").iter_rows():
        usage.setdefault(subscription_id, {})[(meter_key, period_start)] = quantity
    return usage


def measure_month(con: duckdb.DuckDBPyConnection, billing_month: str, cuts: list[InvoiceCut], *,
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
