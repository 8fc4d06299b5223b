"""The worker side of the corrections sync: credit notes created at Stripe and invoices voided
there, through the gateway. Like `issuer`, it never touches the warehouse: mappings and results
go to `emit`, which the calling thread writes.

A credit note an earlier run may have reached (mapped, or called for before) is looked up first:
Stripe has no credit note search, so the Stripe invoice's credit notes are listed and ours found
by `metadata.credit_note_id`, which also works long after Stripe's 24 h idempotency window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import stripe

from pipelines.providers.stripe_sync.client import StripeCallError, StripeGateway, metadata
from pipelines.providers.stripe_sync.credit_note_plan import (
    StripeInvoiceState,
    SyncCreditNote,
    credit_note_key,
    credit_note_params,
    verify_credit_note,
)
from pipelines.providers.stripe_sync.issue_plan import SyncRefused, key
from pipelines.providers.stripe_sync.issuer import Emit, Mapping
from pipelines.providers.stripe_sync.paging import list_all
from pipelines.providers.stripe_sync.stripe_tax import stripe_tax_rates


@dataclass
class CreditNoteResult:
    """What the sync of one credit note ended with."""

    credit_note_id: str
    ok: bool
    external_id: str | None = None
    number: str | None = None
    error: str | None = None
    line_ids: dict[str, str] = field(default_factory=dict)  # our line id -> Stripe's


@dataclass(frozen=True)
class SyncVoid:
    """An invoice the ledger voided, and the Stripe invoice it was issued as."""

    invoice_id: str
    stripe_invoice: str


@dataclass
class VoidResult:
    invoice_id: str
    ok: bool
    stripe_invoice: str
    error: str | None = None


def _all_lines(gateway: StripeGateway, note: SyncCreditNote, stripe_note: Any) -> list[Any]:
    """Every line of a Stripe credit note (the object embeds only the first ten)."""
    if not stripe_note.lines.has_more:
        return list(stripe_note.lines.data)
    v1 = gateway.client.v1
    return list(list_all(
        gateway, "credit_notes.lines.list", note.credit_note_id,
        lambda params, options: v1.credit_notes.line_items.list(stripe_note.id, params=params,
                                                                options=options)))


def find_credit_note(gateway: StripeGateway, note: SyncCreditNote) -> Any | None:
    """Our credit note at Stripe, found among its invoice's credit notes by our metadata;
    two of them is an error to resolve at Stripe, never a pick."""
    v1 = gateway.client.v1
    found = [cn for cn in list_all(
        gateway, "credit_notes.list", note.credit_note_id,
        lambda params, options: v1.credit_notes.list(params=params, options=options),
        {"invoice": note.stripe_invoice})
        if metadata(cn).get("credit_note_id") == note.credit_note_id]
    if len(found) > 1:
        raise SyncRefused(f"{len(found)} Stripe credit notes of {note.stripe_invoice} carry "
                          f"credit_note_id {note.credit_note_id}: void the extra ones at Stripe "
                          "before syncing again")
    return found[0] if found else None


def invoice_state(stripe_invoice: Any) -> StripeInvoiceState:
    return StripeInvoiceState(
        status=stripe_invoice.status,
        amount_remaining=int(stripe_invoice.amount_remaining or 0),
        amount_paid=int(stripe_invoice.amount_paid or 0),
        amount_paid_off_stripe=int(getattr(stripe_invoice, "amount_paid_off_stripe", 0) or 0),
        post_payment_credit_notes_amount=int(
            getattr(stripe_invoice, "post_payment_credit_notes_amount", 0) or 0),
        tax_rates=tuple(stripe_tax_rates(getattr(stripe_invoice, "total_taxes", None))))


def sync_credit_note(gateway: StripeGateway, note: SyncCreditNote, emit: Emit) -> CreditNoteResult:
    """Create (or find) the credit note at Stripe and check it against the ledger (the run
    refused beforehand what `check_credit_note` refuses)."""
    v1 = gateway.client.v1
    cid = note.credit_note_id
    stripe_note: Any = None
    if note.external_id:
        stripe_note = gateway.call("credit_notes.retrieve", cid,
                                   lambda o: v1.credit_notes.retrieve(note.external_id,
                                                                      options=o))
    elif note.needs_search:
        stripe_note = find_credit_note(gateway, note)
    if stripe_note is None:
        stripe_invoice = gateway.call(
            "invoices.retrieve", cid,
            lambda o: v1.invoices.retrieve(note.stripe_invoice, options=o))
        kind, params = credit_note_params(note, invoice_state(stripe_invoice))
        try:
            stripe_note = gateway.call(
                "credit_notes.create", cid,
                lambda o: v1.credit_notes.create(params=params, options=o),
                credit_note_key(note, kind))
        except StripeCallError as exc:
            # the key was first used with other parameters: what was made then is at Stripe
            if not isinstance(exc.cause, stripe.IdempotencyError):
                raise
            stripe_note = find_credit_note(gateway, note)
            if stripe_note is None:
                raise
    emit(Mapping("credit_note", cid, stripe_note.id))
    lines = _all_lines(gateway, note, stripe_note)
    verify_credit_note(note, stripe_note, lines)
    return CreditNoteResult(cid, True, stripe_note.id, stripe_note.number, line_ids={
        metadata(line)["credit_note_line_id"]: line.id for line in lines
        if metadata(line).get("credit_note_line_id")})


def sync_invoice_credit_notes(gateway: StripeGateway, notes: Sequence[SyncCreditNote],
                              emit: Emit) -> None:
    """Worker task: one invoice's credit notes, in order (each reads what the previous left
    creditable); every outcome goes to `emit`."""
    for note in notes:
        try:
            emit(sync_credit_note(gateway, note, emit))
        except Exception as exc:
            emit(CreditNoteResult(note.credit_note_id, False, error=reason(exc)))


def void_at_stripe(gateway: StripeGateway, void: SyncVoid, emit: Emit) -> None:
    """Worker task: the Stripe invoice of an invoice the ledger voided is voided too, once.
    Already void at Stripe (voided there first, or by an earlier run) is success; a paid one is
    refused (Stripe voids only open or uncollectible invoices: credit it instead)."""
    v1 = gateway.client.v1
    iid = void.invoice_id
    try:
        stripe_invoice = gateway.call("invoices.retrieve", iid,
                                      lambda o: v1.invoices.retrieve(void.stripe_invoice,
                                                                     options=o))
        if stripe_invoice.status in ("open", "uncollectible"):
            stripe_invoice = gateway.call(
                "invoices.void_invoice", iid,
                lambda o: v1.invoices.void_invoice(void.stripe_invoice, options=o),
                key(iid, "invoice.void"))
        if stripe_invoice.status != "void":
            raise SyncRefused(f"Stripe invoice {void.stripe_invoice} of {iid} is "
                              f"{stripe_invoice.status}; Stripe voids only open or "
                              "uncollectible invoices (credit a paid one instead)")
        emit(VoidResult(iid, True, void.stripe_invoice))
    except Exception as exc:
        emit(VoidResult(iid, False, void.stripe_invoice, error=reason(exc)))


def reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, SyncRefused | StripeCallError) else \
        f"{type(exc).__name__}: {exc}"
