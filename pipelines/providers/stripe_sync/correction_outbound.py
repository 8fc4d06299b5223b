"""Outbound sync of corrections: credit notes of `stripe` profiles become Stripe credit notes,
and invoices the ledger voided are voided at Stripe, exactly once.

Credit notes: a draft whose `issue_after` passed and whose invoice is issued at Stripe is sent
(`correction_issuer`, rules in `credit_note_plan`); once Stripe holds it, it gets our gap-free
CN-YYYYMM-NNNNN number and is `issued`, with Stripe's number beside ours. A failure leaves it
draft with `sync_error` and an alert `stripe_sync_failed:{credit_note_id}`; the next run retries.

Supplementary invoices need nothing here: they are ordinary invoices and go through the invoice
outbound (`outbound`), their metadata naming the invoice they correct.

Voids: an invoice of a `stripe` profile in `voided` whose Stripe invoice is not known to be void
is voided there (`invoice_void` mapping once Stripe shows it void).

Exactly once: deterministic idempotency keys; a credit note called for before is looked up among
its Stripe invoice's credit notes by metadata before anything is created (beyond Stripe's 24 h
key window too); a void is checked at Stripe before it is asked.

As for invoices, the warehouse is never held while Stripe is called: one short writer session
reads the plan and marks the credit notes started; the results are written in batches, each in
a writer session of its own (`recording`, `worker_pool`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import duckdb

from pipelines.providers.stripe_sync.client import StripeGateway
from pipelines.providers.stripe_sync.correction_issuer import (
    CreditNoteResult,
    SyncVoid,
    VoidResult,
    sync_invoice_credit_notes,
    void_at_stripe,
)
from pipelines.providers.stripe_sync.correction_writes import (
    mark_credit_notes_failed,
    mark_credit_notes_issued,
    mark_credit_notes_started,
    mark_voids_failed,
    resolve_void_alerts,
)
from pipelines.providers.stripe_sync.credit_note_plan import (
    SyncCreditNote,
    SyncCreditNoteLine,
    check_credit_note,
)
from pipelines.providers.stripe_sync.issue_plan import SyncRefused
from pipelines.providers.stripe_sync.issuer import Mapping
from pipelines.providers.stripe_sync.ledger_writes import CallRecordingSink
from pipelines.providers.stripe_sync.recording import MakeGateway, OpenWriter
from pipelines.providers.stripe_sync.worker_pool import Task, run_workers
from pipelines.rating.lifecycle import POST_ISSUE
from pipelines.warehouse import scratch, sql, transaction


@dataclass
class CorrectionsSummary:
    """Counts for the asset's metadata."""

    credit_notes_candidates: int = 0
    credit_notes_issued: int = 0
    credit_notes_failed: int = 0
    voids_candidates: int = 0
    voids_synced: int = 0
    voids_failed: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)


def load_credit_notes(con: duckdb.DuckDBPyConnection, *, now: datetime) -> list[SyncCreditNote]:
    """The credit notes due for Stripe, with their lines, in the order they are credited."""
    frame = con.sql(sql("sync/stripe_credit_notes_to_sync"),
                    params={"now": now, "post_issue": sorted(POST_ISSUE)}).pl()
    if frame.is_empty():
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE sync_credit_note_candidates "
                "(credit_note_id VARCHAR)")
    with scratch(con, tables=("sync_credit_note_candidates",)):
        con.execute("INSERT INTO sync_credit_note_candidates SELECT unnest($ids)",
                    {"ids": frame["credit_note_id"].to_list()}).fetchall()
        lines_frame = con.sql(sql("sync/stripe_credit_note_lines")).pl()
    lines: dict[str, list[SyncCreditNoteLine]] = {}
    for row in lines_frame.iter_rows(named=True):
        lines.setdefault(row["credit_note_id"], []).append(SyncCreditNoteLine(
            row["credit_note_line_id"], row["corrects_line_id"], row["amount"],
            row["description"], row["stripe_line_item"], row["line_amount"],
            row["credited_before"], row["tax_rate_key"], row["tax_rate_percent"],
            bool(row["tax_inclusive"]), row["tax_amount"]))
    return [SyncCreditNote(
        row["credit_note_id"], row["invoice_id"], row["customer_id"], row["billing_month"],
        row["currency"], row["total"], row["kind"], row["reason"], row["invoice_number"],
        row["invoice_status"], row["stripe_invoice"], row["external_id"],
        bool(row["needs_search"]), bool(row["refunds"]),
        tuple(lines.get(row["credit_note_id"], ())), row["tax_total"],
        row["total_including_tax"]) for row in frame.iter_rows(named=True)]


def load_voids(con: duckdb.DuckDBPyConnection) -> list[SyncVoid]:
    """Voided invoices whose Stripe invoice is not known to be void yet."""
    return [SyncVoid(invoice_id, stripe_invoice) for invoice_id, stripe_invoice
            in con.execute(sql("sync/stripe_voids_to_sync")).fetchall()]


@dataclass
class CorrectionsPlan:
    """What one run sends to Stripe: credit notes (marked started), by invoice, and voids."""

    by_invoice: dict[str, list[SyncCreditNote]]
    voids: list[SyncVoid]


def plan_corrections(con: duckdb.DuckDBPyConnection, summary: CorrectionsSummary, *,
                     now: datetime) -> CorrectionsPlan:
    """Read the credit notes and voids due and, in one transaction, refuse what cannot go to
    Stripe (left draft with an alert) and mark the rest started: from then on a run looks at
    Stripe before creating them."""
    notes = load_credit_notes(con, now=now)
    voids = load_voids(con)
    summary.credit_notes_candidates = len(notes)
    summary.voids_candidates = len(voids)
    refused: dict[str, str] = {}
    by_invoice: dict[str, list[SyncCreditNote]] = {}
    for note in notes:
        try:
            check_credit_note(note)
        except SyncRefused as exc:
            refused[note.credit_note_id] = str(exc)
            continue
        by_invoice.setdefault(note.invoice_id, []).append(note)
    summary.credit_notes_failed = len(refused)
    summary.errors += [f"credit note {cid}: {error}" for cid, error in refused.items()]
    started = [note.credit_note_id for batch in by_invoice.values() for note in batch]
    with transaction(con):
        mark_credit_notes_failed(con, refused, now=now)
        if started:
            mark_credit_notes_started(con, started, now=now)
    return CorrectionsPlan(by_invoice, voids)


class CorrectionsSink(CallRecordingSink):
    """Keeps what the workers report and writes it in batches, each in a short writer session
    of its own."""

    def __init__(self, open_writer: OpenWriter, summary: CorrectionsSummary, *,
                 run_id: str | None, now: datetime) -> None:
        super().__init__(run_id=run_id, now=now, summary=summary)
        self.open_writer = open_writer
        self.notes: list[CreditNoteResult] = []
        self.voids: list[VoidResult] = []

    def add(self, message: object) -> None:
        s = self.summary
        if self.record_call(message):
            return
        if isinstance(message, CreditNoteResult):
            self.notes.append(message)
            s.credit_notes_issued += message.ok
            s.credit_notes_failed += not message.ok
            if not message.ok:
                s.errors.append(f"credit note {message.credit_note_id}: {message.error}")
        elif isinstance(message, VoidResult):
            self.voids.append(message)
            s.voids_synced += message.ok
            s.voids_failed += not message.ok
            if not message.ok:
                s.errors.append(f"void of {message.invoice_id}: {message.error}")

    @property
    def backlog(self) -> int:
        return len(self.attempts) + len(self.mappings) + len(self.notes) + len(self.voids)

    def flush(self) -> None:
        """Attempts and mappings, then the credit notes issued or failed and the voids done or
        refused, in one transaction."""
        if not self.backlog:
            return
        issued = [r for r in self.notes if r.ok]
        voided = [r for r in self.voids if r.ok]
        with self.open_writer() as con, transaction(con):
            self.write_calls(con, [
                *(Mapping("credit_note_line", line_id, ext) for r in issued
                  for line_id, ext in r.line_ids.items()),
                *(Mapping("invoice_void", r.invoice_id, r.stripe_invoice) for r in voided)])
            mark_credit_notes_issued(con, issued, now=self.now)
            mark_credit_notes_failed(con, {r.credit_note_id: r.error or "unknown error"
                                           for r in self.notes if not r.ok}, now=self.now)
            resolve_void_alerts(con, [r.invoice_id for r in voided], now=self.now)
            mark_voids_failed(con, {r.invoice_id: r.error or "unknown error"
                                    for r in self.voids if not r.ok}, now=self.now)
        self.notes, self.voids = [], []


def run_corrections(open_writer: OpenWriter, make_gateway: MakeGateway, *, now: datetime,
                    run_id: str | None, max_concurrency: int = 8, flush_every: int = 500,
                    flush_seconds: float = 2.0) -> CorrectionsSummary:
    """Sync every due credit note and every unsynced void; returns the counts. The warehouse
    writer is opened (`open_writer`) for the plan and for each batch of results, never while
    Stripe is called."""
    summary = CorrectionsSummary()
    with open_writer() as con:
        plan = plan_corrections(con, summary, now=now)
    tasks: list[Task] = [
        *(partial(_credit_notes_task, batch) for batch in plan.by_invoice.values()),
        *(partial(_void_task, void) for void in plan.voids)]
    run_workers(make_gateway, tasks,
                CorrectionsSink(open_writer, summary, run_id=run_id, now=now),
                max_concurrency=max_concurrency, flush_every=flush_every,
                flush_seconds=flush_seconds)
    return summary


def _credit_notes_task(notes: list[SyncCreditNote], gateway: StripeGateway,
                       emit: Callable[[object], None]) -> None:
    sync_invoice_credit_notes(gateway, notes, emit)


def _void_task(void: SyncVoid, gateway: StripeGateway, emit: Callable[[object], None]) -> None:
    void_at_stripe(gateway, void, emit)
