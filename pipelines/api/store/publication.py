"""The invoices (and custom invoicing credit notes) the pipeline publishes for the API: a call
about a document not published is answered 404, and one the document's state does not allow 409.
That state is the published (warehouse) status moved on by the calls accepted since, which the
pipeline has not yet reflected in a publication.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines import settings
from pipelines.api import rules
from pipelines.api.store.database import StoreFile, stored_instant


@dataclass(frozen=True)
class PublishedLine:
    """A line of a published invoice: integrations map their external ids onto these. Its tax
    is the ledger's (docs/tax.md): the rate (None: no tax; `reverse_charge`: 0 %) and the tax
    of its amount, negative on a credit note's line like its amount."""

    line_id: str
    line_type: str      # usage, flat, minimum_commitment, discount, adjustment, correction;
    #                     credit (a credit note's line)
    corrects_line_id: str | None = None   # the corrected invoice's line (correction, credit)
    tax_rate_key: str | None = None
    tax_rate_percent: Decimal | None = None
    tax_inclusive: bool = False
    tax_amount: Decimal = Decimal(0)

    def view(self) -> dict[str, Any]:
        """The line's tax as the API shows it (decimal strings)."""
        return {"tax_rate_key": self.tax_rate_key,
                "tax_rate_percent": _decimal_text(self.tax_rate_percent),
                "tax_inclusive": self.tax_inclusive, "tax_amount": str(self.tax_amount)}


@dataclass(frozen=True)
class PublishedInvoice:
    """An invoice as the pipeline last published it for the API (its warehouse status)."""

    invoice_id: str
    customer_id: str
    app: str
    status: str
    currency: str
    total: Decimal
    lines: tuple[PublishedLine, ...]
    published_at: datetime | None = None
    document_type: str = rules.INVOICE_DOCUMENT     # or rules.CREDIT_NOTE_DOCUMENT
    corrects_invoice_id: str | None = None
    """A supplementary invoice's corrected invoice; a credit note's credited invoice."""
    tax_total: Decimal = Decimal(0)
    """The sum of the lines' tax (a credit note's: positive, like its total)."""
    total_including_tax: Decimal | None = None
    """What the customer owes (credit note: is credited): `total` plus an exclusive tax; None
    (published before tax existed, or no tax) reads as `total`."""
    tax_note: str | None = None
    """`reverse charge`, `no address`, `no tax rate for ...`, else None (docs/tax.md)."""

    @property
    def owed(self) -> Decimal:
        """The total including tax."""
        return self.total if self.total_including_tax is None else self.total_including_tax

    def tax_view(self) -> dict[str, Any]:
        """The document's tax as the API shows it (decimal strings)."""
        return {"tax_total": str(self.tax_total), "total_including_tax": str(self.owed),
                "tax_note": self.tax_note}


class PublicationStore(StoreFile):
    """The published_invoices table: what integrations may act on, and in which state."""

    def publish_invoices(self, invoices: Sequence[PublishedInvoice], *,
                         at: datetime | None = None) -> None:
        """Upsert the invoices integrations may act on, with their warehouse status. The new
        status replaces whatever the API projected from calls the pipeline has decided since."""
        stamp = stored_instant(at or settings.now())
        rows = [(inv.invoice_id, inv.customer_id, inv.app, inv.status, inv.currency,
                 str(Decimal(inv.total)),
                 json.dumps([{"line_id": line.line_id, "line_type": line.line_type,
                              "corrects_line_id": line.corrects_line_id, **line.view()}
                             for line in inv.lines]), stamp, inv.invoice_id,
                 inv.document_type, inv.corrects_invoice_id, str(Decimal(inv.tax_total)),
                 str(Decimal(inv.owed)), inv.tax_note)
                for inv in invoices]
        with self._write() as con:
            con.executemany("""
                INSERT INTO published_invoices (invoice_id, customer_id, app, status, currency,
                                                total, lines, published_at, settled_through,
                                                document_type, corrects_invoice_id, tax_total,
                                                total_including_tax, tax_note)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?,
                        (SELECT coalesce(max(item_id), 0) FROM inbox
                         WHERE invoice_id = ? AND status <> 'pending'), ?, ?, ?, ?, ?)
                ON CONFLICT (invoice_id) DO UPDATE SET
                    tax_total = excluded.tax_total,
                    total_including_tax = excluded.total_including_tax,
                    tax_note = excluded.tax_note,
                    customer_id = excluded.customer_id, app = excluded.app,
                    status = excluded.status, currency = excluded.currency,
                    total = excluded.total, lines = excluded.lines,
                    published_at = excluded.published_at,
                    settled_through = excluded.settled_through,
                    document_type = excluded.document_type,
                    corrects_invoice_id = excluded.corrects_invoice_id""", rows)

    def unpublish_invoices(self, invoice_ids: Sequence[str]) -> int:
        """Withdraw invoices integrations may no longer act on (e.g. a discarded draft): calls
        for them get 404 from now on. Returns how many were published."""
        with self._write() as con:
            return sum(con.execute("DELETE FROM published_invoices WHERE invoice_id = ?",
                                   (invoice_id,)).rowcount for invoice_id in invoice_ids)

    def published_ids(self) -> set[str]:
        """The ids of every invoice now published."""
        with self._read() as con:
            return {row[0] for row in con.execute("SELECT invoice_id FROM published_invoices")}

    def published_customers(self) -> dict[str, str]:
        """The customer of every published invoice and credit note, by document id (with
        customer shards, which shard's run publishes and withdraws it)."""
        with self._read() as con:
            return dict(con.execute("SELECT invoice_id, customer_id FROM published_invoices"))

    def published_invoice(self, invoice_id: str) -> PublishedInvoice | None:
        """The invoice as last published, or None."""
        with self._read() as con:
            row = published_row(con, invoice_id)
        return invoice_of(row) if row else None

    def projected_state(self, invoice_id: str) -> str | None:
        """The published status moved on by the calls accepted and not yet reflected in it."""
        with self._read() as con:
            row = published_row(con, invoice_id)
            return projected(con, row) if row else None

    def invoice_view(self, invoice_id: str) -> dict[str, Any] | None:
        """The published invoice as the API shows it to integrations: its published status,
        the state projected by accepted calls, its lines and how many calls still wait. A
        supplementary invoice names the invoice it corrects, its lines the lines they correct.
        None when no invoice of this id is published."""
        found = self._document(invoice_id, rules.INVOICE_DOCUMENT)
        if found is None:
            return None
        invoice, projected_state, pending = found
        return {"invoice_id": invoice.invoice_id, "customer_id": invoice.customer_id,
                "app": invoice.app, "status": invoice.status,
                "projected_state": projected_state,
                "currency": invoice.currency, "total": str(invoice.total),
                **invoice.tax_view(),
                "corrects_invoice_id": invoice.corrects_invoice_id,
                "lines": [{"line_id": line.line_id, "line_type": line.line_type,
                           "corrects_line_id": line.corrects_line_id, **line.view()}
                          for line in invoice.lines],
                "published_at": _instant_text(invoice.published_at),
                "pending_calls": pending}

    def credit_note_view(self, credit_note_id: str) -> dict[str, Any] | None:
        """The published credit note as the API shows it: its status and projected state, the
        invoice it credits, the amount credited, its lines with the lines they correct, and how
        many calls still wait. None when no credit note of this id is published."""
        found = self._document(credit_note_id, rules.CREDIT_NOTE_DOCUMENT)
        if found is None:
            return None
        note, projected_state, pending = found
        return {"credit_note_id": note.invoice_id, "invoice_id": note.corrects_invoice_id,
                "customer_id": note.customer_id, "app": note.app, "status": note.status,
                "projected_state": projected_state, "currency": note.currency,
                "total": str(note.total), **note.tax_view(),
                "lines": [{"credit_note_line_id": line.line_id,
                           "corrects_line_id": line.corrects_line_id, **line.view()}
                          for line in note.lines],
                "published_at": _instant_text(note.published_at),
                "pending_calls": pending}

    def _document(self, document_id: str,
                  document_type: str) -> tuple[PublishedInvoice, str, int] | None:
        """A published document of the given type, its projected state and pending calls."""
        with self._read() as con:
            row = published_row(con, document_id)
            if row is None or document_of(row) != document_type:
                return None
            projected_state = projected(con, row)
            pending = con.execute("SELECT count(*) FROM inbox WHERE invoice_id = ? "
                                  "AND status = 'pending'", (document_id,)).fetchone()[0]
        return invoice_of(row), projected_state, int(pending)


def _instant_text(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _decimal_text(value: Decimal | None) -> str | None:
    """A rate as text without trailing zeros ("19", "7.25"), or None."""
    if value is None:
        return None
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(text: Any, default: Decimal | None = None) -> Decimal | None:
    """A stored decimal text as a Decimal (exactly as written), or `default` when absent."""
    return default if text is None else Decimal(str(text))


def published_row(con: sqlite3.Connection, invoice_id: str) -> tuple[Any, ...] | None:
    """The published_invoices row of an invoice (read with `invoice_of`, `projected`)."""
    return con.execute("""
        SELECT invoice_id, customer_id, app, status, currency, total, lines, published_at,
               settled_through, document_type, corrects_invoice_id, tax_total,
               total_including_tax, tax_note
        FROM published_invoices WHERE invoice_id = ?""", (invoice_id,)).fetchone()


def document_of(row: tuple[Any, ...]) -> str:
    """Which document a `published_row` is: rules.INVOICE_DOCUMENT or CREDIT_NOTE_DOCUMENT."""
    return str(row[9])


def invoice_of(row: tuple[Any, ...]) -> PublishedInvoice:
    """The invoice (or credit note) a `published_row` holds."""
    (invoice_id, customer_id, app, status, currency, total, lines, published_at, _,
     document_type, corrects_invoice_id, tax_total, total_including_tax, tax_note) = row
    return PublishedInvoice(
        invoice_id=invoice_id, customer_id=customer_id, app=app, status=status,
        currency=currency, total=Decimal(total),
        lines=tuple(PublishedLine(line["line_id"], line["line_type"],
                                  line.get("corrects_line_id"),
                                  tax_rate_key=line.get("tax_rate_key"),
                                  tax_rate_percent=_decimal(line.get("tax_rate_percent")),
                                  tax_inclusive=bool(line.get("tax_inclusive")),
                                  tax_amount=_decimal(line.get("tax_amount"), Decimal(0)))
                    for line in json.loads(lines)),
        published_at=datetime.fromisoformat(published_at), document_type=document_type,
        corrects_invoice_id=corrects_invoice_id,
        tax_total=_decimal(tax_total, Decimal(0)),
        total_including_tax=_decimal(total_including_tax), tax_note=tax_note)


def projected(con: sqlite3.Connection, row: tuple[Any, ...]) -> str:
    """The published status moved on by the calls still pending, and by those applied after the
    invoice was last published (the pipeline applied them but has not published since)."""
    invoice_id, status, settled = row[0], row[3], row[8]
    kinds = ", ".join(f"'{k}'" for k in rules.CALLBACK_KINDS)
    calls = con.execute(f"""
        SELECT kind, body FROM inbox
        WHERE invoice_id = ? AND kind IN ({kinds})
          AND (status = 'pending' OR (status = 'applied' AND item_id > ?))
        ORDER BY item_id""", (invoice_id, settled)).fetchall()
    return rules.project(status, ((kind, json.loads(body)) for kind, body in calls))


def projected_invoice(con: sqlite3.Connection, row: tuple[Any, ...]) -> PublishedInvoice:
    """The invoice a `published_row` holds, its lines as the accepted Update Invoice calls not
    yet reflected in a publication leave them (pending ones, and applied ones the pipeline has
    not published since): adjustment lines added, removed ones gone. So a `draft/synchronized`
    can map an adjustment line added a moment before, and a removal name it."""
    invoice = invoice_of(row)
    calls = con.execute("""
        SELECT item_id, body FROM inbox
        WHERE invoice_id = ? AND kind = ?
          AND (status = 'pending' OR (status = 'applied' AND item_id > ?))
        ORDER BY item_id""", (invoice.invoice_id, rules.UPDATE_INVOICE, row[8])).fetchall()
    if not calls:
        return invoice
    known = {line.line_id: line for line in invoice.lines}
    lines = rules.project_lines({line.line_id: line.line_type for line in invoice.lines},
                                invoice.invoice_id,
                                ((item_id, json.loads(body)) for item_id, body in calls))
    return replace(invoice, lines=tuple(known.get(line_id) or PublishedLine(line_id, line_type)
                                        for line_id, line_type in lines.items()))
