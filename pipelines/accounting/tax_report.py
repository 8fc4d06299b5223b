"""finance.tax_report: tax per period x jurisdiction x rate x currency (contract section 10,
docs/tax.md), from issued invoices less issued credit notes, and its blocking check: every line
behind a row taxed again from its rate (``pipelines.rating.tax``) and summed must give the row.

The SQL is sql/finance/tax_report.sql (it also keeps the lines it sums, finance.tax_report_lines);
the asset is ``finance/tax_report`` in the ``accounting`` group (assets/accounting.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import duckdb
import pandera.polars as pa
import polars as pl

from pipelines.rating.tax import line_tax, net_amount
from pipelines.warehouse import run_sql, transaction

Money = Annotated[pl.Decimal, 38, 12]
MONEY = pl.Decimal(38, 12)
KEYS = ["period", "country", "region", "tax_rate_key", "tax_rate_percent", "tax_inclusive",
        "currency"]


def build_tax_report(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, int]:
    """finance.tax_report (and the lines it sums, finance.tax_report_lines); rows per period."""
    with transaction(con):
        run_sql(con, "finance/tax_report", {"now": now})
    rows = con.execute("SELECT period, count(*) FROM finance.tax_report GROUP BY ALL "
                       "ORDER BY period").fetchall()
    return {str(period): int(n) for period, n in rows}


def tax_report_audit(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """finance.tax_report beside the same sums computed again: every line behind it taxed
    again from its rate (``pipelines.rating.tax.line_tax``), signed and summed per row."""
    lines = con.sql("SELECT * FROM finance.tax_report_lines").pl()
    taxes, taxables = [], []
    for sign, amount, percent, inclusive, currency in lines.select(
            "sign", "amount", "tax_rate_percent", "tax_inclusive", "currency").iter_rows():
        tax = line_tax(amount, percent, inclusive, currency)
        taxes.append(sign * tax)
        taxables.append(sign * net_amount(amount, tax, inclusive))
    lines = lines.with_columns(pl.Series("recomputed_tax", taxes, dtype=MONEY),
                               pl.Series("recomputed_taxable", taxables, dtype=MONEY))
    expected = lines.group_by(KEYS).agg(
        pl.col("recomputed_tax").sum().cast(MONEY).alias("expected_tax"),
        pl.col("recomputed_taxable").sum().cast(MONEY).alias("expected_taxable"))
    report = con.sql("SELECT * FROM finance.tax_report").pl()
    return report.join(expected, on=KEYS, how="left", nulls_equal=True)


class TaxReport(pa.DataFrameModel):
    """finance.tax_report beside its lines taxed again from their rates
    (``tax_report_audit``)."""

    period: str = pa.Field(str_matches=r"^\d{4}-\d{2}$")
    currency: str
    taxable_amount: Money
    tax_amount: Money
    expected_tax: Money = pa.Field(nullable=False)
    expected_taxable: Money = pa.Field(nullable=False)

    class Config:
        unique = tuple(KEYS)

    @pa.dataframe_check(error="tax differs from its lines' amounts taxed again at their rate")
    def tax_is_recomputed_from_the_rates(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("tax_amount") == pl.col("expected_tax"))

    @pa.dataframe_check(error="taxable amount differs from its lines net of inclusive tax")
    def taxable_is_net_of_tax(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("taxable_amount") == pl.col("expected_taxable"))
