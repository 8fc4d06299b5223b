"""Tax through the ledger (docs/tax.md): invoices of DE, FR, US-CA, an EU B2B reverse charge,
an inclusive rate and a customer without address, a credit note reversing tax, the blocking
checks, and finance.tax_report. Hand-computed golden values; no Dagster run."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.accounting.tax_report import TaxReport, build_tax_report, tax_report_audit
from pipelines.catalog import load_catalog
from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.checks import pandera_check
from pipelines.invoicing.audit import invoice_totals
from pipelines.invoicing.corrections import issue_due_credit_notes
from pipelines.invoicing.ledger import write_month
from pipelines.invoicing.manual_documents import create_manual_credit_note
from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
from pipelines.warehouse import connect_writer

NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
D = Decimal

CATALOG = """
meters:
  - {key: api_requests, event_name: api.request, aggregation: count}
plans:
  - key: eu
    currency: EUR
    prices: [{key: platform_fee, type: flat, amount: "49.00", cadence: in_advance}]
  - key: us
    currency: USD
    prices: [{key: platform_fee, type: flat, amount: "10.00", cadence: in_advance}]
billing_profiles:
  - {key: manual, app: none, default: true, grace_period: PT0S}
seller: {country: DE, tax_id: DE123456789}
tax_rates:
  - {key: de_vat, country: DE, percent: "19"}
  - {key: fr_vat, country: FR, percent: "20"}
  - {key: us_ca_sales, country: US, region: CA, percent: "7.25"}
  - {key: at_vat_incl, country: AT, percent: "20", inclusive: true}
customers:
  - {id: de, name: DE GmbH, address: {country: DE, postal_code: "10115"}, tax_id: DE811907980}
  - {id: fr, name: FR consumer, address: {country: FR, postal_code: "75002"}}
  - {id: fr_b2b, name: FR SAS, address: {country: FR}, tax_id: FR40303265045}
  - {id: ca, name: CA Inc, address: {country: US, region: CA, postal_code: "94105"}}
  - {id: at, name: AT GmbH, address: {country: AT}}
  - {id: nowhere, name: No address Ltd}
subscriptions:
  - {id: sub_de, customer: de, plan: eu, start_date: 2026-02-01,
     discounts: [{type: percentage, percent: "20"}]}
  - {id: sub_fr, customer: fr, plan: eu, start_date: 2026-02-01}
  - {id: sub_fr_b2b, customer: fr_b2b, plan: eu, start_date: 2026-02-01}
  - {id: sub_ca, customer: ca, plan: us, start_date: 2026-02-01}
  - {id: sub_at, customer: at, plan: eu, start_date: 2026-02-01}
  - {id: sub_nowhere, customer: nowhere, plan: us, start_date: 2026-02-01}
"""


@pytest.fixture
def taxed(tmp_path: Path):
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.yaml").write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(tmp_path / "catalog")
    path = str(tmp_path / "warehouse.duckdb")
    with connect_writer(path) as con:
        write_catalog_tables(con, catalog)
        drafts = draft_invoices(catalog, due_cuts(catalog, "2026-02", NOW), {})
        write_month(con, "2026-02", drafts, catalog, now=NOW, run_id=None)
        yield con, catalog


def _invoices(con) -> dict[str, tuple]:
    rows = con.execute("""
        SELECT customer_id, status, total, tax_rate_key, tax_rate_percent, tax_inclusive,
               tax_country, tax_region, tax_note, tax_total, total_including_tax
        FROM billing.invoices ORDER BY customer_id""").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_invoices_carry_their_customers_tax(taxed) -> None:
    con, _ = taxed
    invoices = _invoices(con)
    assert invoices == {
        # 49.00 - 20 % (9.80) = 39.20; tax 49.00 x 0.19 = 9.31 and -9.80 x 0.19 = -1.862 -> -1.86
        # = 7.45 (39.20 x 0.19 = 7.448 gives the same); owed 39.20 + 7.45 = 46.65
        "de": ("issued", D("39.20"), "de_vat", D("19"), False, "DE", None, None, D("7.45"),
               D("46.65")),
        # 49.00 x 0.20 = 9.80
        "fr": ("issued", D("49.00"), "fr_vat", D("20"), False, "FR", None, None, D("9.80"),
               D("58.80")),
        # EU B2B, seller DE, customer FR with a VAT number: reverse charge, 0 %
        "fr_b2b": ("issued", D("49.00"), "reverse_charge", D("0"), False, "FR", None,
                   "reverse charge", D("0.00"), D("49.00")),
        # 10.00 x 0.0725 = 0.725 -> 0.73 (half away from zero)
        "ca": ("issued", D("10.00"), "us_ca_sales", D("7.25"), False, "US", "CA", None,
               D("0.73"), D("10.73")),
        # inclusive: 49.00 x 20/120 = 8.1666... -> 8.17 inside the 49.00 (net 40.83)
        "at": ("issued", D("49.00"), "at_vat_incl", D("20"), True, "AT", None, None, D("8.17"),
               D("49.00")),
        # no address: no tax, said on the invoice
        "nowhere": ("issued", D("10.00"), None, None, False, None, None, "no address",
                    D("0.00"), D("10.00")),
    }
    lines = con.execute("""
        SELECT l.line_type, l.amount, l.tax_rate_key, l.tax_rate_percent, l.tax_amount
        FROM billing.invoice_lines l JOIN billing.invoices i USING (invoice_id)
        WHERE i.customer_id = 'de' ORDER BY l.position""").fetchall()
    assert lines == [("flat", D("49.00"), "de_vat", D("19"), D("9.31")),
                     ("discount", D("-9.80"), "de_vat", D("19"), D("-1.86"))]
    assert invoice_totals(con, "2026-02").passed


def test_a_credit_note_reverses_the_tax_of_what_it_credits(taxed) -> None:
    con, catalog = taxed
    [(invoice_id,)] = con.execute(
        "SELECT invoice_id FROM billing.invoices WHERE customer_id = 'de'").fetchall()
    note = create_manual_credit_note(con, catalog, invoice_id, "10.00", reason="goodwill",
                                     actor="test", now=NOW)
    assert issue_due_credit_notes(con, now=NOW) == 1
    # -10.00 x 0.19 = -1.90 on the line; the note credits 10.00 + 1.90 = 11.90
    assert con.execute("""
        SELECT c.total, c.tax_total, c.total_including_tax, l.amount, l.tax_rate_key,
               l.tax_amount
        FROM billing.credit_notes c JOIN billing.credit_note_lines l USING (credit_note_id)
        WHERE c.credit_note_id = $id""", {"id": note.credit_note_id}).fetchall() == [
        (D("10.00"), D("1.90"), D("11.90"), D("-10.00"), "de_vat", D("-1.90"))]

    counts = build_tax_report(con, now=NOW)
    assert counts == {"2026-02": 6}
    report = con.execute("""
        SELECT country, region, tax_rate_key, currency, taxable_amount, tax_amount, invoices,
               credit_notes
        FROM finance.tax_report ORDER BY currency, country NULLS LAST, tax_rate_key""").fetchall()
    assert report == [
        ("AT", None, "at_vat_incl", "EUR", D("40.83"), D("8.17"), 1, 0),   # 49.00 - 8.17
        # 39.20 - 10.00 credited = 29.20; 7.45 - 1.90 = 5.55
        ("DE", None, "de_vat", "EUR", D("29.20"), D("5.55"), 1, 1),
        ("FR", None, "fr_vat", "EUR", D("49.00"), D("9.80"), 1, 0),
        ("FR", None, "reverse_charge", "EUR", D("49.00"), D("0.00"), 1, 0),
        ("US", "CA", "us_ca_sales", "USD", D("10.00"), D("0.73"), 1, 0),
        (None, None, None, "USD", D("10.00"), D("0.00"), 1, 0),
    ]
    assert pandera_check(TaxReport, tax_report_audit(con)).passed


def test_the_blocking_checks_catch_a_wrong_tax(taxed) -> None:
    con, _ = taxed
    con.execute("""UPDATE billing.invoice_lines SET tax_amount = tax_amount + 0.01
                   WHERE line_type = 'flat' AND tax_rate_key = 'fr_vat'""")
    con.execute("""UPDATE billing.invoices SET tax_total = tax_total + 0.01,
                   total_including_tax = total_including_tax + 0.01
                   WHERE tax_rate_key = 'fr_vat'""")
    outcome = invoice_totals(con, "2026-02")
    assert not outcome.passed and "TaxedLines" in (outcome.description or "")
    build_tax_report(con, now=NOW)
    assert not pandera_check(TaxReport, tax_report_audit(con)).passed


def test_a_warehouse_from_before_tax_gets_the_columns_and_tax_zero(tmp_path: Path) -> None:
    import duckdb

    path = str(tmp_path / "old.duckdb")
    with connect_writer(path) as con:
        con.execute("""
            INSERT INTO billing.invoices (invoice_id, customer_id, subscription_id, plan_key,
                billing_month, boundary, period_start, period_end, currency, subtotal,
                discount_total, total, status, collection_method, due_date, billing_profile,
                app, issue_after, created_at, rated_at)
            VALUES ('inv_old', 'c', 's', 'p', '2026-01', DATE '2026-01-01', DATE '2026-01-01',
                DATE '2026-02-01', 'USD', 5, 0, 5, 'issued', 'charge_automatically',
                DATE '2026-01-01', 'x', 'none', NOW(), NOW(), NOW())""")
        con.execute("""
            INSERT INTO billing.invoice_lines (line_id, invoice_id, line_type, price_key,
                description, amount, period_start, period_end, position)
            VALUES ('il_old', 'inv_old', 'flat', 'fee', 'Fee', 5, DATE '2026-01-01',
                DATE '2026-02-01', 0)""")
    # the columns of an older warehouse are dropped as if it predated them, then re-added
    con = duckdb.connect(path)
    for table, column in (("invoices", "tax_total"), ("invoices", "total_including_tax"),
                          ("invoice_lines", "tax_amount")):
        con.execute(f"ALTER TABLE billing.{table} DROP COLUMN {column}")
    con.close()
    with connect_writer(path) as con:
        from pipelines.invoicing.document_tax import fill_document_tax

        assert fill_document_tax(con) == 1
        assert con.execute("""SELECT tax_total, total_including_tax, tax_rate_key
                              FROM billing.invoices""").fetchall() == [(D("0.00"), D("5"), None)]


def test_notification_payloads_carry_the_tax(taxed) -> None:
    import json

    from pipelines.warehouse import register_currency_digits, run_sql

    con, catalog = taxed
    register_currency_digits(con)
    run_sql(con, "notify/documents")
    [(invoice_id,)] = con.execute(
        "SELECT invoice_id FROM billing.invoices WHERE customer_id = 'de'").fetchall()
    [(payload,)] = con.execute("SELECT notify_invoice($id, 'issued')",
                               {"id": invoice_id}).fetchall()
    invoice = json.loads(payload)
    assert (invoice["total"], invoice["tax_total"], invoice["total_including_tax"]) == (
        "39.20", "7.45", "46.65")
    assert invoice["tax"] == {"rate_key": "de_vat", "percent": "19", "inclusive": False,
                              "country": "DE", "region": None, "note": None}
    assert [(line["amount"], line["tax_rate_key"], line["tax_amount"])
            for line in invoice["lines"]] == [("49.00", "de_vat", "9.31"),
                                              ("-9.80", "de_vat", "-1.86")]
    note = create_manual_credit_note(con, catalog, invoice_id, "10.00", reason="goodwill",
                                     actor="test", now=NOW)
    [(payload,)] = con.execute("SELECT notify_credit_note($id, 'draft')",
                               {"id": note.credit_note_id}).fetchall()
    credit = json.loads(payload)
    assert (credit["total"], credit["tax_total"], credit["total_including_tax"]) == (
        "10.00", "1.90", "11.90")
    assert [(line["amount"], line["tax_amount"]) for line in credit["lines"]] == [
        ("-10.00", "-1.90")]
