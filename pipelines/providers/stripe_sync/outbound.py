"""Outbound sync: invoices of `stripe` billing profiles become Stripe invoices, exactly once.

The invoices ready to issue are read and checked (`issue_plan`); a zero total is settled without
Stripe; the rest move to `issuing.syncing` and are issued at Stripe (`issuer`) before our
invoice moves `issuing.syncing` -> `issued` -> `payment_processing.pending`.

Exactly once: every write carries a deterministic idempotency key, so a retry or a re-run
within Stripe's 24 h window gets the saved answer; past that, what an earlier run may have
reached at Stripe is looked up and completed, never duplicated (`issuer`).

Stripe calls run in a thread pool, one customer per task (its calls in order); the warehouse is
written by the calling thread only, fed through a queue (`worker_pool`), so attempts and mappings
are durable as they happen (`ledger_writes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import duckdb

from pipelines.providers.stripe_sync.client import Attempt, StripeGateway
from pipelines.providers.stripe_sync.issue_plan import (
    SyncCustomer,
    SyncInvoice,
    SyncLine,
    SyncRefused,
    check_invoice,
)
from pipelines.providers.stripe_sync.issuer import InvoiceResult, Mapping, sync_customer
from pipelines.providers.stripe_sync.ledger_writes import (
    CallRecordingSink,
    mark_failed,
    mark_issued,
    mark_syncing,
    settle_zero_total,
)
from pipelines.providers.stripe_sync.worker_pool import run_workers
from pipelines.warehouse import sql, transaction


@dataclass
class OutboundSummary:
    """Counts for the asset's metadata and the CLI."""

    candidates: int = 0
    synced: int = 0
    failed: int = 0
    zero_total: int = 0
    refused: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)


def load_candidates(con: duckdb.DuckDBPyConnection) -> tuple[list[SyncInvoice],
                                                               dict[str, SyncCustomer]]:
    """The invoices to sync with their lines, and their customers."""
    frame = con.sql(sql("sync/stripe_invoices_to_sync")).pl()
    if frame.is_empty():
        return [], {}
    con.execute("CREATE OR REPLACE TEMP TABLE sync_candidates (invoice_id VARCHAR)")
    try:
        con.execute("INSERT INTO sync_candidates SELECT unnest($ids)",
                    {"ids": frame["invoice_id"].to_list()}).fetchall()
        lines_frame = con.sql(sql("sync/stripe_invoice_lines")).pl()
    finally:
        con.execute("DROP TABLE IF EXISTS sync_candidates")
    lines: dict[str, list[SyncLine]] = {}
    for row in lines_frame.iter_rows(named=True):
        lines.setdefault(row["invoice_id"], []).append(SyncLine(
            row["line_id"], row["line_type"], row["description"], row["amount"],
            row["period_start"], row["period_end"], row["corrects_line_id"]))
    invoices: list[SyncInvoice] = []
    customers: dict[str, SyncCustomer] = {}
    for row in frame.iter_rows(named=True):
        invoices.append(SyncInvoice(
            row["invoice_id"], row["status"], row["customer_id"], row["subscription_id"],
            row["billing_month"], row["currency"], row["total"], row["collection_method"],
            int(row["days_until_due"]), row["invoice_number"], row["invoice_external_id"],
            bool(row["invoice_needs_search"]), tuple(lines.get(row["invoice_id"], ())),
            row["corrects_invoice_id"], row["corrects_invoice_number"]))
        if row["customer_id"] not in customers:
            customers[row["customer_id"]] = SyncCustomer(
                row["customer_id"], row["customer_name"], row["customer_email"],
                row["customer_external_id"], bool(row["customer_needs_search"]))
    return invoices, customers


class WarehouseSink(CallRecordingSink):
    """Writes what the workers report, from the one thread that owns the connection, in small
    batches: a killed process loses at most the last fraction of a second, which the next run
    finds again at Stripe (mapping missing -> search)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, run_id: str | None,
                 now: datetime) -> None:
        super().__init__(con, run_id=run_id, now=now, summary=OutboundSummary())
        self.results: list[InvoiceResult] = []

    def add(self, message: object) -> None:
        if self.record_call(message):
            return
        if isinstance(message, InvoiceResult):
            self.results.append(message)
            if message.ok:
                self.summary.synced += 1
            else:
                self.summary.failed += 1
                self.summary.errors.append(f"{message.invoice_id}: {message.error}")

    @property
    def backlog(self) -> int:
        return len(self.attempts) + len(self.mappings) + len(self.results)

    def flush(self) -> None:
        """Make what was reported durable: attempts and mappings first, then the invoices'
        new states (issued and pending, or sync_failed with an alert), in one transaction."""
        if not self.backlog:
            return
        with transaction(self.con):
            self.write_calls([Mapping("line", line_id, ext) for r in self.results if r.ok
                              for line_id, ext in r.line_ids.items()])
            mark_issued(self.con, [r for r in self.results if r.ok], now=self.now)
            mark_failed(self.con, {r.invoice_id: r.error or "unknown error"
                                   for r in self.results if not r.ok}, now=self.now)
        self.results = []


def _customer_task(customer: SyncCustomer, invoices: list[SyncInvoice],
                   gateway: StripeGateway, emit: Callable[[object], None]) -> None:
    sync_customer(gateway, customer, invoices, emit)


def run_outbound(con: duckdb.DuckDBPyConnection,
                 make_gateway: Callable[[Callable[[Attempt], None]], StripeGateway], *,
                 now: datetime, run_id: str | None, max_concurrency: int = 8,
                 flush_every: int = 500, flush_seconds: float = 0.2) -> OutboundSummary:
    """Sync every invoice that is ready; returns the counts. `con` is the warehouse writer and
    is used from this thread only."""
    invoices, customers = load_candidates(con)
    sink = WarehouseSink(con, run_id=run_id, now=now)
    sink.summary.candidates = len(invoices)
    to_send: list[SyncInvoice] = []
    for invoice in invoices:
        try:
            check_invoice(invoice)
        except SyncRefused as exc:
            sink.summary.refused += 1
            sink.add(InvoiceResult(invoice.invoice_id, False, error=str(exc)))
            continue
        if invoice.total == 0:
            sink.summary.zero_total += 1
            with transaction(con):
                settle_zero_total(con, invoice.invoice_id, now=now)
            continue
        to_send.append(invoice)
    sink.flush()
    if not to_send:
        return sink.summary
    with transaction(con):
        mark_syncing(con, [invoice.invoice_id for invoice in to_send], now=now)
    by_customer: dict[str, list[SyncInvoice]] = {}
    for invoice in to_send:
        by_customer.setdefault(invoice.customer_id, []).append(invoice)
    run_workers(make_gateway,
                [partial(_customer_task, customers[cid], batch)
                 for cid, batch in by_customer.items()],
                sink, max_concurrency=max_concurrency, flush_every=flush_every,
                flush_seconds=flush_seconds)
    return sink.summary
