"""Corrections billed on the next invoice, and the customer's credit balance (contract section 9,
`corrections: next_invoice`).

With that policy an approved correction is not a document of its own: it becomes a `correction`
line on the subscription's next invoice (the earliest draft cut after the corrected invoice),
pointing at the corrected invoice and line; until that draft exists it waits. No invoice total
goes below zero: a draft whose lines add up to less than zero carries the excess over to the
customer's credit balance (a positive `credit_balance` line brings it to zero), and a draft of a
customer with a balance uses as much of it as its total absorbs (a negative `credit_balance`
line). The balance is `billing.customer_credit_movements` (+ carried over, - used), per customer
and currency, read as `billing.customer_credit_balances`. How much an invoice absorbs is the pure
rule `pipelines.rating.credit_balance`.

Drafts change at every re-rating, so their correction lines, credit lines and movements are
rebuilt from `billing.corrections` and the balance each time this runs; an invoice past draft
keeps them as issued. A voided invoice gives its corrections back to the next draft, returns the
credit it used and takes back what it carried over.

Callers hold the warehouse writer; everything runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import groupby

import duckdb
import polars as pl

from pipelines.rating.credit_balance import DraftToSettle, settle_drafts
from pipelines.warehouse import run_sql, scratch, sql

MONEY = pl.Decimal(38, 12)


@dataclass(frozen=True)
class NextInvoiceCounts:
    """Where the next-invoice corrections and the credit balance stand after a pass."""

    on_drafts: int        # approved corrections on a draft's correction lines
    waiting: int          # approved corrections waiting for their subscription's next draft
    drafts_settled: int   # drafts given a credit_balance line (credit used or carried over)


def bill_on_next_invoices(con: duckdb.DuckDBPyConnection, *, now: datetime) -> NextInvoiceCounts:
    """Put every approved `next_invoice` correction on its subscription's next draft, settle the
    drafts against the customers' credit balances, and total the drafts from their lines."""
    run_sql(con, "billing/next_invoice_corrections")
    settled = settle_credit_balances(con, now=now)
    run_sql(con, "billing/draft_totals")
    on_drafts, waiting = con.execute("""
        SELECT count(*) FILTER (WHERE i.status = 'draft'),
               count(*) FILTER (WHERE c.document_id IS NULL)
        FROM billing.corrections c
        LEFT JOIN billing.invoices i ON i.invoice_id = c.document_id
        WHERE c.document_type = 'next_invoice' AND c.status = 'approved'""").fetchall()[0]
    return NextInvoiceCounts(on_drafts=on_drafts, waiting=waiting, drafts_settled=settled)


def settle_credit_balances(con: duckdb.DuckDBPyConnection, *, now: datetime) -> int:
    """Settle every draft against its customer's credit balance, again from scratch (what a
    draft used or carried over is provisional until it leaves draft). Returns how many drafts
    got a credit_balance line."""
    run_sql(con, "billing/credit_balance_reset", {"now": now})
    rows = con.execute(sql("billing/credit_balance_drafts")).fetchall()
    applications = []
    for (customer_id, currency), group in groupby(rows, key=lambda r: (r[1], r[2])):
        drafts = list(group)
        available: Decimal = drafts[0][4]
        for draft, applied in settle_drafts(
                (DraftToSettle(invoice_id=r[0], total_before_credit=r[3]) for r in drafts),
                available):
            if applied.line_amount != 0:
                applications.append({
                    "invoice_id": draft.invoice_id, "customer_id": customer_id,
                    "currency": currency, "used": applied.used,
                    "carried_over": applied.carried_over})
    if not applications:
        return 0
    frame = pl.DataFrame(applications, schema={
        "invoice_id": pl.String, "customer_id": pl.String, "currency": pl.String,
        "used": MONEY, "carried_over": MONEY})
    con.register("credit_applications_frame", frame.to_arrow())
    with scratch(con, frames=("credit_applications_frame",), tables=("credit_applications",)):
        con.execute("CREATE OR REPLACE TEMP TABLE credit_applications AS "
                    "SELECT * FROM credit_applications_frame")
        run_sql(con, "billing/credit_balance_lines", {"now": now})
    return len(applications)
