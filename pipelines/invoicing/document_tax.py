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
from pipelines.warehouse import run_sql, scratch, sql

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


def fill_document_tax(con: duckdb.DuckDBPyConnection) -> int:
    """Tax every invoice and credit note line written without it, at its invoice's rate, and
    bring the documents' ``tax_total`` / ``total_including_tax`` up to date (those whose lines
    or total changed). Runs inside the caller's transaction; returns how many lines it taxed."""
    rows = con.execute(sql("billing/document_tax_untaxed_lines")).fetchall()
    frame = pl.DataFrame(
        [(kind, ident, rate_key, percent, inclusive,
          line_tax(amount, percent, inclusive, currency))
         for kind, ident, amount, currency, rate_key, percent, inclusive in rows],
        schema={"kind": pl.String, "id": pl.String, **LINE_TAX_SCHEMA}, orient="row")
    with scratch(con, frames=("line_tax_frame",)):
        con.register("line_tax_frame", frame.to_arrow())
        run_sql(con, "billing/document_tax_apply")
    return len(rows)
