"""Publishing custom invoicing invoices and credit notes into the integration API's store.

The documents integrations may act on are published, with their states and lines, so the API
answers 404 and 409 without opening the warehouse. A supplementary invoice carries the invoice it
corrects and its lines the lines they correct; a credit note carries the invoice it credits and,
per line, the line it corrects. Run by the sync job after `invoice_progress.advance_invoices`.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from pipelines.api.rules import CREDIT_NOTE_DOCUMENT, INVOICE_DOCUMENT
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine

CREDIT_LINE = "credit"
"""The line type a credit note's lines are published with."""


def published_invoices(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing invoice with its current state and lines, as the API sees them."""
    rows = con.execute("""
        SELECT i.invoice_id, i.customer_id, i.app, i.status, i.currency,
               CAST(i.total AS VARCHAR), i.corrects_invoice_id,
               list(struct_pack(line_id := l.line_id, line_type := l.line_type,
                                corrects_line_id := l.corrects_line_id)
                    ORDER BY l.position) FILTER (WHERE l.line_id IS NOT NULL)
        FROM billing.invoices i
        LEFT JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.app = 'custom_invoicing' AND i.status <> 'discarded'
        GROUP BY ALL ORDER BY i.invoice_id""").fetchall()
    return [PublishedInvoice(invoice_id=invoice_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(PublishedLine(line_id=line["line_id"],
                                                       line_type=line["line_type"],
                                                       corrects_line_id=line["corrects_line_id"])
                                         for line in lines or ()),
                             document_type=INVOICE_DOCUMENT, corrects_invoice_id=corrects)
            for invoice_id, customer_id, app, status, currency, total, corrects, lines in rows]


def published_credit_notes(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing credit note with its state (draft ... issued), the amount it
    credits, the invoice it credits and its lines (each with the line it corrects)."""
    rows = con.execute("""
        SELECT c.credit_note_id, c.customer_id, c.app, c.status, c.currency,
               CAST(c.total AS VARCHAR), c.invoice_id,
               list(struct_pack(line_id := l.credit_note_line_id,
                                corrects_line_id := l.corrects_line_id)
                    ORDER BY l.position) FILTER (WHERE l.credit_note_line_id IS NOT NULL)
        FROM billing.credit_notes c
        LEFT JOIN billing.credit_note_lines l USING (credit_note_id)
        WHERE c.app = 'custom_invoicing'
        GROUP BY ALL ORDER BY c.credit_note_id""").fetchall()
    return [PublishedInvoice(invoice_id=credit_note_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(PublishedLine(line_id=line["line_id"],
                                                       line_type=CREDIT_LINE,
                                                       corrects_line_id=line["corrects_line_id"])
                                         for line in lines or ()),
                             document_type=CREDIT_NOTE_DOCUMENT, corrects_invoice_id=invoice_id)
            for credit_note_id, customer_id, app, status, currency, total, invoice_id, lines
            in rows]


def publish_to_api_store(con: duckdb.DuckDBPyConnection, store: ApiStore) -> int:
    """Publish the invoices and credit notes integrations may act on into the API's store, and
    withdraw the ones that are gone (a discarded draft is deleted from the ledger): calls about
    them get 404 from then on. Returns how many are published."""
    documents = [*published_invoices(con), *published_credit_notes(con)]
    store.publish_invoices(documents)
    store.unpublish_invoices(sorted(store.published_ids() - {d.invoice_id for d in documents}))
    return len(documents)
