"""Corrections of invoices past draft, in the warehouse (contract section 9).

A billing-month run re-rates every cut, drafts and issued invoices alike. For an invoice past
draft the ledger keeps the issued amounts and, per line, turns the difference with the latest
rating into a correction (`pipelines.rating.corrections` says how): approved at once when within
the billing profile's `auto_approve_corrections_up_to`, else waiting for a person. Approved
corrections become documents that point at the invoice: a credit note for the decreases, a
supplementary invoice for the increases (or, with `corrections: next_invoice`, lines on the
subscription's next invoice). Documents of profiles with app `none` are numbered and issued once
the profile's grace period is over; the provider apps take theirs on in the sync.

Callers hold the warehouse writer; each function runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import duckdb

from pipelines.catalog.models import Catalog
from pipelines.invoicing.document_tax import fill_document_tax
from pipelines.invoicing.next_invoice import bill_on_next_invoices
from pipelines.invoicing.shard_numbering import numbering_deferred
from pipelines.rating.corrections import (
    CorrectionStatus,
    LineAccount,
    LineDelta,
    group_documents,
    initial_status,
    line_deltas,
    split_credit,
)
from pipelines.warehouse import run_sql, scratch, sql

AUTO_APPROVER = "auto_approve"


class CorrectionError(ValueError):
    """A decision the ledger refuses (unknown correction, already decided)."""


@dataclass(frozen=True)
class CorrectionCounts:
    """What one pass over the re-rated invoices past draft did."""

    proposed: int          # new corrections recorded
    approved: int          # of them, approved at once (within the profile's threshold)
    pending: int           # of them, waiting for approval
    documents: int         # credit notes and supplementary invoices made


def propose_corrections(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, now: datetime,
                        run_id: str | None) -> CorrectionCounts:
    """Record the corrections the latest rating calls for (reads the temp tables
    `draft_invoices` / `draft_lines` of the month being written), remember that rating per
    line, and make the documents of every approved correction not yet on one. Corrections whose
    credit note or supplementary invoice was voided since (however it was voided) are withdrawn
    first, so that the rating proposes their difference again."""
    withdraw_corrections(con, now=now)
    with scratch(con, tables=("correction_accounts",)):
        con.execute("CREATE OR REPLACE TEMP TABLE correction_accounts AS "
                    + sql("billing/correction_line_accounts"))
        # the latest rating of every line, set-based: a month of 10,000 issued invoices re-run
        con.execute("""
            INSERT OR REPLACE INTO billing.issued_line_ratings
                (invoice_id, line_id, rated_amount, rated_at, run_id)
            SELECT invoice_id, line_id, rated, $now, $run_id FROM correction_accounts""",
                    {"now": now, "run_id": run_id}).fetchall()
        # only lines whose rating differs from what is covered can call for a correction
        cursor = con.execute("SELECT * FROM correction_accounts "
                             "WHERE rated <> issued + corrected ORDER BY invoice_id, line_id")
        columns = [d[0] for d in cursor.description]
        accounts = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    by_line = {(a["invoice_id"], a["line_id"]): a for a in accounts}
    deltas = line_deltas(LineAccount(
        invoice_id=a["invoice_id"], line_id=a["line_id"], description=a["description"],
        issued=a["issued"], corrected=a["corrected"], rated=a["rated"], revision=a["revision"],
        rejected=tuple((r["covered"], r["rated"]) for r in a["rejected"]))
        for a in accounts)
    known = {row[0] for row in con.execute(
        "SELECT correction_id FROM billing.corrections WHERE list_contains($ids, correction_id)",
        {"ids": [d.correction_id for d in deltas]}).fetchall()} if deltas else set()
    approved = pending = 0
    for delta in deltas:
        if delta.correction_id in known:
            continue  # recorded before (ids count every correction of the line: never)
        account = by_line[(delta.invoice_id, delta.line_id)]
        profile = catalog.billing_profiles.get(account["billing_profile"])
        threshold = profile.auto_approve_corrections_up_to if profile else Decimal(0)
        policy = profile.corrections if profile else "documents"
        status = initial_status(delta.delta, threshold)
        _insert_correction(con, delta, account, status=status, policy=policy, now=now,
                           run_id=run_id)
        _record_decision(con, delta.correction_id, None, "pending_approval", now=now,
                         actor="billing_run", reason=f"re-rating differs by {delta.delta}")
        if status == "approved":
            _record_decision(con, delta.correction_id, "pending_approval", "approved", now=now,
                             actor=AUTO_APPROVER,
                             reason=f"within auto_approve_corrections_up_to {threshold}")
            approved += 1
        else:
            pending += 1
    documents = make_documents(con, catalog, now=now, actor="billing_run")
    return CorrectionCounts(proposed=approved + pending, approved=approved, pending=pending,
                            documents=documents)


def decide(con: duckdb.DuckDBPyConnection, catalog: Catalog, correction_id: str, *,
           approve: bool, actor: str, reason: str | None, now: datetime) -> str | None:
    """Approve or reject a correction waiting for approval; an approval makes its document at
    once. Returns the document id made, if any."""
    found = con.execute("SELECT status FROM billing.corrections WHERE correction_id = $id",
                        {"id": correction_id}).fetchall()
    if not found:
        raise CorrectionError(f"no correction {correction_id}")
    if found[0][0] != "pending_approval":
        raise CorrectionError(f"correction {correction_id} is already {found[0][0]}")
    if not approve and not (reason and reason.strip()):
        raise CorrectionError("a rejection needs a reason")
    to_status: CorrectionStatus = "approved" if approve else "rejected"
    con.execute("""
        UPDATE billing.corrections SET status = $status, decided_by = $actor, decided_at = $now,
               reason = $reason
        WHERE correction_id = $id""",
        {"status": to_status, "actor": actor, "now": now, "reason": reason,
         "id": correction_id}).fetchall()
    _record_decision(con, correction_id, "pending_approval", to_status, now=now, actor=actor,
                     reason=reason)
    if not approve:
        return None
    before = _document_of(con, correction_id)
    make_documents(con, catalog, now=now, actor=actor)
    after = _document_of(con, correction_id)
    return after if after != before else None


def make_documents(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, now: datetime,
                   actor: str) -> int:
    """Credit notes and supplementary invoices for the approved corrections of policy
    `documents` that are on no document yet; returns how many documents were made. A credit
    note credits at most what remains creditable on its invoice; the rest of the decreases goes
    to the customer's credit balance (`_make_credit_note`)."""
    rows = con.execute("""
        SELECT c.correction_id, c.invoice_id, c.line_id, c.description, c.delta,
               c.covered_amount, c.rated_amount
        FROM billing.corrections c
        WHERE c.status = 'approved' AND c.document_id IS NULL
          AND c.document_type IN ('credit_note', 'supplementary_invoice')
        ORDER BY c.invoice_id, c.detected_at, c.correction_id""").fetchall()
    deltas = [LineDelta(correction_id=r[0], invoice_id=r[1], line_id=r[2], description=r[3],
                        delta=r[4], covered=r[5], rated=r[6]) for r in rows]
    made = 0
    for document in group_documents(deltas):
        invoice = _invoice(con, document.invoice_id)
        profile = catalog.billing_profiles.get(invoice["billing_profile"])
        grace = profile.grace_period if profile else timedelta(0)
        params = {"document_id": document.document_id, "invoice_id": document.invoice_id,
                  "ids": list(document.correction_ids), "now": now,
                  "issue_after": now + grace, "actor": actor}
        if document.document_type == "credit_note":
            decreases = sorted((d for d in deltas if d.correction_id in document.correction_ids),
                               key=lambda d: (d.line_id, d.correction_id))
            made += _make_credit_note(con, decreases, params)
            continue
        run_sql(con, "billing/correction_supplementary_invoice", params)
        con.execute("""
            UPDATE billing.corrections SET document_id = $document_id
            WHERE list_contains($ids, correction_id)""",
            {"document_id": document.document_id,
             "ids": list(document.correction_ids)}).fetchall()
        made += 1
    # policy next_invoice: approved corrections as lines on the subscription's next draft
    bill_on_next_invoices(con, now=now)
    fill_document_tax(con)  # the documents' lines taxed at the rate of the invoice they correct
    return made


def _make_credit_note(con: duckdb.DuckDBPyConnection, decreases: Sequence[LineDelta],
                      params: dict) -> int:
    """The credit note of one invoice's approved decreases, crediting at most what remains
    creditable on it (billing.remaining_creditable, the limit manual credit notes have too):
    each decrease is split (`split_credit`) between a line of the note and, for what does not
    fit, the customer's credit balance. Returns 1 if a credit note was made, 0 when nothing
    remained creditable (every decrease then went to the credit balance)."""
    found = con.execute("SELECT remaining FROM billing.remaining_creditable "
                        "WHERE invoice_id = $id", {"id": params["invoice_id"]}).fetchall()
    splits = split_credit(decreases, found[0][0] if found else Decimal(0))
    con.execute("CREATE OR REPLACE TEMP TABLE credit_note_split (correction_id VARCHAR, "
                "credited DECIMAL(38, 12), beyond DECIMAL(38, 12))")
    with scratch(con, tables=("credit_note_split",)):
        con.executemany("INSERT INTO credit_note_split VALUES (?, ?, ?)",
                        [(s.correction_id, s.credited, s.beyond) for s in splits])
        run_sql(con, "billing/correction_credit_note", params)
    return 1 if any(s.credited > 0 for s in splits) else 0


def withdraw_corrections(con: duckdb.DuckDBPyConnection, *, now: datetime,
                         voided_invoice_id: str | None = None, reason: str | None = None,
                         actor: str | None = None) -> int:
    """Withdraw (reject, saying who voided what and why) the corrections that what they stand on
    no longer carries (sql/billing/void_withdraws_corrections.sql): those of
    `voided_invoice_id`, just voided by `actor` for `reason`, on no issued document yet; and
    every correction whose credit note or supplementary invoice was voided, whoever voided it
    (its credit balance part taken back; the next re-run proposes its delta again). Returns how
    many were withdrawn."""
    with scratch(con, tables=("withdrawn_corrections",)):
        run_sql(con, "billing/void_withdraws_corrections",
                {"invoice_id": voided_invoice_id, "reason": reason, "actor": actor, "now": now})
        return con.execute("SELECT count(*) FROM withdrawn_corrections").fetchall()[0][0]


def issue_due_credit_notes(con: duckdb.DuckDBPyConnection, *, now: datetime) -> int:
    """Number (CN-YYYYMM-NNNNN, gap-free per billing month) and issue the draft credit notes of
    profiles with app `none` whose grace period is over. Returns how many were issued."""
    due = con.execute("""
        SELECT credit_note_id FROM billing.credit_notes
        WHERE status = 'draft' AND app = 'none' AND issue_after <= $now""",
                      {"now": now}).fetchall()
    if not due:
        return 0
    ids = [row[0] for row in due]
    issue_credit_notes(con, ids, now=now, cause="grace period over", actor="billing_run")
    return len(ids)


def issue_credit_notes(con: duckdb.DuckDBPyConnection, credit_note_ids: Sequence[str], *,
                       now: datetime, cause: str, actor: str) -> None:
    """Issue these draft credit notes, with a status history row saying why and who, and number
    them (`number_credit_notes`): app none after the grace period, app stripe once Stripe has
    the note."""
    if not credit_note_ids:
        return
    _fill_numbering(con, credit_note_ids)
    with scratch(con, tables=("numbering",)):
        run_sql(con, "billing/credit_notes_issue", {"now": now, "cause": cause, "actor": actor})
        if not numbering_deferred():
            run_sql(con, "billing/credit_note_numbers")


def number_credit_notes(con: duckdb.DuckDBPyConnection, credit_note_ids: Sequence[str]) -> None:
    """Give those of these credit notes that are issued without a number the next gap-free
    CN-YYYYMM-NNNNN of their billing month: the one numbering every app's credit notes share
    (custom invoicing calls it once its hooks took a credit note to `issued`)."""
    if not credit_note_ids or numbering_deferred():
        return
    _fill_numbering(con, credit_note_ids)
    with scratch(con, tables=("numbering",)):
        run_sql(con, "billing/credit_note_numbers")


def _fill_numbering(con: duckdb.DuckDBPyConnection, credit_note_ids: Sequence[str]) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE numbering AS "
                "SELECT unnest($ids) AS credit_note_id", {"ids": list(credit_note_ids)})


def _insert_correction(con: duckdb.DuckDBPyConnection, delta: LineDelta, account: dict, *,
                       status: CorrectionStatus, policy: str, now: datetime,
                       run_id: str | None) -> None:
    document_type = "next_invoice" if policy == "next_invoice" else delta.document_type
    con.execute("""
        INSERT INTO billing.corrections (
            correction_id, invoice_id, line_id, customer_id, billing_month, currency,
            description, issued_amount, covered_amount, rated_amount, delta, revision,
            document_type, document_id, status, reason, decided_by, decided_at, detected_at,
            run_id, subscription_id, line_type, price_key, meter_key, period_start, period_end)
        VALUES ($id, $invoice_id, $line_id, $customer_id, $billing_month, $currency,
                $description, $issued, $covered, $rated, $delta, $revision, $document_type, NULL,
                $status, NULL, $decided_by, $decided_at, $now, $run_id, $subscription_id,
                $line_type, $price_key, $meter_key, $period_start, $period_end)""", {
        "id": delta.correction_id, "invoice_id": delta.invoice_id, "line_id": delta.line_id,
        "customer_id": account["customer_id"], "billing_month": account["billing_month"],
        "currency": account["currency"], "description": delta.description,
        "issued": account["issued"], "covered": delta.covered, "rated": delta.rated,
        "delta": delta.delta, "revision": account["revision"], "document_type": document_type,
        "status": status, "decided_by": AUTO_APPROVER if status == "approved" else None,
        "decided_at": now if status == "approved" else None, "now": now, "run_id": run_id,
        "subscription_id": account["subscription_id"], "line_type": account["line_type"],
        "price_key": account["price_key"], "meter_key": account["meter_key"],
        "period_start": account["period_start"], "period_end": account["period_end"],
    }).fetchall()


def _record_decision(con: duckdb.DuckDBPyConnection, correction_id: str,
                     from_status: str | None, to_status: str, *, now: datetime, actor: str,
                     reason: str | None) -> None:
    con.execute("""
        INSERT INTO billing.correction_history
            (correction_id, from_status, to_status, changed_at, actor, reason)
        VALUES ($id, $from, $to, $now, $actor, $reason)""",
        {"id": correction_id, "from": from_status, "to": to_status, "now": now, "actor": actor,
         "reason": reason}).fetchall()


def _document_of(con: duckdb.DuckDBPyConnection, correction_id: str) -> str | None:
    return con.execute("SELECT document_id FROM billing.corrections WHERE correction_id = $id",
                       {"id": correction_id}).fetchall()[0][0]


def _invoice(con: duckdb.DuckDBPyConnection, invoice_id: str) -> dict:
    cursor = con.execute("SELECT * FROM billing.invoices WHERE invoice_id = $id",
                         {"id": invoice_id})
    columns = [d[0] for d in cursor.description]
    return dict(zip(columns, cursor.fetchall()[0], strict=True))

