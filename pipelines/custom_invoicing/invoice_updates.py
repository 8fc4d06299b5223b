"""The integration's Update Invoice call applied to the ledger (contract section 9): the
adjustment lines a custom invoicing integration adds to or removes from a draft
(`PATCH /api/v1/apps/custom-invoicing/invoices/{invoice_id}`), priced like any adjustment by
`pipelines.invoicing.adjustments`.

The API accepted the call against the invoice it last published; the warehouse is the truth, so
everything is checked again here (the invoice still a draft, the lines to remove still
adjustments of it, no credit taking it below zero). A refused call writes nothing and says why.
Each added line's id derives from the inbox item and the adjustment's position in the call,
the ids the API answered with.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

import duckdb

from pipelines.api.rules import adjustment_key
from pipelines.api.store import InboxItem
from pipelines.catalog.models import Catalog
from pipelines.custom_invoicing.callbacks import PROVIDER, CallbackResult
from pipelines.invoicing.adjustments import AdjustmentError, AdjustmentRequest, adjust_invoice


def _decimal(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def apply_update_invoice(con: duckdb.DuckDBPyConnection, catalog: Catalog, item: InboxItem, *,
                         now: datetime) -> CallbackResult:
    """Apply one Update Invoice call inside the caller's transaction."""
    invoice_id = item.invoice_id or ""
    found = con.execute("SELECT status, app FROM billing.invoices WHERE invoice_id = $id",
                        {"id": invoice_id}).fetchall()
    if not found or found[0][1] != PROVIDER:
        return CallbackResult("rejected", f"unknown invoice {invoice_id} (no custom_invoicing "
                                          "invoice has this id)")
    status = found[0][0]
    body = item.body
    try:
        add = [AdjustmentRequest(description=str(entry.get("description") or ""),
                                 amount=_decimal(entry.get("amount")),
                                 quantity=_decimal(entry.get("quantity")),
                                 unit_price=_decimal(entry.get("unit_price")),
                                 key=adjustment_key(item.item_id, index), field=f"add[{index}]")
               for index, entry in enumerate(body.get("add") or [])]
    except (InvalidOperation, AttributeError) as exc:
        return CallbackResult("rejected", f"add: not a list of adjustments with decimal "
                                          f"amounts ({exc!r})", status)
    try:
        outcome = adjust_invoice(con, catalog, invoice_id, add=add,
                                 remove=list(body.get("remove") or []), source="api",
                                 actor=item.actor, now=now)
    except AdjustmentError as exc:
        return CallbackResult("rejected", str(exc), status)
    return CallbackResult("applied", None, outcome.status)
