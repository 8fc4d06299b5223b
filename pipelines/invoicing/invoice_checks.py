"""Pandera checks that guard invoice money; run as blocking asset checks."""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl

Money = Annotated[pl.Decimal, 38, 12]


class InvoiceTotals(pa.DataFrameModel):
    """Each invoice against its lines and its plan (sql/billing/invoice_audit.sql)."""

    invoice_id: str = pa.Field(unique=True)
    subscription_id: str
    boundary: str
    currency: str
    plan_currency: str = pa.Field(nullable=False)
    total: Money = pa.Field(ge=0)
    lines: int = pa.Field(ge=1)
    tax_total: Money = pa.Field(nullable=False)
    total_including_tax: Money = pa.Field(nullable=False, ge=0)

    class Config:
        unique = ("subscription_id", "boundary")   # at most one invoice per cut

    @pa.dataframe_check(error="total differs from the sum of the invoice's lines")
    def total_is_sum_of_lines(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("total") == pl.col("lines_total"))

    @pa.dataframe_check(error="subtotal differs from the sum of its non-discount lines")
    def subtotal_is_sum_of_charges(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("subtotal") == pl.col("lines_subtotal"))

    @pa.dataframe_check(error="total differs from subtotal - discount_total")
    def total_is_subtotal_less_discounts(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("total") == pl.col("subtotal") - pl.col("discount_total"))

    @pa.dataframe_check(error="tax_total differs from the sum of the lines' tax")
    def tax_total_is_sum_of_line_tax(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("tax_total") == pl.col("lines_tax_total"))

    @pa.dataframe_check(error="total_including_tax differs from total + the exclusive tax")
    def total_including_tax_adds_exclusive_tax(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("total_including_tax") == pl.col("total") + pl.col("lines_exclusive_tax"))

    @pa.dataframe_check(error="invoice currency differs from its plan's currency")
    def currency_is_plan_currency(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("currency") == pl.col("plan_currency"))


class TaxedLines(pa.DataFrameModel):
    """Each line's tax beside the tax computed again from its rate
    (sql/billing/invoice_line_tax_audit.sql, ``pipelines.rating.tax.line_tax``)."""

    line_id: str = pa.Field(unique=True)
    amount: Money
    tax_amount: Money = pa.Field(nullable=False)
    expected_tax: Money = pa.Field(nullable=False)
    invoice_rate: bool = pa.Field(isin=[True])  # every line of an invoice at the invoice's rate

    @pa.dataframe_check(error="line tax differs from its amount taxed at its rate, rounded once")
    def tax_is_recomputed_tax(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("tax_amount") == pl.col("expected_tax"))


class RepricedLines(pa.DataFrameModel):
    """Each usage line beside its price recomputed from the stored quantity."""

    line_id: str = pa.Field(unique=True)
    amount: Money
    expected_amount: Money = pa.Field(nullable=False)

    @pa.dataframe_check(error="line amount differs from its rounded price computation")
    def amount_is_rounded_price(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("amount") == pl.col("expected_amount"))


class CorrectionCoverage(pa.DataFrameModel):
    """Each line of an invoice past draft (sql/billing/correction_coverage.sql)."""

    invoice_id: str
    line_id: str
    rated_amount: Money
    issued_amount: Money
    corrected_amount: Money
    rejected_at_this_rating: bool

    @pa.dataframe_check(error="issued + corrections differ from the latest rating")
    def issued_plus_corrections_is_latest_rating(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            (pl.col("issued_amount") + pl.col("corrected_amount") == pl.col("rated_amount"))
            | pl.col("rejected_at_this_rating"))


class UsageCoverage(pa.DataFrameModel):
    """Each usage row of the month (sql/billing/usage_audit.sql)."""

    events_counted: int = pa.Field(ge=0)
    events_expected: int = pa.Field(ge=0)
    overlapping_periods: int = pa.Field(eq=0)

    @pa.dataframe_check(error="events counted differ from the events of the period")
    def every_event_counted_once(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("events_counted") == pl.col("events_expected"))
