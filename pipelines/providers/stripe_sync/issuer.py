"""The worker side of the outbound sync: one customer's invoices issued at Stripe, in order,
through the gateway. It never touches the warehouse: every outcome (a mapping found or made, an
invoice's result; the gateway adds each HTTP attempt) is handed to `emit`, which the calling
thread writes.

For each invoice: ensure the Stripe customer, create the invoice (`auto_advance=false`), add
its lines with their tax in one `add_lines` call, finalize, send it when the customer pays by
invoice, and check that Stripe's invoice carries exactly our lines, taxes and total including
tax. An invoice or customer an earlier run may have reached is first looked up (its mapping,
else Stripe's search by our metadata) and its lines listed, so a half-built invoice is
completed, never duplicated; lines it holds with another amount or tax (rated again since) are
updated in one `update_lines` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import stripe

from pipelines.providers.stripe_sync.client import StripeCallError, StripeGateway, metadata
from pipelines.providers.stripe_sync.issue_plan import (
    SyncCustomer,
    SyncInvoice,
    SyncRefused,
    customer_params,
    invoice_params,
    key,
    line_params,
    lines_key,
    metadata_query,
    stale_lines,
    update_line_params,
    verify,
)
from pipelines.providers.stripe_sync.paging import invoice_lines


@dataclass
class InvoiceResult:
    """What the sync of one invoice ended with."""

    invoice_id: str
    ok: bool
    external_id: str | None = None
    number: str | None = None
    hosted_url: str | None = None
    sent: bool = False
    error: str | None = None
    line_ids: dict[str, str] = field(default_factory=dict)  # our line id -> Stripe line id


@dataclass(frozen=True)
class Mapping:
    """One of our objects and the Stripe object it is (for `sync.external_ids`)."""

    object_type: str
    internal_id: str
    external_id: str


Emit = Callable[[object], None]


def _search_one(gateway: StripeGateway, service: Any, operation: str, internal_id: str,
                query: str) -> Any | None:
    found = gateway.call(operation, internal_id,
                         lambda o: service.search(params={"query": query, "limit": 10},
                                                  options=o))
    data = list(found.data)
    if len(data) > 1:
        raise SyncRefused(f"{len(data)} Stripe objects match {query}: resolve the duplicates "
                          "at Stripe before syncing again")
    return data[0] if data else None


def ensure_customer(gateway: StripeGateway, customer: SyncCustomer, emit: Emit) -> str:
    """The Stripe customer of our customer: mapped, else found by metadata, else created."""
    if customer.external_id:
        return customer.external_id
    v1 = gateway.client.v1
    query = metadata_query("customer_id", customer.customer_id)
    found = None
    if customer.needs_search:
        found = _search_one(gateway, v1.customers, "customers.search", customer.customer_id,
                            query)
    if found is None:
        params = customer_params(customer)
        try:
            found = gateway.call(
                "customers.create", customer.customer_id,
                lambda o: v1.customers.create(params=params, options=o),
                key(customer.customer_id, "customer.create"))
        except StripeCallError as exc:
            # the key was used with other details (name or email changed since): look it up
            if not isinstance(exc.cause, stripe.IdempotencyError):
                raise
            found = _search_one(gateway, v1.customers, "customers.search",
                                customer.customer_id, query)
            if found is None:
                raise
    emit(Mapping("customer", customer.customer_id, found.id))
    return str(found.id)


def _lines_by_line_id(lines: Iterable[Any], invoice: SyncInvoice) -> dict[str, Any]:
    """Stripe's lines by our line id; a line there twice, or one we do not know, is an error
    (something other than this sync changed the invoice)."""
    by_id: dict[str, Any] = {}
    for line in lines:
        ours = metadata(line).get("line_id")
        if ours is None or ours in by_id:
            raise SyncRefused(f"Stripe invoice of {invoice.invoice_id} has an unexpected line "
                              f"{line.id} (line_id {ours!r}); fix it at Stripe, then re-sync")
        by_id[ours] = line
    return by_id


def _stripe_lines(gateway: StripeGateway, stripe_invoice: Any,
                  invoice: SyncInvoice) -> dict[str, Any]:
    """Every line of the Stripe invoice, by our line id."""
    return _lines_by_line_id(invoice_lines(gateway, "invoices.lines.list", invoice.invoice_id,
                                           stripe_invoice), invoice)


def sync_invoice(gateway: StripeGateway, invoice: SyncInvoice, stripe_customer: str,
                 emit: Emit) -> InvoiceResult:
    """Create (or complete) the invoice at Stripe, finalize and send it, and check it."""
    v1 = gateway.client.v1
    iid = invoice.invoice_id
    stripe_invoice: Any = None
    if invoice.external_id:
        stripe_invoice = gateway.call("invoices.retrieve", iid,
                                      lambda o: v1.invoices.retrieve(invoice.external_id,
                                                                     options=o))
    elif invoice.needs_search:
        stripe_invoice = _search_one(gateway, v1.invoices, "invoices.search", iid,
                                     metadata_query("invoice_id", iid))
    fresh = False
    if stripe_invoice is None:
        params = invoice_params(invoice, stripe_customer)
        stripe_invoice = gateway.call("invoices.create", iid,
                                      lambda o: v1.invoices.create(params=params, options=o),
                                      key(iid, "invoice.create"))
        # made by this call, unless an earlier run may have (its saved answer shows no lines)
        fresh = (not invoice.needs_search and stripe_invoice.lines.data == []
                 and not stripe_invoice.lines.has_more)
    emit(Mapping("invoice", iid, stripe_invoice.id))
    if stripe_invoice.status == "draft":
        present = {} if fresh else _stripe_lines(gateway, stripe_invoice, invoice)
        stale = stale_lines(invoice, present)
        if stale:
            update = {"lines": [update_line_params(invoice, line, present[line.line_id].id)
                                for line in stale]}
            stripe_invoice = gateway.call(
                "invoices.update_lines", iid,
                lambda o: v1.invoices.update_lines(stripe_invoice.id, params=update, options=o),
                key(iid, "invoice.update_lines", lines_key(stale, invoice.currency)))
        missing = [line for line in invoice.lines if line.line_id not in present]
        if missing:
            params = {"lines": [line_params(invoice, line) for line in missing]}
            stripe_invoice = gateway.call(
                "invoices.add_lines", iid,
                lambda o: v1.invoices.add_lines(stripe_invoice.id, params=params, options=o),
                key(iid, "invoice.add_lines", lines_key(missing, invoice.currency)))
        stripe_invoice = gateway.call(
            "invoices.finalize_invoice", iid,
            lambda o: v1.invoices.finalize_invoice(stripe_invoice.id,
                                                   params={"auto_advance": False}, options=o),
            key(iid, "invoice.finalize"))
    elif stripe_invoice.status not in ("open", "paid", "uncollectible"):
        raise SyncRefused(f"Stripe invoice {stripe_invoice.id} of {iid} is "
                          f"{stripe_invoice.status}; it cannot be issued")
    lines = _stripe_lines(gateway, stripe_invoice, invoice)
    verify(invoice, stripe_invoice, lines)
    sent = False
    if invoice.collection_method == "send_invoice" and stripe_invoice.status == "open":
        stripe_invoice = gateway.call(
            "invoices.send_invoice", iid,
            lambda o: v1.invoices.send_invoice(stripe_invoice.id, options=o),
            key(iid, "invoice.send"))
        sent = True
    return InvoiceResult(iid, True, stripe_invoice.id, stripe_invoice.number,
                         stripe_invoice.hosted_invoice_url, sent,
                         line_ids={ours: line.id for ours, line in lines.items()})


def sync_customer(gateway: StripeGateway, customer: SyncCustomer,
                  invoices: Sequence[SyncInvoice], emit: Emit) -> None:
    """Worker task: one customer's invoices, in order; every outcome goes to `emit`."""
    try:
        stripe_customer = ensure_customer(gateway, customer, emit)
    except Exception as exc:
        for invoice in invoices:
            emit(InvoiceResult(invoice.invoice_id, False,
                               error=f"customer {customer.customer_id}: {_reason(exc)}"))
        return
    for invoice in invoices:
        try:
            emit(sync_invoice(gateway, invoice, stripe_customer, emit))
        except Exception as exc:
            emit(InvoiceResult(invoice.invoice_id, False, error=_reason(exc)))


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, SyncRefused | StripeCallError) else \
        f"{type(exc).__name__}: {exc}"
