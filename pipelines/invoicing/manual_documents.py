"""Documents finance makes by hand (contract section 9): a goodwill credit note against an issued
invoice (`billing credit-note create`) and the void of an issued, unpaid invoice
(`billing invoice void`). The pure rules are `pipelines.rating.manual_documents`.

Every refusal is raised before anything is written, and the caller runs each function inside
one transaction, so a refused or failed request leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import duckdb

from pipelines.catalog.models import Catalog
from pipelines.invoicing.corrections import withdraw_corrections
from pipelines.invoicing.document_tax import fill_document_tax
from pipelines.invoicing.next_invoice import bill_on_next_invoices
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.rating.manual_documents import (
    credit_refusal,
    parse_credit_amount,
    void_refusal,
)
from pipelines.rating.tax import amount_including_tax, line_tax
from pipelines.warehouse import run_sql


class ManualDocumentError(ValueError):
    """A manual credit note or void the ledger refuses; the message says why."""


@dataclass(frozen=True)
class ManualCreditNote:
    credit_note_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    remaining_after: Decimal   # what is still creditable on the invoice after this note
    issue_after: datetime


@dataclass(frozen=True)
class VoidedInvoice:
    invoice_id: str
    from_status: str
    path: tuple[str, ...]          # the transitions recorded, ending in voided
    withdrawn_corrections: int     # its corrections on no issued document yet, or those it
                                   # carried (a supplementary invoice), now rejected


def manual_credit_note_id(invoice_id: str, sequence: int) -> str:
    """Deterministic id of the invoice's manual credit note number `sequence` (from 0), so the
    provider syncs can use it as their idempotency key."""
    return "cn_" + hashlib.sha256(f"manual|{invoice_id}|{sequence}".encode()).hexdigest()[:24]


def create_manual_credit_note(con: duckdb.DuckDBPyConnection, catalog: Catalog,
                              invoice_id: str, amount_text: str, *, reason: str, actor: str,
                              now: datetime) -> ManualCreditNote:
    """Credit `amount_text` of an issued invoice as a goodwill credit note (kind `manual`, one
    line correcting no line in particular), up to what remains creditable: the invoice total
    less its credit notes that are not voided and less the credits of its corrections already
    on a next invoice (policy next_invoice): billing.remaining_creditable."""
    if not reason or not reason.strip():
        raise ManualDocumentError("a manual credit note needs a reason")
    invoice = _invoice(con, invoice_id)
    invoice_id = invoice["invoice_id"]  # the id, also when the invoice was named by its number
    amount = parse_credit_amount(amount_text, invoice["currency"])
    if isinstance(amount, str):
        raise ManualDocumentError(amount)
    [(manual_notes,)] = con.execute(
        "SELECT count(*) FROM billing.credit_notes WHERE invoice_id = $id AND kind = 'manual'",
        {"id": invoice_id}).fetchall()
    # the limit correction credit notes have too (they credit the rest to the credit balance)
    [(remaining, remaining_including_tax)] = con.execute(
        "SELECT remaining, remaining_including_tax FROM billing.remaining_creditable "
        "WHERE invoice_id = $id", {"id": invoice_id}).fetchall()
    # the credit with the tax its line will carry at the invoice's rate (as fill_document_tax
    # computes it): 10.00 at 19 % exclusive -> 11.90
    inclusive = bool(invoice["tax_inclusive"])
    tax = line_tax(amount, invoice["tax_rate_percent"], inclusive, invoice["currency"])
    refusal = credit_refusal(_label(invoice), invoice["status"], amount, remaining,
                             invoice["currency"],
                             including_tax=amount_including_tax(amount, tax, inclusive),
                             remaining_including_tax=remaining_including_tax)
    if refusal:
        raise ManualDocumentError(refusal)
    profile = catalog.billing_profiles.get(invoice["billing_profile"])
    issue_after = now + (profile.grace_period if profile else timedelta(0))
    credit_note_id = manual_credit_note_id(invoice_id, manual_notes)
    run_sql(con, "billing/manual_credit_note", {
        "credit_note_id": credit_note_id, "invoice_id": invoice_id, "amount": amount,
        "reason": reason.strip(), "now": now, "issue_after": issue_after, "actor": actor})
    fill_document_tax(con)  # its line reverses the tax of what it credits, at the invoice's rate
    return ManualCreditNote(credit_note_id=credit_note_id, invoice_id=invoice_id, amount=amount,
                            currency=invoice["currency"], remaining_after=remaining - amount,
                            issue_after=issue_after)


def void_invoice(con: duckdb.DuckDBPyConnection, invoice_id: str, *, reason: str, actor: str,
                 now: datetime) -> VoidedInvoice:
    """Void an issued invoice nobody has paid, through the lifecycle (the status history keeps
    the actor and the reason). Refused for a paid invoice (credit it instead), a draft, and an
    invoice already corrected or credited by a document (voiding it would take back what that
    document already settled). Its corrections on no issued document yet are withdrawn
    (rejected: a voided invoice is not corrected); so are those a voided supplementary invoice
    carried (the next billing run proposes them again); corrections of earlier invoices it
    carried as a next invoice go back to wait for the next draft, and its credit balance
    movements are reversed."""
    if not reason or not reason.strip():
        raise ManualDocumentError("a void needs a reason")
    invoice = _invoice(con, invoice_id)
    invoice_id = invoice["invoice_id"]  # the id, also when the invoice was named by its number
    refusal = void_refusal(_label(invoice), invoice["status"])
    if refusal:
        raise ManualDocumentError(refusal)
    blockers = _documents_settling(con, invoice_id)
    if blockers:
        raise ManualDocumentError(
            f"invoice {_label(invoice)} is already corrected or credited by "
            f"{', '.join(blockers)}: it is not voided (credit what remains instead)")
    [outcome] = apply_status_changes(
        con, [StatusChange(invoice_id, "voided", f"voided: {reason.strip()}", actor)], now=now)
    if outcome.outcome != "applied":
        raise ManualDocumentError(
            f"invoice {invoice_id} cannot go from {outcome.from_status} to voided")
    withdrawn = withdraw_corrections(con, now=now, voided_invoice_id=invoice_id,
                                     reason=reason.strip(), actor=actor)
    bill_on_next_invoices(con, now=now)
    fill_document_tax(con)
    return VoidedInvoice(invoice_id=invoice_id, from_status=outcome.from_status or "",
                         path=outcome.path, withdrawn_corrections=withdrawn)


def _documents_settling(con: duckdb.DuckDBPyConnection, invoice_id: str) -> list[str]:
    """The documents, not voided, that already correct or credit the invoice: its credit notes,
    its supplementary invoices, and invoices past draft carrying its correction lines."""
    rows = con.execute("""
        SELECT 'credit note ' || coalesce(credit_note_number, credit_note_id)
               || ' (' || status || ')'
        FROM billing.credit_notes WHERE invoice_id = $id AND status <> 'voided'
        UNION ALL
        SELECT 'supplementary invoice ' || coalesce(invoice_number, invoice_id)
               || ' (' || status || ')'
        FROM billing.invoices
        WHERE corrects_invoice_id = $id AND status NOT IN ('voided', 'discarded')
        UNION ALL
        SELECT DISTINCT 'correction lines on invoice ' || coalesce(i.invoice_number, i.invoice_id)
               || ' (' || i.status || ')'
        FROM billing.corrections c JOIN billing.invoices i ON i.invoice_id = c.document_id
        WHERE c.invoice_id = $id AND c.document_type = 'next_invoice'
          AND c.status = 'approved' AND i.status NOT IN ('draft', 'voided')
        ORDER BY 1""", {"id": invoice_id}).fetchall()
    return [row[0] for row in rows]


def _label(invoice: dict) -> str:
    """How messages name an invoice: its number once it has one."""
    return invoice["invoice_number"] or invoice["invoice_id"]


def _invoice(con: duckdb.DuckDBPyConnection, invoice_id: str) -> dict:
    """The invoice named by its id or by its number (INV-YYYYMM-NNNNN)."""
    cursor = con.execute("SELECT * FROM billing.invoices WHERE invoice_id = $id",
                         {"id": invoice_id})
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    if not rows:
        found = con.execute("SELECT invoice_id FROM billing.invoices WHERE invoice_number = $n",
                            {"n": invoice_id}).fetchall()
        if found:
            return _invoice(con, found[0][0])
        raise ManualDocumentError(f"no invoice {invoice_id}")
    return dict(zip(columns, rows[0], strict=True))
