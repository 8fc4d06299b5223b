"""Publishing custom invoicing invoices and credit notes into the integration API's store.

The documents integrations may act on are published, with their states and lines, so the API
answers 404 and 409 without opening the warehouse. A supplementary invoice carries the invoice it
corrects and its lines the lines they correct; a credit note carries the invoice it credits and,
per line, the line it corrects. Every document carries the ledger's tax (docs/tax.md), so an
integration never computes a tax of its own: per line `tax_rate_key`, `tax_rate_percent`,
`tax_inclusive`, `tax_amount`; per document `tax_total`, `total_including_tax` and `tax_note`
(`total` keeps its meaning: before an exclusive tax). A credit note's lines are taxed at the
rate of the invoice it credits, its `tax_note` is that invoice's. Run by the sync job after
`invoice_progress.advance_invoices`.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from pipelines.api.rules import CREDIT_NOTE_DOCUMENT, INVOICE_DOCUMENT
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine
from pipelines.rating.money import round_money
from pipelines.sharding import shard_of

CREDIT_LINE = "credit"
"""The line type a credit note's lines are published with."""

_LINE_TAX = ("tax_rate_key := l.tax_rate_key, tax_rate_percent := l.tax_rate_percent, "
             "tax_inclusive := l.tax_inclusive, tax_amount := l.tax_amount")
"""A line's tax columns (billing.invoice_lines and billing.credit_note_lines have the same)."""


def _document_tax(document: str, invoice: str) -> str:
    """A document's tax columns: its own totals, the tax note of the invoice (a credit note's:
    of the invoice it credits). Documents written before tax existed: no tax."""
    return (f"CAST(coalesce({document}.tax_total, 0) AS VARCHAR), "
            f"CAST(coalesce({document}.total_including_tax, {document}.total) AS VARCHAR), "
            f"{invoice}.tax_note")


def _tax(columns: list, currency: str) -> dict:
    """A document's tax, its amounts in the currency's minor units (as the ledger holds them:
    rounding changes nothing)."""
    tax_total, total_including_tax, tax_note = columns
    return {"tax_total": round_money(Decimal(tax_total), currency),
            "total_including_tax": round_money(Decimal(total_including_tax), currency),
            "tax_note": tax_note}


def _line(line: dict, line_type: str, currency: str) -> PublishedLine:
    """A published line from its row (`line_type` of the line, or `credit` for a credit
    note's), with its tax (none on a line written before tax existed)."""
    return PublishedLine(line_id=line["line_id"], line_type=line_type,
                         corrects_line_id=line["corrects_line_id"],
                         tax_rate_key=line["tax_rate_key"],
                         tax_rate_percent=line["tax_rate_percent"],
                         tax_inclusive=bool(line["tax_inclusive"]),
                         tax_amount=round_money(line["tax_amount"] or Decimal(0), currency))


def published_invoices(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing invoice with its current state and lines, as the API sees them."""
    rows = con.execute(f"""
        SELECT i.invoice_id, i.customer_id, i.app, i.status, i.currency,
               CAST(i.total AS VARCHAR), i.corrects_invoice_id,
               list(struct_pack(line_id := l.line_id, line_type := l.line_type,
                                corrects_line_id := l.corrects_line_id, {_LINE_TAX})
                    ORDER BY l.position) FILTER (WHERE l.line_id IS NOT NULL),
               {_document_tax('i', 'i')}
        FROM billing.invoices i
        LEFT JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.app = 'custom_invoicing' AND i.status <> 'discarded'
        GROUP BY ALL ORDER BY i.invoice_id""").fetchall()
    return [PublishedInvoice(invoice_id=invoice_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(_line(line, line["line_type"], currency)
                                         for line in lines or ()),
                             document_type=INVOICE_DOCUMENT, corrects_invoice_id=corrects,
                             **_tax(tax, currency))
            for invoice_id, customer_id, app, status, currency, total, corrects, lines, *tax
            in rows]


def published_credit_notes(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing credit note with its state (draft ... issued), the amount it
    credits, the invoice it credits and its lines (each with the line it corrects)."""
    rows = con.execute(f"""
        SELECT c.credit_note_id, c.customer_id, c.app, c.status, c.currency,
               CAST(c.total AS VARCHAR), c.invoice_id,
               list(struct_pack(line_id := l.credit_note_line_id,
                                corrects_line_id := l.corrects_line_id, {_LINE_TAX})
                    ORDER BY l.position) FILTER (WHERE l.credit_note_line_id IS NOT NULL),
               {_document_tax('c', 'i')}
        FROM billing.credit_notes c
        LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
        LEFT JOIN billing.credit_note_lines l USING (credit_note_id)
        WHERE c.app = 'custom_invoicing'
        GROUP BY ALL ORDER BY c.credit_note_id""").fetchall()
    return [PublishedInvoice(invoice_id=credit_note_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(_line(line, CREDIT_LINE, currency)
                                         for line in lines or ()),
                             document_type=CREDIT_NOTE_DOCUMENT, corrects_invoice_id=invoice_id,
                             **_tax(tax, currency))
            for credit_note_id, customer_id, app, status, currency, total, invoice_id, lines, *tax
            in rows]


def publish_to_api_store(con: duckdb.DuckDBPyConnection, store: ApiStore, *,
                         shard: int | None = None, shards: int = 1) -> int:
    """Publish the invoices and credit notes integrations may act on into the API's store, and
    withdraw the ones that are gone (a discarded draft is deleted from the ledger): calls about
    them get 404 from then on. Returns how many are published. With customer shards, `shard`'s
    run publishes its own customers' documents and withdraws only those (the store holds every
    shard's)."""
    documents = [*published_invoices(con), *published_credit_notes(con)]
    store.publish_invoices(documents)
    if shard is None or shards == 1:
        ours = store.published_ids()
    else:
        ours = {document_id for document_id, customer in store.published_customers().items()
                if shard_of(customer, shards) == shard}
    store.unpublish_invoices(sorted(ours - {d.invoice_id for d in documents}))
    return len(documents)
