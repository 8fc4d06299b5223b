"""The posting rules: which journal entries the ledger's facts call for, and what to append so
that the journal says exactly that (contract section 10, docs/accounting.md). Pure.

Every entry is double entry in one currency: its lines' debits equal its credits. An amount is
written signed here (positive: a debit, negative: a credit) and netted per account and customer.

- invoice (issued): Dr receivable (total incl. tax); Cr revenue (at-issue lines: usage,
  in-arrears fees) or deferred revenue (in-advance lines); Cr tax payable.
- credit_note (issued): the mirror, on contra revenue (at-issue) or deferred revenue
  (in-advance lines); Dr tax payable; Cr receivable.
- void (invoice or credit note voided): the exact reversal of its issue entry.
- payment (invoice paid): Dr cash/clearing of its provider; Cr receivable.
- refund (the provider refunded money): Dr receivable; Cr cash/clearing.
- write_off (invoice uncollectible): Dr bad debt; Cr receivable.
- revenue_recognition (a month of a deferred line is over): Dr deferred revenue; Cr revenue
  (contra revenue for a credit note).

The journal is append-only. `plan_postings` compares what the facts call for now (one entry per
source, i.e. per (source_type, source_id)) with the entry of that source the journal holds: the
same content posts nothing; a different content appends a reversal of the old entry and the new
one (the next revision); a source no longer called for (a write-off of an invoice since paid, the
recognition of a voided invoice) gets its reversal. Ids are derived, never drawn: a posting is
``je_`` + sha256(source_type|source_id|revision), a reversal ``je_`` + sha256(reversal|id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

SourceType = Literal["invoice", "credit_note", "payment", "refund", "void", "write_off",
                     "revenue_recognition"]
SOURCE_TYPES: tuple[str, ...] = ("invoice", "credit_note", "payment", "refund", "void",
                                 "write_off", "revenue_recognition")
Basis = Literal["deferred", "at_issue"]
SourceKey = tuple[str, str]


@dataclass(frozen=True)
class Chart:
    """The accounts of one posting (from billing.accounts; `models.Accounts` for the rules)."""

    receivable: str
    deferred_revenue: str
    tax_payable: str
    contra_revenue: str
    bad_debt: str
    cash: Mapping[str, str]


@dataclass(frozen=True)
class JournalLine:
    account: str
    customer_id: str | None
    debit: Decimal
    credit: Decimal


@dataclass(frozen=True)
class Entry:
    """An entry the facts call for. ``reverses`` names the source whose entry a void undoes."""

    source_type: str
    source_id: str
    posted_at: datetime
    currency: str
    lines: tuple[JournalLine, ...]
    description: str
    document_id: str | None = None
    document_number: str | None = None
    reverses: SourceKey | None = None

    @property
    def key(self) -> SourceKey:
        return (self.source_type, self.source_id)


@dataclass(frozen=True)
class DocumentLine:
    """One line of an issued invoice or credit note, as posted: ``net_amount`` is the revenue
    (the line amount less an inclusive tax), ``tax_amount`` its tax; both signed as on the
    document (negative on a credit note). ``side_account`` is where it lands as revenue:
    the line's revenue account, or contra revenue for a credit note."""

    line_id: str
    net_amount: Decimal
    tax_amount: Decimal
    basis: Basis
    side_account: str


@dataclass(frozen=True)
class Document:
    document_type: Literal["invoice", "credit_note"]
    document_id: str
    document_number: str | None
    customer_id: str
    currency: str
    issued_at: datetime
    lines: tuple[DocumentLine, ...]

    @property
    def gross(self) -> Decimal:
        """What the customer owes for it (negative for a credit note): net plus tax."""
        return sum((line.net_amount + line.tax_amount for line in self.lines), Decimal(0))


def netted(signed: Iterable[tuple[str, str | None, Decimal]]) -> tuple[JournalLine, ...]:
    """Signed amounts (positive: debit) netted per account and customer, in first-seen order,
    zero nets dropped."""
    totals: dict[tuple[str, str | None], Decimal] = {}
    for account, customer, amount in signed:
        totals[(account, customer)] = totals.get((account, customer), Decimal(0)) + amount
    return tuple(
        JournalLine(account, customer, amount if amount > 0 else Decimal(0),
                    -amount if amount < 0 else Decimal(0))
        for (account, customer), amount in totals.items() if amount != 0)


def issue_entry(document: Document, chart: Chart) -> Entry | None:
    """Dr receivable (gross); Cr each line's net to deferred revenue (in advance) or its side
    account (at issue); Cr tax payable. A credit note's negative amounts make it the mirror."""
    customer = document.customer_id
    signed: list[tuple[str, str | None, Decimal]] = [(chart.receivable, customer,
                                                      document.gross)]
    for line in document.lines:
        account = chart.deferred_revenue if line.basis == "deferred" else line.side_account
        signed.append((account, customer, -line.net_amount))
    signed.append((chart.tax_payable, customer,
                   -sum((line.tax_amount for line in document.lines), Decimal(0))))
    lines = netted(signed)
    if not lines:
        return None
    kind = "Invoice" if document.document_type == "invoice" else "Credit note"
    return Entry(document.document_type, document.document_id, document.issued_at,
                 document.currency, lines,
                 f"{kind} {document.document_number or document.document_id} issued",
                 document.document_id, document.document_number)


def void_entry(issued: Entry, voided_at: datetime) -> Entry:
    """The exact reversal of an issue entry, dated when the document was voided."""
    lines = tuple(JournalLine(line.account, line.customer_id, line.credit, line.debit)
                  for line in issued.lines)
    number = issued.document_number or issued.source_id
    return Entry("void", issued.source_id, max(voided_at, issued.posted_at), issued.currency,
                 lines, f"{number} voided", issued.document_id, issued.document_number,
                 reverses=issued.key)


def settlement_entry(source_type: Literal["payment", "refund", "write_off"], invoice_id: str,
                     invoice_number: str | None, customer_id: str, currency: str, app: str,
                     amount: Decimal, at: datetime, chart: Chart) -> Entry | None:
    """Payment: Dr cash of the provider, Cr receivable; refund: the mirror; write-off: Dr bad
    debt, Cr receivable. Nothing for an amount of zero or less."""
    if amount <= 0:
        return None
    debit = {"payment": chart.cash[app], "refund": chart.receivable,
             "write_off": chart.bad_debt}[source_type]
    credit = chart.cash[app] if source_type == "refund" else chart.receivable
    lines = netted([(debit, customer_id, amount), (credit, customer_id, -amount)])
    word = {"payment": "paid", "refund": "refunded", "write_off": "written off"}[source_type]
    return Entry(source_type, invoice_id, at, currency, lines,
                 f"{invoice_number or invoice_id} {word} ({app})", invoice_id, invoice_number)


def recognition_entry(document: Document, month: str, amounts: Mapping[str, Decimal],
                      at: datetime, chart: Chart) -> Entry | None:
    """A month of a document's deferred lines recognized: per side account, Dr deferred
    revenue, Cr the side account (a negative amount, of a credit note, the other way)."""
    signed: list[tuple[str, str | None, Decimal]] = []
    for account, amount in amounts.items():
        signed += [(chart.deferred_revenue, document.customer_id, amount),
                   (account, document.customer_id, -amount)]
    lines = netted(signed)
    if not lines:
        return None
    number = document.document_number or document.document_id
    return Entry("revenue_recognition", f"{document.document_id}|{month}", at,
                 document.currency, lines, f"{number}: revenue of {month} recognized",
                 document.document_id, document.document_number)


# --- what to append ------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """The live entry of a source in the journal: its latest posting not reversed."""

    entry_id: str
    source_type: str
    source_id: str
    revision: int
    digest: str
    posted_at: datetime


@dataclass(frozen=True)
class Posting:
    """One entry to append. ``entry_kind`` is ``posting`` or ``reversal``."""

    entry_id: str
    posted_at: datetime
    source_type: str
    source_id: str
    revision: int
    entry_kind: Literal["posting", "reversal"]
    reverses_entry_id: str | None
    currency: str
    digest: str
    description: str
    document_id: str | None
    document_number: str | None
    lines: tuple[JournalLine, ...]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_id(source_type: str, source_id: str, revision: int) -> str:
    return "je_" + _sha(f"{source_type}|{source_id}|{revision}")[:32]


def reversal_id(reversed_entry_id: str) -> str:
    return "je_" + _sha(f"reversal|{reversed_entry_id}")[:32]


def digest(entry: Entry, reverses_entry_id: str | None) -> str:
    """What an entry says, posting date aside: the same digest posts nothing again."""
    parts = [entry.currency, reverses_entry_id or ""]
    parts += [f"{line.account}\x1f{line.customer_id or ''}\x1f{line.debit.normalize()}"
              f"\x1f{line.credit.normalize()}" for line in entry.lines]
    return _sha("\x1e".join(parts))


def plan_postings(desired: Sequence[Entry], live: Mapping[SourceKey, Posted],
                  revisions: Mapping[SourceKey, int], now: datetime,
                  reversal_lines: Mapping[str, tuple[JournalLine, ...]],
                  reversal_currency: Mapping[str, str]) -> list[Posting]:
    """What to append so the journal's live entries are exactly ``desired``.

    ``live``: each source's live entry; ``revisions``: the highest revision each source ever
    posted; ``reversal_lines`` / ``reversal_currency``: the lines and currency of each live
    entry (to reverse it). Voids (entries with ``reverses``) are planned after the others, so
    they point at the entry their document has once this plan is applied. A first posting is
    dated by its fact; a re-posting and every reversal by ``now`` (never before the entry it
    replaces), so no closed month changes."""
    postings: list[Posting] = []
    live_after: dict[SourceKey, str] = {key: posted.entry_id for key, posted in live.items()}
    seen: set[SourceKey] = set()

    def reverse(posted: Posted) -> None:
        lines = tuple(JournalLine(line.account, line.customer_id, line.credit, line.debit)
                      for line in reversal_lines[posted.entry_id])
        postings.append(Posting(
            reversal_id(posted.entry_id), max(now, posted.posted_at), posted.source_type,
            posted.source_id, posted.revision, "reversal", posted.entry_id,
            reversal_currency[posted.entry_id], digest_of_lines(lines),
            f"reversal of {posted.entry_id}", None, None, lines))
        live_after.pop((posted.source_type, posted.source_id), None)

    ordered = [e for e in desired if e.reverses is None] + [e for e in desired if e.reverses]
    for entry in ordered:
        key = entry.key
        if key in seen:
            raise ValueError(f"two entries for source {key}")
        seen.add(key)
        reverses_id = live_after.get(entry.reverses) if entry.reverses else None
        if entry.reverses and reverses_id is None:
            continue  # nothing posted to void (a zero document)
        content = digest(entry, reverses_id)
        current = live.get(key)
        if current is not None and current.digest == content:
            continue
        if current is not None:
            reverse(current)
        revision = revisions.get(key, -1) + 1
        posted_at = entry.posted_at if key not in revisions else max(entry.posted_at, now)
        new_id = entry_id(entry.source_type, entry.source_id, revision)
        postings.append(Posting(
            new_id, posted_at, entry.source_type, entry.source_id, revision, "posting",
            reverses_id, entry.currency, content, entry.description, entry.document_id,
            entry.document_number, entry.lines))
        live_after[key] = new_id
    for key, posted in sorted(live.items()):
        if key not in seen:
            reverse(posted)
    return postings


def digest_of_lines(lines: tuple[JournalLine, ...]) -> str:
    return _sha("\x1e".join(f"{line.account}\x1f{line.customer_id or ''}\x1f"
                            f"{line.debit.normalize()}\x1f{line.credit.normalize()}"
                            for line in lines))


