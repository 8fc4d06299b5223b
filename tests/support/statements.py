"""Invoice statements as a custom invoicing integration reports them to the API."""

from __future__ import annotations

from typing import Any

AS_OF = "2026-02-03T10:00:00Z"


def entry(external_id: str, invoice_id: str | None = "inv_1", **fields: Any) -> dict[str, Any]:
    """One invoice of a statement, as the contract's example has it."""
    invoice = {"external_id": external_id, "invoice_id": invoice_id,
               "invoice_number": "ERP-2026-0001", "currency": "EUR", "total": "123.45",
               "status": "open", "amount_paid": "0.00", "amount_refunded": "0.00",
               "lines": [{"external_id": f"{external_id}_l1", "line_id": "line_1",
                          "amount": "100.00"},
                         {"external_id": f"{external_id}_l2", "line_id": "line_2",
                          "amount": "23.45"}]}
    invoice.update(fields)
    return invoice


def statement(*invoices: dict[str, Any], as_of: str = AS_OF) -> dict[str, Any]:
    """A statement as of `as_of` holding `invoices`."""
    return {"as_of": as_of, "invoices": list(invoices)}
