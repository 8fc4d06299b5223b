"""Outbound sync: invoices of `stripe` billing profiles become Stripe invoices, exactly once.

The invoices ready to issue are read and checked (`issue_plan`); a zero total is settled without
Stripe; the rest move to `issuing.syncing` and are issued at Stripe (`issuer`) before our
invoice moves `issuing.syncing` -> `issued` -> `payment_processing.pending`.

Exactly once: every write carries a deterministic idempotency key, so a retry or a re-run
within Stripe's 24 h window gets the saved answer; past that, what an earlier run may have
reached at Stripe is looked up and completed, never duplicated (`issuer`).

The warehouse is never held while Stripe is called (`recording`): one short writer session
reads the plan and moves the invoices to `issuing.syncing` (or settles or refuses them); then
Stripe is called in a thread pool, one customer per task (its calls in order), and the calling
thread takes the writer again for each batch of attempts, mappings and new states
(`worker_pool`, `ledger_writes`). A crash loses at most a batch: its invoices stay in
`issuing.syncing` and the next run finds what Stripe already holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import duckdb

from pipelines.providers.stripe_sync.client import StripeGateway
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
from pipelines.providers.stripe_sync.recording import MakeGateway, OpenWriter
from pipelines.providers.stripe_sync.worker_pool import run_workers
from pipelines.warehouse import scratch, sql, transaction


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
    with scratch(con, tables=("sync_candidates",)):
        con.execute("INSERT INTO sync_candidates SELECT unnest($ids)",
                    {"ids": frame["invoice_id"].to_list()}).fetchall()
        lines_frame = con.sql(sql("sync/stripe_invoice_lines")).pl()
    lines: dict[str, list[SyncLine]] = {}
    for row in lines_frame.iter_rows(named=True):
        lines.setdefault(row["invoice_id"], []).append(SyncLine(
            row["line_id"], row["line_type"], row["description"], row["amount"],
            row["period_start"], row["period_end"], row["corrects_line_id"],
            row["tax_rate_key"], row["tax_rate_percent"], bool(row["tax_inclusive"]),
            row["tax_amount"]))
    invoices: list[SyncInvoice] = []
    customers: dict[str, SyncCustomer] = {}
    for row in frame.iter_rows(named=True):
        invoices.append(SyncInvoice(
            row["invoice_id"], row["status"], row["customer_id"], row["subscription_id"],
            row["billing_month"], row["currency"], row["total"], row["collection_method"],
            int(row["days_until_due"]), row["invoice_number"], row["invoice_external_id"],
            bool(row["invoice_needs_search"]), tuple(lines.get(row["invoice_id"], ())),
            row["corrects_invoice_id"], row["corrects_invoice_number"], row["tax_total"],
            row["total_including_tax"], row["tax_rate_key"], row["tax_country"],
            row["tax_region"], row["tax_note"]))
        if row["customer_id"] not in customers:
            customers[row["customer_id"]] = SyncCustomer(
                row["customer_id"], row["customer_name"], row["customer_email"],
                row["customer_external_id"], bool(row["customer_needs_search"]))
    return invoices, customers


@dataclass
class OutboundPlan:
    """What one run sends to Stripe: the invoices (moved to `issuing.syncing`) and their
    customers."""

    to_send: list[SyncInvoice]
    customers: dict[str, SyncCustomer]


def plan_outbound(con: duckdb.DuckDBPyConnection, summary: OutboundSummary, *,
                  now: datetime) -> OutboundPlan:
    """Read what is due and, in one transaction, refuse what Stripe cannot take
    (`issuing.sync_failed`), settle zero totals and move the rest to `issuing.syncing`: from
    then on a run looks at Stripe before creating anything for them."""
    invoices, customers = load_candidates(con)
    summary.candidates = len(invoices)
    refused: dict[str, str] = {}
    zero: list[str] = []
    to_send: list[SyncInvoice] = []
    for invoice in invoices:
        try:
            check_invoice(invoice)
        except SyncRefused as exc:
            refused[invoice.invoice_id] = str(exc)
            continue
        if invoice.owed == 0:
            zero.append(invoice.invoice_id)
        else:
            to_send.append(invoice)
    summary.refused = summary.failed = len(refused)
    summary.zero_total = len(zero)
    summary.errors += [f"{invoice_id}: {error}" for invoice_id, error in refused.items()]
    with transaction(con):
        mark_failed(con, refused, now=now)
        for invoice_id in zero:
            settle_zero_total(con, invoice_id, now=now)
        if to_send:
            mark_syncing(con, [invoice.invoice_id for invoice in to_send], now=now)
    return OutboundPlan(to_send, customers)


class WarehouseSink(CallRecordingSink):
    """Keeps what the workers report and writes it in batches (`flush`), each in a short
    writer session of its own: a killed process loses at most the last batch, which the next
    run finds again at Stripe (mapping missing -> search)."""

    def __init__(self, open_writer: OpenWriter, summary: OutboundSummary, *,
                 run_id: str | None, now: datetime) -> None:
        super().__init__(run_id=run_id, now=now, summary=summary)
        self.open_writer = open_writer
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
        with self.open_writer() as con, transaction(con):
            self.write_calls(con, [Mapping("line", line_id, ext) for r in self.results if r.ok
                                   for line_id, ext in r.line_ids.items()])
            mark_issued(con, [r for r in self.results if r.ok], now=self.now)
            mark_failed(con, {r.invoice_id: r.error or "unknown error"
                              for r in self.results if not r.ok}, now=self.now)
        self.results = []


def _customer_task(customer: SyncCustomer, invoices: list[SyncInvoice],
                   gateway: StripeGateway, emit: Callable[[object], None]) -> None:
    sync_customer(gateway, customer, invoices, emit)


def run_outbound(open_writer: OpenWriter, make_gateway: MakeGateway, *, now: datetime,
                 run_id: str | None, max_concurrency: int = 8, flush_every: int = 500,
                 flush_seconds: float = 2.0) -> OutboundSummary:
    """Sync every invoice that is ready; returns the counts. The warehouse writer is opened
    (`open_writer`) for the plan and for each batch of results, never while Stripe is
    called."""
    summary = OutboundSummary()
    with open_writer() as con:
        plan = plan_outbound(con, summary, now=now)
    if not plan.to_send:
        return summary
    by_customer: dict[str, list[SyncInvoice]] = {}
    for invoice in plan.to_send:
        by_customer.setdefault(invoice.customer_id, []).append(invoice)
    run_workers(make_gateway,
                [partial(_customer_task, plan.customers[cid], batch)
                 for cid, batch in by_customer.items()],
                WarehouseSink(open_writer, summary, run_id=run_id, now=now),
                max_concurrency=max_concurrency, flush_every=flush_every,
                flush_seconds=flush_seconds)
    return summary
