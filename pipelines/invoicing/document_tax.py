"""Tax on the ledger's documents: invoices, their lines, credit notes (contract section 10).

The rules are pure (``pipelines.rating.tax``); this module puts their results in the ledger.

- The billing run taxes its drafts as it writes them (``draft_frames`` in ``ledger.py``, with
  ``CustomerTax``): each invoice carries the rate its customer's address calls for
  (``tax_rate_key``, ``tax_rate_percent``, ``tax_inclusive``, the jurisdiction ``tax_country`` /
  ``tax_region``, and ``tax_note`` when there is no tax or a reverse charge), each line the
  same rate and its ``tax_amount``.
- Every other line is written by SQL without its tax (adjustment and discount lines of a draft
  adjusted by hand, ``correction`` and ``credit_balance`` lines, the lines of supplementary
  invoices and of credit notes): ``fill_document_tax`` gives each the tax of its amount at the
  rate of its invoice (a credit note: at the rate of the invoice it credits, so it reverses the
  tax of what it credits), then sums the documents' ``tax_total`` and ``total_including_tax``.
  Invoices written before the ledger knew tax have no rate: their lines get a tax of 0.

``total`` keeps its meaning (the sum of the lines: after discounts, before an exclusive tax);
``total_including_tax`` is what the customer owes: ``total`` plus the exclusive tax (an
inclusive tax is in the lines' amounts already). A credit note's ``tax_total`` and
``total_including_tax`` are positive like its ``total``; its lines' amounts and taxes negative.
"""

from __future__ import annotations

from decimal import Decimal

import duckdb
import polars as pl

from pipelines.catalog.models import Catalog
from pipelines.rating.tax import TaxDecision, line_tax, tax_for
from pipelines.warehouse import scratch

MONEY = pl.Decimal(38, 12)
INVOICE_TAX_SCHEMA = {
    "tax_rate_key": pl.String, "tax_rate_percent": MONEY, "tax_inclusive": pl.Boolean,
    "tax_country": pl.String, "tax_region": pl.String, "tax_note": pl.String,
    "tax_total": MONEY, "total_including_tax": MONEY,
}
"""The tax columns of billing.invoices, as the billing run's frames carry them."""
LINE_TAX_SCHEMA = {
    "tax_rate_key": pl.String, "tax_rate_percent": MONEY, "tax_inclusive": pl.Boolean,
    "tax_amount": MONEY,
}
"""The tax columns of billing.invoice_lines (and billing.credit_note_lines)."""


class CustomerTax:
    """Each customer's tax treatment under a catalog, decided once per customer."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._decided: dict[str, TaxDecision] = {}

    def of(self, customer_id: str) -> TaxDecision:
        decision = self._decided.get(customer_id)
        if decision is None:
            catalog = self._catalog
            decision = tax_for(catalog.customers[customer_id], catalog.seller, catalog.tax_rates)
            self._decided[customer_id] = decision
        return decision


def invoice_tax_fields(tax: TaxDecision, tax_total: Decimal, total: Decimal) -> dict:
    """The tax columns of an invoice of ``total`` whose lines' taxes sum to ``tax_total``."""
    return {
        "tax_rate_key": tax.rate_key, "tax_rate_percent": tax.percent,
        "tax_inclusive": tax.inclusive, "tax_country": tax.country, "tax_region": tax.region,
        "tax_note": tax.note, "tax_total": tax_total,
        "total_including_tax": total if tax.inclusive else total + tax_total,
    }


_UNTAXED_INVOICE_LINES = """
    SELECT l.line_id, l.amount, i.currency, i.tax_rate_key, i.tax_rate_percent,
           coalesce(i.tax_inclusive, false)
    FROM billing.invoice_lines l
    JOIN billing.invoices i USING (invoice_id)
    WHERE l.tax_amount IS NULL
"""
_UNTAXED_CREDIT_NOTE_LINES = """
    SELECT cl.credit_note_line_id, cl.amount, i.currency, i.tax_rate_key, i.tax_rate_percent,
           coalesce(i.tax_inclusive, false)
    FROM billing.credit_note_lines cl
    JOIN billing.credit_notes c USING (credit_note_id)
    JOIN billing.invoices i ON i.invoice_id = c.invoice_id
    WHERE cl.tax_amount IS NULL
"""


def fill_document_tax(con: duckdb.DuckDBPyConnection) -> int:
    """Tax every invoice and credit note line written without it, at its invoice's rate, and
    bring the documents' ``tax_total`` / ``total_including_tax`` up to date (those whose lines
    or total changed). Runs inside the caller's transaction; returns how many lines it taxed."""
    taxed = 0
    for query, table, key in ((_UNTAXED_INVOICE_LINES, "billing.invoice_lines", "line_id"),
                              (_UNTAXED_CREDIT_NOTE_LINES, "billing.credit_note_lines",
                               "credit_note_line_id")):
        rows = con.execute(query).fetchall()
        if not rows:
            continue
        frame = pl.DataFrame(
            [(ident, rate_key, percent, inclusive,
              line_tax(amount, percent, inclusive, currency))
             for ident, amount, currency, rate_key, percent, inclusive in rows],
            schema={"id": pl.String, **LINE_TAX_SCHEMA}, orient="row")
        with scratch(con, frames=("line_tax_frame",)):
            con.register("line_tax_frame", frame.to_arrow())
            con.execute(f"""
                UPDATE {table} AS l
                SET tax_rate_key = t.tax_rate_key, tax_rate_percent = t.tax_rate_percent,
                    tax_inclusive = t.tax_inclusive, tax_amount = t.tax_amount
                FROM line_tax_frame t
                WHERE l.{key} = t.id""").fetchall()
        taxed += len(rows)
    con.execute("""
        UPDATE billing.invoices AS i
        SET tax_total = t.tax_total, total_including_tax = i.total + t.exclusive_tax
        FROM (
            SELECT i.invoice_id,
                   coalesce(sum(l.tax_amount), 0) AS tax_total,
                   coalesce(sum(l.tax_amount) FILTER (WHERE NOT l.tax_inclusive), 0)
                       AS exclusive_tax
            FROM billing.invoices i
            LEFT JOIN billing.invoice_lines l USING (invoice_id)
            GROUP BY i.invoice_id
        ) t
        WHERE i.invoice_id = t.invoice_id
          AND (i.tax_total IS DISTINCT FROM t.tax_total
               OR i.total_including_tax IS DISTINCT FROM i.total + t.exclusive_tax)
    """).fetchall()
    con.execute("""
        UPDATE billing.credit_notes AS c
        SET tax_total = t.tax_total, total_including_tax = c.total + t.exclusive_tax
        FROM (
            SELECT c.credit_note_id,
                   -coalesce(sum(l.tax_amount), 0) AS tax_total,
                   -coalesce(sum(l.tax_amount) FILTER (WHERE NOT l.tax_inclusive), 0)
                       AS exclusive_tax
            FROM billing.credit_notes c
            LEFT JOIN billing.credit_note_lines l USING (credit_note_id)
            GROUP BY c.credit_note_id
        ) t
        WHERE c.credit_note_id = t.credit_note_id
          AND (c.tax_total IS DISTINCT FROM t.tax_total
               OR c.total_including_tax IS DISTINCT FROM c.total + t.exclusive_tax)
    """).fetchall()
    return taxed
