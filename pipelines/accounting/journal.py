"""Posting the journal and the revenue schedule from the ledger (contract section 10).

`post_journal` reads the ledger's facts (sql/finance/journal_documents.sql,
sql/finance/journal_settlements.sql), lets the pure rules say which entries they call for
(`posting`) and how each line's revenue falls by month (`recognition`), appends what differs to
finance.journal_entries / finance.journal_lines and rebuilds finance.revenue_schedule, all in
one transaction. A re-run with the same facts appends nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import duckdb
import polars as pl

from pipelines.accounting.posting import (
    Chart,
    Document,
    DocumentLine,
    Entry,
    JournalLine,
    Posted,
    Posting,
    issue_entry,
    plan_postings,
    recognition_entry,
    settlement_entry,
    void_entry,
)
from pipelines.accounting.recognition import allocate_by_day, next_month_start
from pipelines.catalog.models import Accounts
from pipelines.rating.money import round_money
from pipelines.warehouse import run_sql, scratch, transaction

MONEY = pl.Decimal(38, 12)
SCRATCH = ("journal_document_lines", "journal_invoice_facts", "journal_credit_note_facts")


def chart_of(con: duckdb.DuckDBPyConnection) -> Chart:
    """The accounts billing.accounts holds (the catalog's), defaults for any role it lacks."""
    defaults = Accounts()
    rows = con.execute("SELECT role, provider, account FROM billing.accounts "
                       "WHERE plan_key IS NULL AND price_key IS NULL").fetchall()
    single = {role: account for role, provider, account in rows if provider is None}
    cash = dict(defaults.cash)
    cash.update({provider: account for role, provider, account in rows
                 if role == "cash" and provider is not None})
    return Chart(
        receivable=single.get("receivable", defaults.receivable),
        deferred_revenue=single.get("deferred_revenue", defaults.deferred_revenue),
        tax_payable=single.get("tax_payable", defaults.tax_payable),
        contra_revenue=single.get("contra_revenue", defaults.contra_revenue),
        bad_debt=single.get("bad_debt", defaults.bad_debt),
        cash=cash)


def _month_end_at(month: str) -> datetime:
    """The first instant after the month ``YYYY-MM`` (UTC)."""
    first = date(int(month[:4]), int(month[5:]), 1)
    return datetime.combine(next_month_start(first), time(0), tzinfo=UTC)


def _documents(con: duckdb.DuckDBPyConnection
               ) -> tuple[list[Document], dict[str, dict[str, object]]]:
    """The issued documents and, per document, what the schedule needs of each line."""
    rows = con.execute("""
        SELECT document_type, document_id, document_number, customer_id, currency, issued_at,
               status, line_id, net_amount, tax_amount, basis, side_account, service_start,
               service_end
        FROM journal_document_lines ORDER BY document_type, document_id, position, line_id
    """).fetchall()
    grouped: dict[tuple[str, str], list[tuple]] = defaultdict(list)
    for row in rows:
        grouped[(row[0], row[1])].append(row)
    documents: list[Document] = []
    extra: dict[str, dict[str, object]] = {}
    for (kind, ident), lines in grouped.items():
        first = lines[0]
        currency = first[4]
        documents.append(Document(
            kind, ident, first[2], first[3], currency, first[5],  # type: ignore[arg-type]
            tuple(DocumentLine(r[7], round_money(r[8], currency), round_money(r[9], currency),
                               r[10], r[11]) for r in lines)))
        extra[ident] = {"status": first[6],
                        "periods": {r[7]: (r[12], r[13]) for r in lines}}
    return documents, extra


def _schedule(documents: list[Document], extra: dict[str, dict[str, object]],
              now: datetime) -> pl.DataFrame:
    """finance.revenue_schedule: every line of every document not voided, by month."""
    records = []
    for document in documents:
        if extra[document.document_id]["status"] == "voided":
            continue
        periods = extra[document.document_id]["periods"]
        for line in document.lines:
            start, end = periods[line.line_id]  # type: ignore[index]
            for share in allocate_by_day(line.net_amount, document.currency, start, end):
                records.append({
                    "document_type": document.document_type,
                    "document_id": document.document_id, "line_id": line.line_id,
                    "customer_id": document.customer_id, "currency": document.currency,
                    "account": line.side_account, "basis": line.basis,
                    "service_start": start, "service_end": end, "month": share.month,
                    "days": share.days, "amount": share.amount, "line_amount": line.net_amount,
                    "recognized": now >= _month_end_at(share.month), "built_at": now})
    return pl.DataFrame(records, schema={
        "document_type": pl.String, "document_id": pl.String, "line_id": pl.String,
        "customer_id": pl.String, "currency": pl.String, "account": pl.String,
        "basis": pl.String, "service_start": pl.Date, "service_end": pl.Date,
        "month": pl.String, "days": pl.Int32, "amount": MONEY, "line_amount": MONEY,
        "recognized": pl.Boolean, "built_at": pl.Datetime("us", "UTC")})


def _recognitions(documents: list[Document], schedule: pl.DataFrame,
                  chart: Chart) -> list[Entry]:
    """One revenue_recognition entry per document and month over, of its deferred lines."""
    by_document: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Decimal)))
    deferred = schedule.filter(pl.col("basis") == "deferred", pl.col("recognized"))
    for document_id, month, account, amount in deferred.select(
            "document_id", "month", "account", "amount").iter_rows():
        by_document[document_id][month][account] += amount
    entries: list[Entry] = []
    for document in documents:
        for month, amounts in sorted(by_document.get(document.document_id, {}).items()):
            at = max(_month_end_at(month) - timedelta(seconds=1), document.issued_at)
            entry = recognition_entry(document, month, amounts, at, chart)
            if entry is not None:
                entries.append(entry)
    return entries


def _settlements(con: duckdb.DuckDBPyConnection, chart: Chart) -> list[Entry]:
    """Payments, refunds and write-offs of the issued invoices."""
    entries: list[Entry] = []
    rows = con.execute("""
        SELECT invoice_id, invoice_number, customer_id, currency, app, status,
               gross, credited_before_paid, credited, paid_at, refunded_at, provider_refunded,
               provider_seen_at, uncollectible_at, status_changed_at
        FROM journal_invoice_facts ORDER BY invoice_id""").fetchall()
    for (invoice, number, customer, currency, app, status, gross, credited_before_paid,
         credited, paid_at, refunded_at, provider_refunded, provider_seen_at, uncollectible_at,
         changed_at) in rows:
        facts = (invoice, number, customer, currency, app)
        settled: list[tuple[str, Decimal, datetime]] = []
        paid = gross - credited_before_paid
        if paid_at is not None:
            settled.append(("payment", paid, paid_at))
            refunded = provider_refunded if provider_refunded > 0 else (
                paid if status == "refunded" else Decimal(0))
            if refunded > 0:
                # dated by the ledger's move to (partially_)refunded; a refund only the
                # provider shows, by the snapshot that shows it (never the payment's date)
                at = max(refunded_at or provider_seen_at or changed_at, paid_at)
                settled.append(("refund", min(refunded, paid), at))
        if status == "uncollectible":
            settled.append(("write_off", gross - credited, uncollectible_at or changed_at))
        for kind, amount, at in settled:
            entry = settlement_entry(kind, *facts[:4], facts[4],  # type: ignore[arg-type]
                                     round_money(amount, currency), at, chart)
            if entry is not None:
                entries.append(entry)
    return entries


def _desired(con: duckdb.DuckDBPyConnection, documents: list[Document],
             extra: dict[str, dict[str, object]], schedule: pl.DataFrame,
             chart: Chart) -> list[Entry]:
    voided_invoices = dict(con.execute(
        "SELECT invoice_id, voided_at FROM journal_invoice_facts WHERE status = 'voided'"
    ).fetchall())
    voided_notes = dict(con.execute(
        "SELECT credit_note_id, voided_at FROM journal_credit_note_facts").fetchall())
    entries: list[Entry] = []
    for document in documents:
        issued = issue_entry(document, chart)
        if issued is None:
            continue
        entries.append(issued)
        voided = (voided_invoices if document.document_type == "invoice"
                  else voided_notes).get(document.document_id, False)
        if voided is not False:
            entries.append(void_entry(issued, voided or document.issued_at))
    entries += _recognitions(documents, schedule, chart)
    entries += _settlements(con, chart)
    return entries


def _live(con: duckdb.DuckDBPyConnection) -> tuple[
        dict[tuple[str, str], Posted], dict[tuple[str, str], int],
        dict[str, tuple[JournalLine, ...]], dict[str, str]]:
    """The journal's live entry per source, the highest revision per source, and the lines and
    currency of the live entries."""
    revisions = {(t, s): r for t, s, r in con.execute(
        "SELECT source_type, source_id, max(revision) FROM finance.journal_entries "
        "WHERE entry_kind = 'posting' GROUP BY ALL").fetchall()}
    live_rows = con.execute("""
        SELECT e.entry_id, e.source_type, e.source_id, e.revision, e.content_digest,
               e.posted_at, e.currency
        FROM finance.journal_entries e
        WHERE e.entry_kind = 'posting'
          AND NOT EXISTS (SELECT 1 FROM finance.journal_entries r
                          WHERE r.entry_kind = 'reversal' AND r.reverses_entry_id = e.entry_id)
    """).fetchall()
    live = {(t, s): Posted(i, t, s, r, d, p) for i, t, s, r, d, p, _ in live_rows}
    currency = {row[0]: row[6] for row in live_rows}
    lines: dict[str, list[JournalLine]] = defaultdict(list)
    for entry_id, account, customer, debit, credit in con.execute("""
            SELECT l.entry_id, l.account, l.customer_id, l.debit, l.credit
            FROM finance.journal_lines l
            JOIN finance.journal_entries e USING (entry_id)
            WHERE e.entry_kind = 'posting'
              AND NOT EXISTS (SELECT 1 FROM finance.journal_entries r
                              WHERE r.entry_kind = 'reversal'
                                AND r.reverses_entry_id = e.entry_id)
            ORDER BY l.entry_id, l.line_no""").fetchall():
        lines[entry_id].append(JournalLine(account, customer, debit, credit))
    return live, revisions, {k: tuple(v) for k, v in lines.items()}, currency


def _write(con: duckdb.DuckDBPyConnection, postings: list[Posting], now: datetime,
           run_id: str | None) -> None:
    if not postings:
        return
    entries = pl.DataFrame([{
        "entry_id": p.entry_id, "posted_at": p.posted_at, "source_type": p.source_type,
        "source_id": p.source_id, "revision": p.revision, "entry_kind": p.entry_kind,
        "reverses_entry_id": p.reverses_entry_id, "currency": p.currency,
        "content_digest": p.digest, "description": p.description, "document_id": p.document_id,
        "document_number": p.document_number, "recorded_at": now, "run_id": run_id,
    } for p in postings], schema={
        "entry_id": pl.String, "posted_at": pl.Datetime("us", "UTC"), "source_type": pl.String,
        "source_id": pl.String, "revision": pl.Int32, "entry_kind": pl.String,
        "reverses_entry_id": pl.String, "currency": pl.String, "content_digest": pl.String,
        "description": pl.String, "document_id": pl.String, "document_number": pl.String,
        "recorded_at": pl.Datetime("us", "UTC"), "run_id": pl.String})
    lines = pl.DataFrame([{
        "entry_id": p.entry_id, "line_no": number, "account": line.account,
        "debit": line.debit, "credit": line.credit, "customer_id": line.customer_id,
        "currency": p.currency,
    } for p in postings for number, line in enumerate(p.lines, start=1)], schema={
        "entry_id": pl.String, "line_no": pl.Int32, "account": pl.String, "debit": MONEY,
        "credit": MONEY, "customer_id": pl.String, "currency": pl.String})
    with scratch(con, frames=("journal_entries_frame", "journal_lines_frame")):
        con.register("journal_entries_frame", entries.to_arrow())
        con.register("journal_lines_frame", lines.to_arrow())
        con.execute("INSERT INTO finance.journal_entries BY NAME "
                    "SELECT * FROM journal_entries_frame")
        con.execute("INSERT INTO finance.journal_lines BY NAME SELECT * FROM journal_lines_frame")


def post_journal(con: duckdb.DuckDBPyConnection, *, now: datetime,
                 run_id: str | None = None) -> dict[str, int]:
    """Append what the ledger's facts call for to the journal and rebuild the revenue schedule,
    in one transaction. Returns the entries appended per source type (reversals apart) and the
    schedule's row count."""
    defaults = Accounts()
    run_sql(con, "finance/provider_held")
    with scratch(con, tables=SCRATCH, frames=("revenue_schedule_frame",)), transaction(con):
        run_sql(con, "finance/journal_documents",
                {"default_revenue": defaults.revenue, "default_contra": defaults.contra_revenue})
        run_sql(con, "finance/journal_settlements")
        chart = chart_of(con)
        documents, extra = _documents(con)
        schedule = _schedule(documents, extra, now)
        desired = _desired(con, documents, extra, schedule, chart)
        live, revisions, live_lines, live_currency = _live(con)
        postings = plan_postings(desired, live, revisions, now, live_lines, live_currency)
        _write(con, postings, now, run_id)
        con.execute("DELETE FROM finance.revenue_schedule")
        con.register("revenue_schedule_frame", schedule.to_arrow())
        con.execute("INSERT INTO finance.revenue_schedule BY NAME "
                    "SELECT * FROM revenue_schedule_frame")
    counts: dict[str, int] = defaultdict(int)
    for posting in postings:
        counts["reversals" if posting.entry_kind == "reversal" else posting.source_type] += 1
    counts["schedule_rows"] = schedule.height
    return dict(counts)
