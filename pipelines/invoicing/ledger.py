"""Writing rated invoices to billing.invoices / invoice_lines / invoice_status_history.

A month's drafts are replaced in place with the same ids on every run; an invoice past draft is
never changed, and a re-run that rates it differently records the difference instead. Once their
grace period is over, drafts leave draft: issued with gap-free numbers for profiles without a
provider app, handed on to the Stripe sync or the custom invoicing hooks otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from pipelines.catalog.models import Catalog
from pipelines.invoicing.adjustments import apply_stored_adjustments
from pipelines.invoicing.corrections import (
    CorrectionCounts,
    issue_due_credit_notes,
    propose_corrections,
)
from pipelines.invoicing.document_tax import (
    INVOICE_TAX_SCHEMA,
    LINE_TAX_SCHEMA,
    CustomerTax,
    fill_document_tax,
    invoice_tax_fields,
)
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.rating.invoices import InvoiceDraft
from pipelines.rating.lifecycle import issue_after
from pipelines.rating.money import zero
from pipelines.warehouse import run_sql, sql, transaction

MONEY = pl.Decimal(38, 12)


@dataclass(frozen=True)
class LedgerUpdate:
    """What one rating pass did to a billing month."""

    rated: int            # drafts produced by the rating
    written: int          # drafts inserted or re-rated in place
    frozen: int           # produced for invoices already issued: left unchanged
    differences: int      # new differences recorded against issued invoices
    discarded: int        # drafts no longer produced by the catalog
    left_draft: int       # drafts that left draft (grace period over): issued, or on to sync
    corrections: CorrectionCounts | None = None  # deltas of invoices past draft, and documents
    credit_notes_issued: int = 0


def draft_frames(drafts: Sequence[InvoiceDraft], catalog: Catalog,
                 rated_at: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Drafts and their lines as frames shaped like billing.invoices / billing.invoice_lines."""
    invoices = []
    lines = []
    taxes = CustomerTax(catalog)
    for draft in drafts:
        profile = catalog.profile_of(draft.customer_id)
        if profile is None:
            raise ValueError(f"customer {draft.customer_id} has no billing profile and the "
                             "catalog has no default profile")
        tax = taxes.of(draft.customer_id)
        line_taxes = [tax.tax_of(line.amount, draft.currency) for line in draft.lines]
        tax_total = sum(line_taxes, zero(draft.currency))
        invoices.append({
            "invoice_id": draft.invoice_id, "customer_id": draft.customer_id,
            "subscription_id": draft.subscription_id, "plan_key": draft.plan_key,
            "billing_month": draft.billing_month, "boundary": draft.boundary,
            "period_start": draft.period_start, "period_end": draft.period_end,
            "currency": draft.currency, "subtotal": draft.subtotal,
            "discount_total": draft.discount_total, "total": draft.total,
            "collection_method": draft.collection_method, "due_date": draft.due_date,
            "billing_profile": profile.key, "app": profile.app,
            "issue_after": issue_after(draft.boundary, profile.grace_period),
            "rated_at": rated_at,
            **invoice_tax_fields(tax, tax_total, draft.total),
        })
        for position, (line, line_tax) in enumerate(zip(draft.lines, line_taxes, strict=True)):
            lines.append({
                "line_id": line.line_id, "invoice_id": draft.invoice_id,
                "line_type": line.line_type, "price_key": line.price_key,
                "meter_key": line.meter_key, "description": line.description,
                "quantity": line.quantity, "unit_price": line.unit_price, "amount": line.amount,
                "period_start": line.period_start, "period_end": line.period_end,
                "tiers": json.dumps([t.to_dict() for t in line.tiers]) if line.tiers else None,
                "position": position, "tax_rate_key": tax.rate_key,
                "tax_rate_percent": tax.percent, "tax_inclusive": tax.inclusive,
                "tax_amount": line_tax,
            })
    invoice_schema = {
        "invoice_id": pl.String, "customer_id": pl.String, "subscription_id": pl.String,
        "plan_key": pl.String, "billing_month": pl.String, "boundary": pl.Date,
        "period_start": pl.Date, "period_end": pl.Date, "currency": pl.String,
        "subtotal": MONEY, "discount_total": MONEY, "total": MONEY,
        "collection_method": pl.String, "due_date": pl.Date, "billing_profile": pl.String,
        "app": pl.String, "issue_after": pl.Datetime("us", "UTC"),
        "rated_at": pl.Datetime("us", "UTC"), **INVOICE_TAX_SCHEMA,
    }
    line_schema = {
        "line_id": pl.String, "invoice_id": pl.String, "line_type": pl.String,
        "price_key": pl.String, "meter_key": pl.String, "description": pl.String,
        "quantity": MONEY, "unit_price": MONEY, "amount": MONEY, "period_start": pl.Date,
        "period_end": pl.Date, "tiers": pl.String, "position": pl.Int32, **LINE_TAX_SCHEMA,
    }
    return (pl.DataFrame(invoices, schema=invoice_schema, orient="row" if not invoices else None),
            pl.DataFrame(lines, schema=line_schema))


def write_month(con: duckdb.DuckDBPyConnection, billing_month: str,
                drafts: Sequence[InvoiceDraft], catalog: Catalog, *, now: datetime,
                run_id: str | None) -> LedgerUpdate:
    """Write one billing month's rated drafts and issue what is due, in one transaction. Each
    draft gets the adjustments stored for its invoice first, so re-rating keeps them."""
    drafts = apply_stored_adjustments(con, drafts, catalog)
    invoices, lines = draft_frames(drafts, catalog, now)
    con.register("draft_invoices_frame", invoices.to_arrow())
    con.register("draft_lines_frame", lines.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE draft_invoices AS SELECT * FROM draft_invoices_frame")
    con.execute("CREATE OR REPLACE TEMP TABLE draft_lines AS SELECT * FROM draft_lines_frame")
    con.unregister("draft_invoices_frame")
    con.unregister("draft_lines_frame")
    params = {"billing_month": billing_month, "now": now, "run_id": run_id}
    try:
        with transaction(con):
            frozen, before_diffs, discarded = con.execute("""
                SELECT
                    (SELECT count(*) FROM billing.invoices i
                     JOIN draft_invoices d USING (invoice_id) WHERE i.status <> 'draft'),
                    (SELECT count(*) FROM billing.invoice_differences),
                    (SELECT count(*) FROM billing.invoices
                     WHERE billing_month = $billing_month AND status = 'draft'
                       AND corrects_invoice_id IS NULL
                       AND invoice_id NOT IN (SELECT invoice_id FROM draft_invoices))
            """, {"billing_month": billing_month}).fetchall()[0]
            run_sql(con, "billing/invoice_differences", params)
            run_sql(con, "billing/invoice_status_history", params)
            run_sql(con, "billing/invoices", params)
            run_sql(con, "billing/invoice_lines", params)
            corrections = propose_corrections(con, catalog, now=now, run_id=run_id)
            fill_document_tax(con)
            issued = leave_draft(con, billing_month, now)
            credit_notes = issue_due_credit_notes(con, now=now)
            after_diffs = con.execute(
                "SELECT count(*) FROM billing.invoice_differences").fetchall()[0][0]
    finally:
        for table in ("draft_invoices", "draft_lines"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return LedgerUpdate(rated=len(drafts), written=len(drafts) - frozen, frozen=frozen,
                        differences=after_diffs - before_diffs, discarded=discarded,
                        left_draft=issued, corrections=corrections,
                        credit_notes_issued=credit_notes)


def leave_draft(con: duckdb.DuckDBPyConnection, billing_month: str, now: datetime) -> int:
    """Move the month's drafts whose grace period is over out of draft: issued (numbered) for
    profiles without a provider app, on to their sync for stripe and custom_invoicing
    (sql/billing/invoices_due.sql). Returns how many left draft."""
    due = con.execute(sql("billing/invoices_due"),
                      {"billing_month": billing_month, "now": now}).fetchall()
    changes = [StatusChange(invoice_id, to_status, "grace period over", "billing_run")
               for invoice_id, to_status in due]
    outcomes = apply_status_changes(con, changes, now=now)
    return sum(o.outcome == "applied" for o in outcomes)
