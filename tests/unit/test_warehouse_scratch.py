"""Temp tables and registered frames of a step (`pipelines.warehouse.scratch`): dropped after
the step; when the step fails inside a transaction, its own error is the one raised (DuckDB
refuses every statement in an aborted transaction, so a cleanup there used to replace the real
error with "transaction is aborted") and the rollback takes them away."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from pipelines.invoicing.adjustments import write_adjusted_draft
from pipelines.rating.invoices import InvoiceDraft, InvoiceLine
from pipelines.warehouse import connect_writer, scratch, transaction


def leftovers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Temp tables and registered frames still there."""
    return [row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE temporary AND NOT internal"
    ).fetchall()]


def test_dropped_after_the_step() -> None:
    con = duckdb.connect()
    with transaction(con):
        con.register("step_frame", pa.table({"amount": [1]}))
        with scratch(con, tables=("step_rows",), frames=("step_frame",)):
            con.execute("CREATE OR REPLACE TEMP TABLE step_rows AS SELECT * FROM step_frame")
    assert leftovers(con) == []


def test_a_step_failing_in_a_transaction_raises_its_own_error_and_leaves_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE ledger (amount DECIMAL(38, 12))")
    with pytest.raises(duckdb.ConversionException, match="DECIMAL"), transaction(con):
        con.register("step_frame", pa.table({"amount": [1]}))
        with scratch(con, tables=("step_rows",), frames=("step_frame",)):
            con.execute("CREATE OR REPLACE TEMP TABLE step_rows AS SELECT * FROM step_frame")
            con.execute("INSERT INTO ledger VALUES (1e30::DOUBLE)")
    assert leftovers(con) == []
    assert con.execute("SELECT count(*) FROM ledger").fetchall() == [(0,)]


def test_a_step_failing_outside_a_transaction_is_cleaned_up_at_once() -> None:
    con = duckdb.connect()
    with pytest.raises(ZeroDivisionError):
        con.register("step_frame", pa.table({"amount": [1]}))
        with scratch(con, tables=("step_rows",), frames=("step_frame",)):
            con.execute("CREATE OR REPLACE TEMP TABLE step_rows AS SELECT * FROM step_frame")
            _ = 1 / 0
    assert leftovers(con) == []


def test_an_adjusted_draft_that_cannot_be_written_says_why(tmp_path: Path) -> None:
    """An adjustment line whose id is already a rated line's: DuckDB's duplicate key error, not
    "transaction is aborted"."""
    jan_1, feb_1 = date(2026, 1, 1), date(2026, 2, 1)
    with connect_writer(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("""
            INSERT INTO billing.invoice_lines (line_id, invoice_id, line_type, price_key,
                description, amount, period_start, period_end, position)
            VALUES ('il_rated', 'inv_1', 'flat', 'platform_fee', 'Platform fee', 10.00,
                    DATE '2026-01-01', DATE '2026-02-01', 0)""")
        clash = InvoiceLine("il_rated", "adjustment", "adjustment", None, "Workshop", None, None,
                            Decimal("30.00"), jan_1, feb_1)
        draft = InvoiceDraft(
            invoice_id="inv_1", customer_id="c_1", subscription_id="sub_1", plan_key="pro",
            billing_month="2026-01", boundary=feb_1, period_start=jan_1, period_end=feb_1,
            currency="USD", subtotal=Decimal("30.00"), discount_total=Decimal("0.00"),
            total=Decimal("30.00"), collection_method="charge_automatically", due_date=None,
            lines=(clash,))
        with pytest.raises(duckdb.ConstraintException, match="il_rated"), transaction(con):
            write_adjusted_draft(con, draft)
        assert leftovers(con) == []
        assert con.execute("SELECT line_id, line_type FROM billing.invoice_lines").fetchall() \
            == [("il_rated", "flat")]
