"""What the outbound sync sends Stripe for one of our invoices, and how it checks what Stripe
then holds. Pure rules: no call, no warehouse.

Amounts go to Stripe as integers in the currency's minor units (cents), exactly: an amount
that is not a whole number of minor units is refused, never rounded here (lines were rounded
once, when rated). Every write carries a deterministic idempotency key, so a retry or a re-run
within Stripe's 24 h window gets Stripe's saved answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

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
    if invoice.total < 0:
        raise SyncRefused(f"invoice {invoice.invoice_id} total {invoice.total} is negative; "
                          "Stripe would turn it into a credit")
    lines_total = sum((to_minor(line.amount, invoice.currency, f"line {line.line_id} amount")
                       for line in invoice.lines), 0)
    total = to_minor(invoice.total, invoice.currency, f"invoice {invoice.invoice_id} total")
    if lines_total != total:
        raise SyncRefused(f"invoice {invoice.invoice_id}: lines sum to {lines_total} minor units "
                          f"but the total is {total}")


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
    return params


def line_params(invoice: SyncInvoice, line: SyncLine) -> dict[str, Any]:
    """One add_lines entry: the exact amount in minor units (discounts negative); a correction
    line also names the line it corrects."""
    end = max(line.period_end, line.period_start)
    metadata = {"line_id": line.line_id, "invoice_id": invoice.invoice_id}
    if line.corrects_line_id:
        metadata["corrects_line_id"] = line.corrects_line_id
    return {
        "amount": to_minor(line.amount, invoice.currency, f"line {line.line_id} amount"),
        "description": line.description[:500] or line.line_type,
        "discountable": False,
        "metadata": metadata,
        "period": {"start": _epoch(line.period_start), "end": _epoch(end)},
    }


def lines_key(lines: Sequence[SyncLine]) -> str:
    """A digest of the lines one add_lines call carries, so its key differs when a re-run
    adds another set (the rest of a half-built invoice)."""
    digest = hashlib.sha256("|".join(line.line_id for line in lines).encode()).hexdigest()
    return digest[:20]


def verify(invoice: SyncInvoice, stripe_invoice: Any, lines: dict[str, Any]) -> None:
    """Stripe's invoice must carry exactly our lines and amounts and our total."""
    currency = invoice.currency
    want = to_minor(invoice.total, currency, f"invoice {invoice.invoice_id} total")
    if stripe_invoice.currency != currency.lower() or stripe_invoice.total != want:
        raise SyncRefused(
            f"Stripe total {from_minor(stripe_invoice.total, stripe_invoice.currency)} "
            f"{stripe_invoice.currency.upper()} differs from the ledger total "
            f"{invoice.total} {currency.upper()} for {invoice.invoice_id}")
    ours = {line.line_id: to_minor(line.amount, currency, line.line_id)
            for line in invoice.lines}
    theirs = {line_id: line.amount for line_id, line in lines.items()}
    if ours != theirs:
        raise SyncRefused(f"Stripe lines of {invoice.invoice_id} differ from the ledger: "
                          f"{len(theirs)} at Stripe, {len(ours)} in the ledger")
