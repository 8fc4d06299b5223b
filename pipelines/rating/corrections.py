"""Corrections of issued invoices, as pure rules (contract section 9).

An issued invoice never changes. When a later rating of its billing month gives a line another
amount (late events, a price fixed in the catalog, a backfill), the difference is corrected by
documents that point at the invoice: decreases on a credit note, increases on a supplementary
invoice, one delta per corrected line.

What a line is owed is always measured against everything already decided for it, so that

    issued amount + every correction not rejected = amount of the latest rating

holds for every line once the pending corrections are approved. A correction's id is derived
from the invoice, the line, how many corrections it already has (rejected ones included), the
amount already covered and the amount now rated: the same rating run again asks for nothing
(the pending or approved delta is covered), a rating that swings back and forth gets a new
correction at every swing, and no two corrections of a line share an id. A delta a person
rejected is not proposed again while the line's covered and rated amounts are the ones rejected;
once either changes (another rating, or a rejection of an earlier correction that a later one
was stacked on) the difference is proposed anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

DocumentType = Literal["credit_note", "supplementary_invoice"]
CorrectionStatus = Literal["pending_approval", "approved", "rejected"]


@dataclass(frozen=True)
class LineAccount:
    """One line of an issued invoice as the ledger knows it now.

    ``issued`` is the amount on the issued invoice (zero for a line only a later rating
    produced), ``corrected`` the sum of the corrections already proposed for it and not
    rejected, ``rated`` the amount of the latest rating (zero when the rating no longer
    produces the line). ``revision`` counts every correction the line already has, rejected
    ones included, so that a new correction never takes the id of an earlier one.
    ``rejected`` holds the (covered, rated) amounts of the line's rejected corrections.
    """

    invoice_id: str
    line_id: str
    description: str
    issued: Decimal
    corrected: Decimal
    rated: Decimal
    revision: int = 0
    rejected: tuple[tuple[Decimal, Decimal], ...] = ()

    @property
    def covered(self) -> Decimal:
        """What the customer has been (or is about to be) billed for this line."""
        return self.issued + self.corrected


@dataclass(frozen=True)
class LineDelta:
    """A proposed correction of one line: ``delta`` = rated - covered, never zero."""

    correction_id: str
    invoice_id: str
    line_id: str
    description: str
    delta: Decimal
    covered: Decimal
    rated: Decimal

    @property
    def document_type(self) -> DocumentType:
        return "credit_note" if self.delta < 0 else "supplementary_invoice"


def correction_id(invoice_id: str, line_id: str, covered: Decimal, rated: Decimal,
                  revision: int = 0) -> str:
    """Deterministic id of the line's correction number `revision` + 1, taking it from `covered`
    to `rated`.

    Amounts are normalized (``12.50`` and ``12.5`` are one amount) so that the id does not
    depend on how a decimal happened to be written.
    """
    key = "|".join((invoice_id, line_id, str(revision), _canonical(covered), _canonical(rated)))
    return "corr_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def line_deltas(lines: Iterable[LineAccount]) -> list[LineDelta]:
    """The corrections the latest rating calls for: one per line whose rated amount differs
    from what is covered, in the order given, except where a person rejected exactly that
    difference (the same covered and rated amounts)."""
    deltas = []
    for line in lines:
        delta = line.rated - line.covered
        if delta == 0 or (line.covered, line.rated) in line.rejected:
            continue
        deltas.append(LineDelta(
            correction_id=correction_id(line.invoice_id, line.line_id, line.covered, line.rated,
                                        line.revision),
            invoice_id=line.invoice_id, line_id=line.line_id, description=line.description,
            delta=delta, covered=line.covered, rated=line.rated))
    return deltas


def initial_status(delta: Decimal, auto_approve_up_to: Decimal) -> CorrectionStatus:
    """A correction whose size is within the profile's `auto_approve_corrections_up_to` is
    approved at once; a larger one waits for someone to approve or reject it."""
    if auto_approve_up_to < 0:
        raise ValueError("auto_approve_corrections_up_to cannot be negative")
    return "approved" if abs(delta) <= auto_approve_up_to else "pending_approval"


@dataclass(frozen=True)
class CorrectionDocument:
    """A credit note or supplementary invoice gathering approved deltas of one invoice."""

    document_id: str
    document_type: DocumentType
    invoice_id: str
    correction_ids: tuple[str, ...]
    total: Decimal
    """Sum of the deltas: negative for a credit note (what it takes off), positive for a
    supplementary invoice."""


def document_id(document_type: DocumentType, invoice_id: str,
                correction_ids: Sequence[str]) -> str:
    """Deterministic id of the document made of these corrections."""
    prefix = "cn_" if document_type == "credit_note" else "inv_"
    key = "|".join((document_type, invoice_id, *sorted(correction_ids)))
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]


def group_documents(approved: Iterable[LineDelta]) -> list[CorrectionDocument]:
    """Approved deltas not yet on a document, gathered per invoice: decreases on one credit
    note, increases on one supplementary invoice. Ordered by invoice, credit notes first."""
    groups: dict[tuple[str, DocumentType], list[LineDelta]] = {}
    for delta in approved:
        groups.setdefault((delta.invoice_id, delta.document_type), []).append(delta)
    documents = []
    for (invoice_id, kind), deltas in sorted(groups.items()):
        ids = tuple(sorted(d.correction_id for d in deltas))
        documents.append(CorrectionDocument(
            document_id=document_id(kind, invoice_id, ids), document_type=kind,
            invoice_id=invoice_id, correction_ids=ids, total=sum((d.delta for d in deltas),
                                                                 Decimal(0))))
    return documents


def _canonical(amount: Decimal) -> str:
    normalized = amount.normalize()
    return "0" if normalized.is_zero() else format(normalized, "f")


@dataclass(frozen=True)
class CreditSplit:
    """How one approved decrease is credited: ``credited`` on the invoice's credit note,
    ``beyond`` on the customer's credit balance; both positive, adding up to ``-delta``."""

    correction_id: str
    credited: Decimal
    beyond: Decimal


def split_credit(decreases: Iterable[LineDelta], remaining: Decimal) -> list[CreditSplit]:
    """A correction credit note never credits more than remains creditable on the invoice (its
    total less what credit notes and next-invoice corrections already credit on it), which is
    all a provider such as Stripe accepts. The decreases take that room in the order given
    (the credit note's line order); what does not fit is credited to the customer's credit
    balance instead, used by their next invoices: the customer is owed the whole decrease, so
    none of it is dropped, and nothing waits for a credit the invoice can never take."""
    room = max(remaining, Decimal(0))
    splits = []
    for decrease in decreases:
        if decrease.delta >= 0:
            raise ValueError(f"{decrease.correction_id} is not a decrease: {decrease.delta}")
        owed = -decrease.delta
        credited = min(owed, room)
        room -= credited
        splits.append(CreditSplit(correction_id=decrease.correction_id, credited=credited,
                                  beyond=owed - credited))
    return splits
