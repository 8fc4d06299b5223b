"""Which warehouse file a command on one document or customer writes (contract section 12).

With one warehouse, the configured file. With customer shards (BILLING_SHARDS = N > 1) a
document lives in its customer's shard only: the command finds the document's customer through
the read-only finance view over every shard, then opens that shard's file as the writer. An id no
shard holds is refused by name, before anything is opened for writing.
"""

from __future__ import annotations

from pipelines import settings
from pipelines.sharding import connect_finance_reader, shard_of, shard_warehouse_path

DOCUMENT_CUSTOMER_SQL = {
    "invoice": "SELECT DISTINCT customer_id FROM billing.invoices "
               "WHERE invoice_id = $id OR invoice_number = $id",
    "credit note": "SELECT DISTINCT customer_id FROM billing.credit_notes "
                   "WHERE credit_note_id = $id OR credit_note_number = $id",
    "correction": "SELECT DISTINCT customer_id FROM billing.corrections "
                  "WHERE correction_id = $id",
}
"""How each kind of document names its customer, by id (or number, where it has one)."""


class UnknownDocument(LookupError):
    """No shard holds a document with this id."""


def customer_warehouse(customer_id: str) -> str:
    """The warehouse file holding `customer_id`: its shard's file (the configured one when there
    is one warehouse)."""
    shards = settings.shard_count()
    return shard_warehouse_path(settings.warehouse_path(), shard_of(customer_id, shards), shards)


def document_warehouse(kind: str, document_id: str) -> str:
    """The warehouse file holding the `kind` ('invoice', 'credit note', 'correction') named
    `document_id`. One warehouse: the configured file (the command itself says when the id is
    unknown). Shards: its customer's shard, or UnknownDocument when no shard holds it."""
    if settings.shard_count() == 1:
        return settings.warehouse_path()
    with connect_finance_reader() as con:
        customers = [row[0] for row in con.execute(DOCUMENT_CUSTOMER_SQL[kind],
                                                   {"id": document_id}).fetchall()]
    if not customers:
        raise UnknownDocument(f"no {kind} {document_id} in any of the "
                              f"{settings.shard_count()} customer shards")
    return customer_warehouse(customers[0])
