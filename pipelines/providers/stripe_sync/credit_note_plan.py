"""What the Stripe sync sends for one of our credit notes, and how it checks what Stripe then
holds. Pure rules: no call, no warehouse.

A credit note of a `stripe` profile becomes a Stripe credit note against the Stripe invoice of
the invoice it corrects. Each of our lines (a negative delta of the line it corrects) becomes a
Stripe line crediting the positive amount:

- `invoice_line_item` on Stripe's line item of the corrected line, while that line item still
  has that much left to credit (its amount at Stripe less what earlier credit notes took);
- `custom_line_item` otherwise: a manual credit note without a corrected line, a line Stripe
  never had (added by a later rating), a discount line (negative at Stripe), or a line already
  credited in full.

Each line carries its tax (the ledger's, negative like the line) as Stripe's `tax_amounts`,
naming the TaxRate Stripe made for the invoice's tax (`stripe_tax`): Stripe's credit note total
is then our `total_including_tax`, and Stripe never prorates a tax itself.

What the credit does depends on the Stripe invoice: open (unpaid), it lowers the amount due;
paid, it credits the customer's Stripe balance (`credit_amount`) or, with the profile's
`credit_note_refunds: true`, refunds the payment (`refund_amount`; `out_of_band_amount` when the
invoice was paid outside Stripe, for finance to pay back there).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.providers.stripe_sync.client import metadata
from pipelines.providers.stripe_sync.issue_plan import SyncRefused, from_minor, key, to_minor
from pipelines.providers.stripe_sync.stripe_tax import (
    LineTax,
    exclusive_tax,
    net_of,
    stripe_tax_minor,
)

MAX_MEMO = 500


@dataclass(frozen=True)
class SyncCreditNoteLine:
    """One line of our credit note, with what Stripe knows of the line it corrects."""

    credit_note_line_id: str
    corrects_line_id: str | None
    amount: Decimal                     # negative, as in the ledger
    description: str
    stripe_line_item: str | None = None  # Stripe's invoice line item of the corrected line
    line_amount: Decimal | None = None  # the corrected line's amount on the invoice at Stripe
    credited_before: Decimal = Decimal(0)  # taken off that line by earlier Stripe credit notes
    tax_rate_key: str | None = None     # the credited invoice's rate; None: untaxed
    tax_rate_percent: Decimal | None = None
    tax_inclusive: bool = False
    tax_amount: Decimal = Decimal(0)    # negative, as in the ledger

    @property
    def tax(self) -> LineTax:
        return LineTax(self.tax_rate_key, self.tax_rate_percent, self.tax_inclusive,
                       self.tax_amount)


@dataclass(frozen=True)
class SyncCreditNote:
    """A draft credit note of a `stripe` profile, due for Stripe."""

    credit_note_id: str
    invoice_id: str
    customer_id: str
    billing_month: str
    currency: str
    total: Decimal                      # positive: the amount credited
    kind: str                           # correction | manual
    reason: str
    invoice_number: str | None
    invoice_status: str                 # our corrected invoice's status
    stripe_invoice: str | None          # the Stripe invoice it credits (mapped)
    external_id: str | None             # the Stripe credit note, once mapped
    needs_search: bool                  # an earlier run called Stripe for it
    refunds: bool                       # the profile's credit_note_refunds
    lines: tuple[SyncCreditNoteLine, ...] = ()
    tax_total: Decimal = Decimal(0)     # positive: the tax credited
    total_including_tax: Decimal | None = None  # positive; None: total

    @property
    def owed(self) -> Decimal:
        """What the note credits, and Stripe's credit note total must be: including tax."""
        return self.total if self.total_including_tax is None else self.total_including_tax


@dataclass(frozen=True)
class StripeInvoiceState:
    """What the sync reads of the Stripe invoice before crediting it (minor units), and the
    TaxRates Stripe made for its tax (`total_taxes`), which a credit note's tax names."""

    status: str
    amount_remaining: int
    amount_paid: int
    amount_paid_off_stripe: int
    post_payment_credit_notes_amount: int
    tax_rates: tuple[str, ...] = ()


def check_credit_note(note: SyncCreditNote) -> None:
    """Refuse, before any call, what Stripe cannot take as it is."""
    cid = note.credit_note_id
    if note.invoice_status == "voided":
        raise SyncRefused(f"credit note {cid}: invoice {note.invoice_id} is voided; a voided "
                          "invoice cannot be credited (void the credit note instead)")
    if note.stripe_invoice is None:
        raise SyncRefused(f"credit note {cid}: invoice {note.invoice_id} was never issued at "
                          "Stripe (a zero total is not sent), so Stripe has nothing to credit")
    total = to_minor(note.total, note.currency, f"credit note {cid} total")
    if total <= 0:
        raise SyncRefused(f"credit note {cid}: total {note.total} must be positive")
    credited = 0
    for line in note.lines:
        amount = to_minor(line.amount, note.currency, f"credit note line "
                          f"{line.credit_note_line_id} amount")
        if amount >= 0:
            raise SyncRefused(f"credit note {cid}: line {line.credit_note_line_id} amount "
                              f"{line.amount} must be negative (a credit)")
        credited -= amount
    if note.lines and credited != total:
        raise SyncRefused(f"credit note {cid}: lines credit {credited} minor units but the "
                          f"total is {total}")
    tax = -sum((to_minor(line.tax_amount, note.currency, f"credit note line "
                         f"{line.credit_note_line_id} tax") for line in note.lines), 0)
    if tax != to_minor(note.tax_total, note.currency, f"credit note {cid} tax_total"):
        raise SyncRefused(f"credit note {cid}: line taxes credit {tax} minor units but "
                          f"tax_total is {note.tax_total}")
    owed = note.total - exclusive_tax(line.tax for line in note.lines)
    if owed != note.owed:
        raise SyncRefused(f"credit note {cid}: total_including_tax {note.owed} is not the "
                          f"total {note.total} plus the exclusive tax ({owed})")


def credit_note_key(note: SyncCreditNote, settlement: str) -> str:
    """The idempotency key of the create call. The settlement (pre_payment, credit, refund,
    out_of_band) is part of it: the parameters differ with it, and a run after an earlier one
    always looks for the note at Stripe before creating (so a new key never makes a second)."""
    return key(note.credit_note_id, "credit_note.create", settlement)


def _tax_rate(note: SyncCreditNote, tax_rates: tuple[str, ...]) -> str | None:
    """The Stripe TaxRate the note's tax names: the one Stripe made for the credited invoice's
    tax (all lines of an invoice have its rate). None when the note is untaxed."""
    if not any(line.tax.taxed for line in note.lines):
        return None
    if len(tax_rates) != 1:
        raise SyncRefused(
            f"credit note {note.credit_note_id} credits tax but the Stripe invoice of "
            f"{note.invoice_id} has {len(tax_rates)} tax rates ({', '.join(tax_rates) or 'none'}"
            "; an invoice issued at Stripe without its tax cannot be credited with tax there)")
    return tax_rates[0]


def _tax_amounts(note: SyncCreditNote, line: SyncCreditNoteLine,
                 rate: str | None) -> list[dict[str, Any]]:
    """A line's `tax_amounts`: the tax it credits and its taxable amount, positive in minor
    units, at the invoice's TaxRate at Stripe (none for an untaxed line)."""
    if not line.tax.taxed or rate is None:
        return []
    what = f"credit note line {line.credit_note_line_id}"
    return [{"amount": -to_minor(line.tax_amount, note.currency, f"{what} tax"),
             "tax_rate": rate,
             "taxable_amount": -to_minor(net_of(line.amount, line.tax), note.currency,
                                         f"{what} taxable amount")}]


def line_params(note: SyncCreditNote, tax_rates: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The credit note's lines as Stripe takes them, positive amounts in minor units, each
    with its tax (`tax_rates`: the TaxRates of the Stripe invoice's tax)."""
    out: list[dict[str, Any]] = []
    taken: dict[str, int] = {}  # per Stripe line item: credited by earlier lines of this note
    rate = _tax_rate(note, tax_rates)
    for line in note.lines:
        credit = -to_minor(line.amount, note.currency, line.credit_note_line_id)
        line_meta = {"credit_note_line_id": line.credit_note_line_id}
        if line.corrects_line_id:
            line_meta["corrects_line_id"] = line.corrects_line_id
        item = line.stripe_line_item
        room = None
        if item is not None and line.line_amount is not None and item not in taken:
            room = (to_minor(line.line_amount, note.currency, line.credit_note_line_id)
                    - to_minor(line.credited_before, note.currency, line.credit_note_line_id))
        if item is not None and room is not None and 0 < credit <= room:
            taken[item] = credit
            entry: dict[str, Any] = {"type": "invoice_line_item", "invoice_line_item": item,
                                     "amount": credit, "metadata": line_meta}
        else:
            entry = {"type": "custom_line_item", "unit_amount": credit, "quantity": 1,
                     "description": line.description[:500] or "Credit",
                     "metadata": line_meta}
        taxes = _tax_amounts(note, line, rate)
        if taxes:
            entry["tax_amounts"] = taxes
        out.append(entry)
    return out


def settlement(note: SyncCreditNote, invoice: StripeInvoiceState) -> tuple[str, dict[str, int]]:
    """How the credit acts on the Stripe invoice, and the amount parameters that say so:
    `pre_payment` on an open invoice (lowers what is due), else on a paid one `credit` (the
    customer's balance), `refund` or `out_of_band` (credit_note_refunds: true). Refused when
    Stripe could not take it: another invoice status, or more than it can still credit. The
    amounts include tax, as Stripe's do."""
    total = to_minor(note.owed, note.currency, f"credit note {note.credit_note_id} total")
    cur = note.currency.upper()
    if invoice.status == "open":
        if total > invoice.amount_remaining:
            raise SyncRefused(
                f"credit note {note.credit_note_id} credits {note.owed} {cur} but Stripe "
                f"invoice of {note.invoice_id} has only "
                f"{from_minor(invoice.amount_remaining, note.currency)} {cur} left to pay")
        return "pre_payment", {}
    if invoice.status == "paid":
        creditable = invoice.amount_paid - invoice.post_payment_credit_notes_amount
        if total > creditable:
            raise SyncRefused(
                f"credit note {note.credit_note_id} credits {note.owed} {cur} but only "
                f"{from_minor(creditable, note.currency)} {cur} of the paid Stripe invoice of "
                f"{note.invoice_id} can still be credited")
        if not note.refunds:
            return "credit", {"credit_amount": total}
        if invoice.amount_paid_off_stripe >= invoice.amount_paid:
            return "out_of_band", {"out_of_band_amount": total}
        return "refund", {"refund_amount": total}
    raise SyncRefused(f"credit note {note.credit_note_id}: the Stripe invoice of "
                      f"{note.invoice_id} is {invoice.status}; Stripe credits only open or paid "
                      "invoices")


def memo(note: SyncCreditNote) -> str:
    """What the customer reads on Stripe's credit note."""
    if note.kind == "correction":
        return f"Correction of invoice {note.invoice_number or note.invoice_id}"
    return note.reason[:MAX_MEMO]


def credit_note_params(note: SyncCreditNote,
                       invoice: StripeInvoiceState) -> tuple[str, dict[str, Any]]:
    """credit_notes.create parameters (and the settlement they use): our ids in the metadata,
    to find the note again past the idempotency window."""
    kind, amounts = settlement(note, invoice)
    params: dict[str, Any] = {
        "invoice": note.stripe_invoice,
        "memo": memo(note),
        "metadata": {"credit_note_id": note.credit_note_id, "invoice_id": note.invoice_id,
                     "customer_id": note.customer_id, "billing_month": note.billing_month,
                     "kind": note.kind},
        **amounts,
    }
    if note.lines:
        params["lines"] = line_params(note, invoice.tax_rates)
    else:
        params["amount"] = to_minor(note.owed, note.currency, note.credit_note_id)
    return kind, params


def verify_credit_note(note: SyncCreditNote, stripe_note: Any, lines: list[Any]) -> None:
    """Stripe's credit note must credit our invoice, in our currency, our total including tax
    and our tax, and carry exactly our lines (by credit_note_line_id) with our amounts and
    taxes."""
    want = to_minor(note.owed, note.currency, note.credit_note_id)
    if stripe_note.currency != note.currency.lower() or stripe_note.total != want:
        raise SyncRefused(
            f"Stripe credit note {stripe_note.id} credits "
            f"{from_minor(stripe_note.total, stripe_note.currency)} "
            f"{stripe_note.currency.upper()}, the ledger's credit note {note.credit_note_id} "
            f"{note.owed} {note.currency.upper()} (including tax)")
    tax = stripe_tax_minor(getattr(stripe_note, "total_taxes", None))
    if tax != to_minor(note.tax_total, note.currency, note.credit_note_id):
        raise SyncRefused(
            f"Stripe credit note {stripe_note.id} credits tax "
            f"{from_minor(tax, note.currency)} {note.currency.upper()}, the ledger's credit "
            f"note {note.credit_note_id} {note.tax_total}")
    if stripe_note.invoice != note.stripe_invoice:
        raise SyncRefused(f"Stripe credit note {stripe_note.id} credits invoice "
                          f"{stripe_note.invoice}, not {note.stripe_invoice}")
    if not note.lines:
        return
    ours = {line.credit_note_line_id: (
        -to_minor(line.amount, note.currency, line.credit_note_line_id),
        -to_minor(line.tax_amount, note.currency, line.credit_note_line_id))
        for line in note.lines}
    theirs = {metadata(line).get("credit_note_line_id"): (
        int(line.amount), stripe_tax_minor(getattr(line, "taxes", None))) for line in lines}
    if len(theirs) != len(lines) or ours != theirs:
        raise SyncRefused(f"Stripe credit note {stripe_note.id} lines differ from the ledger's "
                          f"credit note {note.credit_note_id}: {len(theirs)} at Stripe, "
                          f"{len(ours)} in the ledger")
