"""What the outbound sync sends Stripe for one of our invoices, and how it checks what Stripe
then holds. Pure rules: no call, no warehouse.

Amounts go to Stripe as integers in the currency's minor units (cents), exactly: an amount
that is not a whole number of minor units is refused, never rounded here (lines were rounded
once, when rated). Each taxed line carries the tax the ledger computed as Stripe's
`tax_amounts` (`stripe_tax`), so Stripe's total is our `total_including_tax`; a reverse-charged
invoice shows its note as a custom field. Every write carries a deterministic idempotency key,
so a retry or a re-run within Stripe's 24 h window gets Stripe's saved answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from pipelines.catalog.models import REVERSE_CHARGE_KEY
from pipelines.providers.stripe_sync.stripe_tax import (
    REVERSE_CHARGE_FIELD,
    REVERSE_CHARGE_TEXT,
    LineTax,
    TaxRefused,
    digest_part,
    exclusive_tax,
    invoice_tax_amounts,
    net_of,
    stripe_tax_minor,
)
from pipelines.rating.money import minor_units

MAX_LINES = 250  # Stripe's limit of line items on one invoice
KEY_VERSION = "v1"


class SyncRefused(Exception):
    """An invoice the sync will not send as it is (too many lines, an amount Stripe cannot
    represent); it stays in `issuing.sync_failed` with this message."""


@dataclass(frozen=True)
class SyncLine:
    line_id: str
    line_type: str
    description: str
    amount: Decimal
    period_start: date
    period_end: date
    corrects_line_id: str | None = None  # a correction line: the line it corrects
    tax_rate_key: str | None = None      # None: untaxed (no tax_amounts sent)
    tax_rate_percent: Decimal | None = None
    tax_inclusive: bool = False
    tax_amount: Decimal = Decimal(0)     # the ledger's tax of the line, signed like it

    @property
    def tax(self) -> LineTax:
        return LineTax(self.tax_rate_key, self.tax_rate_percent, self.tax_inclusive,
                       self.tax_amount)


@dataclass(frozen=True)
class SyncCustomer:
    customer_id: str
    name: str
    email: str | None
    external_id: str | None
    needs_search: bool


@dataclass(frozen=True)
class SyncInvoice:
    invoice_id: str
    status: str
    customer_id: str
    subscription_id: str
    billing_month: str
    currency: str
    total: Decimal
    collection_method: str
    days_until_due: int
    invoice_number: str | None
    external_id: str | None
    needs_search: bool
    lines: tuple[SyncLine, ...] = ()
    corrects_invoice_id: str | None = None  # a supplementary invoice: the invoice it corrects
    corrects_invoice_number: str | None = None
    tax_total: Decimal = Decimal(0)
    total_including_tax: Decimal | None = None  # None: no tax columns (total)
    tax_rate_key: str | None = None
    tax_country: str | None = None      # the jurisdiction the tax is reported under
    tax_region: str | None = None
    tax_note: str | None = None

    @property
    def owed(self) -> Decimal:
        """What the customer owes, and Stripe's total must be: the total including tax."""
        return self.total if self.total_including_tax is None else self.total_including_tax


def to_minor(amount: Decimal, currency: str, what: str) -> int:
    """An exact amount in the currency's minor units (cents); a fraction of a cent is an
    error naming `what`, never rounded here (lines were rounded once, when rated)."""
    scaled = amount.scaleb(minor_units(currency.upper()))
    if scaled != scaled.to_integral_value():
        raise SyncRefused(f"{what}: {amount} {currency.upper()} is not a whole number of minor "
                          f"units ({minor_units(currency.upper())} decimals)")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    """Stripe's integer minor units back to a major-unit Decimal."""
    return Decimal(amount).scaleb(-minor_units(currency.upper()))


def key(internal_id: str, operation: str, variant: str = "") -> str:
    """The deterministic idempotency key of one write about one of our objects."""
    return f"bp:{internal_id}:{operation}{':' + variant if variant else ''}:{KEY_VERSION}"


def search_string(value: str) -> str:
    """`value` as a string of Stripe's search query language: in double quotes, with each
    backslash and double quote inside escaped by a backslash (`\\"`, as Stripe documents), so
    an id of ours can never end the string or add a clause to the query."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def metadata_query(key: str, value: str) -> str:
    """The search query for Stripe objects whose metadata `key` is exactly `value`."""
    return f"metadata[{search_string(key)}]:{search_string(value)}"


def check_invoice(invoice: SyncInvoice) -> None:
    """Refuse what Stripe cannot take as it is, before any call."""
    if len(invoice.lines) > MAX_LINES:
        raise SyncRefused(f"invoice {invoice.invoice_id} has {len(invoice.lines)} lines; Stripe "
                          f"allows at most {MAX_LINES} per invoice (lines are not merged)")
    if invoice.total < 0 or invoice.owed < 0:
        raise SyncRefused(f"invoice {invoice.invoice_id} total {invoice.owed} is negative; "
                          "Stripe would turn it into a credit")
    iid = invoice.invoice_id
    lines_total = sum((to_minor(line.amount, invoice.currency, f"line {line.line_id} amount")
                       for line in invoice.lines), 0)
    total = to_minor(invoice.total, invoice.currency, f"invoice {iid} total")
    if lines_total != total:
        raise SyncRefused(f"invoice {iid}: lines sum to {lines_total} minor units "
                          f"but the total is {total}")
    tax = sum((to_minor(line.tax_amount, invoice.currency, f"line {line.line_id} tax")
               for line in invoice.lines), 0)
    if tax != to_minor(invoice.tax_total, invoice.currency, f"invoice {iid} tax_total"):
        raise SyncRefused(f"invoice {iid}: line taxes sum to {tax} minor units but tax_total "
                          f"is {invoice.tax_total}")
    owed = invoice.total + exclusive_tax(line.tax for line in invoice.lines)
    if owed != invoice.owed:
        raise SyncRefused(f"invoice {iid}: total_including_tax {invoice.owed} is not the total "
                          f"{invoice.total} plus the exclusive tax ({owed})")
    for line in invoice.lines:
        if line.tax_amount and not line.tax.taxed:
            raise SyncRefused(f"invoice {iid}: line {line.line_id} has a tax of "
                              f"{line.tax_amount} but no rate")
        line_params(invoice, line)  # a rate Stripe cannot keep is refused before any call


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def customer_params(customer: SyncCustomer) -> dict[str, Any]:
    """customers.create parameters: our customer id in the metadata, to find it again."""
    params: dict[str, Any] = {"name": customer.name,
                              "metadata": {"customer_id": customer.customer_id}}
    if customer.email:
        params["email"] = customer.email
    return params


def invoice_params(invoice: SyncInvoice, stripe_customer: str) -> dict[str, Any]:
    """invoices.create parameters: a draft that never advances on its own. A supplementary
    invoice also says which invoice it corrects (metadata and the description the customer
    reads)."""
    metadata = {"invoice_id": invoice.invoice_id, "customer_id": invoice.customer_id,
                "subscription_id": invoice.subscription_id,
                "billing_month": invoice.billing_month}
    if invoice.invoice_number:
        metadata["invoice_number"] = invoice.invoice_number
    params: dict[str, Any] = {
        "customer": stripe_customer, "auto_advance": False,
        "collection_method": invoice.collection_method,
        "currency": invoice.currency.lower(), "metadata": metadata,
    }
    if invoice.corrects_invoice_id:
        metadata["corrects_invoice_id"] = invoice.corrects_invoice_id
        corrected = invoice.corrects_invoice_number or invoice.corrects_invoice_id
        params["description"] = f"Supplementary invoice correcting invoice {corrected}"
    if invoice.collection_method == "send_invoice":
        params["days_until_due"] = invoice.days_until_due
    if invoice.tax_rate_key == REVERSE_CHARGE_KEY:
        # the note the law asks for on the invoice, as a custom field: shown in the header of
        # Stripe's PDF and hosted page, without replacing the account's default footer
        params["custom_fields"] = [{"name": REVERSE_CHARGE_FIELD,
                                    "value": REVERSE_CHARGE_TEXT}]
    return params


def line_tax_amounts(invoice: SyncInvoice, line: SyncLine) -> list[dict[str, Any]]:
    """The line's `tax_amounts` (empty for an untaxed line): the ledger's tax and taxable
    amount in minor units, and the rate."""
    what = f"line {line.line_id}"
    try:
        return invoice_tax_amounts(
            line.tax, to_minor(line.tax_amount, invoice.currency, f"{what} tax"),
            to_minor(net_of(line.amount, line.tax), invoice.currency, f"{what} taxable amount"),
            invoice.tax_country, invoice.tax_region, f"invoice {invoice.invoice_id} {what}")
    except TaxRefused as exc:
        raise SyncRefused(str(exc)) from None


def line_params(invoice: SyncInvoice, line: SyncLine) -> dict[str, Any]:
    """One add_lines entry: the exact amount in minor units (discounts negative), its tax as
    `tax_amounts` when it is taxed; a correction line also names the line it corrects."""
    end = max(line.period_end, line.period_start)
    metadata = {"line_id": line.line_id, "invoice_id": invoice.invoice_id}
    if line.corrects_line_id:
        metadata["corrects_line_id"] = line.corrects_line_id
    params: dict[str, Any] = {
        "amount": to_minor(line.amount, invoice.currency, f"line {line.line_id} amount"),
        "description": line.description[:500] or line.line_type,
        "discountable": False,
        "metadata": metadata,
        "period": {"start": _epoch(line.period_start), "end": _epoch(end)},
    }
    taxes = line_tax_amounts(invoice, line)
    if taxes:
        params["tax_amounts"] = taxes
    return params


def lines_key(lines: Sequence[SyncLine], currency: str) -> str:
    """A digest of the lines one add_lines call carries (ids, amounts and taxes), so its key
    differs when a re-run adds another set (the rest of a half-built invoice) or the lines were
    rated again meanwhile (Stripe refuses a key reused with other parameters)."""
    parts = []
    for line in lines:
        amount = to_minor(line.amount, currency, line.line_id)
        tax = to_minor(line.tax_amount, currency, line.line_id)
        parts.append(f"{line.line_id}:{amount}:{digest_part(line.tax, tax)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _stripe_line(line: Any) -> tuple[int, int]:
    return int(line.amount), stripe_tax_minor(getattr(line, "taxes", None))


def stale_lines(invoice: SyncInvoice, lines: dict[str, Any]) -> list[SyncLine]:
    """Our lines Stripe holds with another amount or tax (a draft left by an earlier run, the
    invoice rated again since): they are updated, never added twice."""
    return [line for line in invoice.lines if line.line_id in lines
            and _stripe_line(lines[line.line_id]) != _ledger_line(invoice, line)]


def _ledger_line(invoice: SyncInvoice, line: SyncLine) -> tuple[int, int]:
    return (to_minor(line.amount, invoice.currency, line.line_id),
            to_minor(line.tax_amount, invoice.currency, line.line_id))


def update_line_params(invoice: SyncInvoice, line: SyncLine, stripe_line_id: str
                       ) -> dict[str, Any]:
    """One update_lines entry bringing a stale Stripe line to the ledger's amount and tax
    (`""` removes tax amounts the line no longer has)."""
    params = line_params(invoice, line)
    return {"id": stripe_line_id, "amount": params["amount"],
            "tax_amounts": params.get("tax_amounts", "")}


def verify(invoice: SyncInvoice, stripe_invoice: Any, lines: dict[str, Any]) -> None:
    """Stripe's invoice must carry exactly our lines, with our amounts and taxes, our total
    including tax and our tax total."""
    currency = invoice.currency
    iid = invoice.invoice_id
    want = to_minor(invoice.owed, currency, f"invoice {iid} total")
    if stripe_invoice.currency != currency.lower() or stripe_invoice.total != want:
        raise SyncRefused(
            f"Stripe total {from_minor(stripe_invoice.total, stripe_invoice.currency)} "
            f"{stripe_invoice.currency.upper()} differs from the ledger total "
            f"{invoice.owed} {currency.upper()} (including tax) for {iid}")
    tax = stripe_tax_minor(getattr(stripe_invoice, "total_taxes", None))
    if tax != to_minor(invoice.tax_total, currency, f"invoice {iid} tax_total"):
        raise SyncRefused(f"Stripe tax {from_minor(tax, currency)} {currency.upper()} differs "
                          f"from the ledger tax_total {invoice.tax_total} for {iid}")
    ours = {line.line_id: _ledger_line(invoice, line) for line in invoice.lines}
    theirs = {line_id: _stripe_line(line) for line_id, line in lines.items()}
    if ours != theirs:
        differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        raise SyncRefused(f"Stripe lines of {iid} differ from the ledger (amount, tax): "
                          f"{len(theirs)} at Stripe, {len(ours)} in the ledger; "
                          f"differing: {', '.join(differ[:5])}")
