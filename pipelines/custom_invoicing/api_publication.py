"""Publishing custom invoicing invoices into the integration API's store.

The invoices integrations may act on are published, with their states and lines, so the API
answers 404 and 409 without opening the warehouse. Run by the sync job after
`invoice_progress.advance_invoices`.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb

from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine


def published_invoices(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing invoice with its current state and lines, as the API sees them."""
    rows = con.execute("""
        SELECT i.invoice_id, i.customer_id, i.app, i.status, i.currency,
               CAST(i.total AS VARCHAR),
               list(struct_pack(line_id := l.line_id, line_type := l.line_type)
                    ORDER BY l.position) FILTER (WHERE l.line_id IS NOT NULL)
        FROM billing.invoices i
        LEFT JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.app = 'custom_invoicing' AND i.status <> 'discarded'
        GROUP BY ALL ORDER BY i.invoice_id""").fetchall()
    return [PublishedInvoice(invoice_id=invoice_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(PublishedLine(line_id=line["line_id"],
                                                       line_type=line["line_type"])
                                         for line in lines or ()))
            for invoice_id, customer_id, app, status, currency, total, lines in rows]


def publish_to_api_store(con: duckdb.DuckDBPyConnection, store: ApiStore) -> int:
    """Publish the invoices integrations may act on into the API's store, and withdraw the
    ones that are gone (a discarded draft is deleted from the ledger): calls about them get 404
    from then on. Returns how many are published."""
    invoices = published_invoices(con)
    store.publish_invoices(invoices)
    store.unpublish_invoices(sorted(store.published_ids() - {i.invoice_id for i in invoices}))
    return len(invoices)
