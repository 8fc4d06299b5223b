"""The journal's and the schedule's pandera models (blocking: they state money), and the
frames they check (sql/finance/journal_entry_balances.sql, receivable_by_customer.sql,
revenue_schedule_sums.sql)."""

from __future__ import annotations

from typing import Annotated

import duckdb
import pandera.polars as pa
import polars as pl

from pipelines.catalog.models import Accounts
from pipelines.warehouse import run_sql, sql


class EntryBalances(pa.DataFrameModel):
    """Every entry balances per currency: debits = credits, each line one-sided."""

    entry_id: str
    currency: str
    debits: Annotated[pl.Decimal, 38, 12] = pa.Field(ge=0)
    credits: Annotated[pl.Decimal, 38, 12] = pa.Field(ge=0)
    bad_lines: int = pa.Field(eq=0)
    foreign_lines: int = pa.Field(eq=0)

    class Config:
        unique = ("entry_id", "currency")

    @pa.dataframe_check(error="an entry's debits differ from its credits")
    def balances(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("debits") == pl.col("credits"))


class ReceivableByCustomer(pa.DataFrameModel):
    """The journal's receivable per customer and currency equals the open documents."""

    customer_id: str = pa.Field(nullable=True)
    currency: str
    journal_balance: Annotated[pl.Decimal, 38, 12]
    open_documents: Annotated[pl.Decimal, 38, 12]

    @pa.dataframe_check(error="receivable in the journal differs from the open documents")
    def matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("journal_balance") == pl.col("open_documents"))


class ScheduleSums(pa.DataFrameModel):
    """Each line's revenue schedule sums to the line exactly."""

    line_id: str = pa.Field(unique=True)
    scheduled: Annotated[pl.Decimal, 38, 12]
    line_amount: Annotated[pl.Decimal, 38, 12]
    line_amounts: int = pa.Field(eq=1)

    @pa.dataframe_check(error="a line's schedule does not sum to the line")
    def sums(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("scheduled") == pl.col("line_amount"))


def entry_balances(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(sql("finance/journal_entry_balances")).pl()


def receivable_by_customer(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    run_sql(con, "finance/provider_held")  # a temp view: also on a read-only connection
    return con.sql(sql("finance/receivable_by_customer"),
                   params={"default_receivable": Accounts().receivable}).pl()


def schedule_sums(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return con.sql(sql("finance/revenue_schedule_sums")).pl()

