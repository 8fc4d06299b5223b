"""Reading what a test's run left in the warehouse."""

from __future__ import annotations

from pathlib import Path

from pipelines.warehouse import connect_reader


def query(warehouse: Path, text: str, params: dict[str, object] | None = None) -> list[tuple]:
    """The rows of one SQL query, through a read-only connection."""
    with connect_reader(str(warehouse)) as con:
        return con.execute(text, params or {}).fetchall()


def invoice_of(warehouse: Path, customer: str, boundary: str = "2026-02-01") -> str:
    """The id of the customer's invoice cut at `boundary`."""
    [(invoice_id,)] = query(warehouse, """
        SELECT invoice_id FROM billing.invoices
        WHERE customer_id = $c AND boundary = $b::DATE""", {"c": customer, "b": boundary})
    return invoice_id
