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


def credit_note_entry(external_id: str, credit_note_id: str | None = "cn_1",
                      **fields: Any) -> dict[str, Any]:
    """One credit note of a statement: 23.45 credited on invoice inv_1, in one line."""
    note = {"external_id": external_id, "credit_note_id": credit_note_id, "invoice_id": "inv_1",
            "external_invoice_id": "erp_inv_1", "credit_note_number": "ERP-CN-2026-0001",
            "currency": "EUR", "total": "23.45", "status": "issued",
            "lines": [{"external_id": f"{external_id}_l1", "credit_note_line_id": "cnl_1",
                       "amount": "23.45"}]}
    note.update(fields)
    return note
