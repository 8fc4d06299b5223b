"""Tax for a custom invoicing customer, end to end without Dagster (docs/tax.md,
docs/integration-api.md, docs/finance-queries.md): the documents published to the integration
API carry the ledger's tax; a statement reports the integration's totals including tax, checked
for consistency (422 naming the field); reconciliation, payment reconciliation and receivables
aging compare totals including tax. Hand-computed golden values.

The customer: DE GmbH (DE, B2B in the seller's own country: taxed normally at de_vat 19 %,
exclusive), plan fee 49.00 EUR with a 20 % discount:
    platform fee  49.00 x 0.19 =  9.31
    discount      -9.80 x 0.19 = -1.862 -> -1.86   (rounded once, half away from zero)
    total 49.00 - 9.80 = 39.20; tax_total 9.31 - 1.86 = 7.45; total_including_tax 46.65
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipelines.api.rules import validate_statement
from pipelines.api.store import ApiStore
from pipelines.catalog import load_catalog
from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.custom_invoicing.api_publication import publish_to_api_store
from pipelines.custom_invoicing.statement import apply_statement
from pipelines.invoicing.ledger import write_month
from pipelines.invoicing.manual_documents import create_manual_credit_note
from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
from pipelines.reconciliation.table_builders import (
    build_credit_note_reconciliation,
    build_invoice_reconciliation,
    build_payment_reconciliation,
    build_receivables_aging,
)
from pipelines.warehouse import connect_writer

D = Decimal
NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)

CATALOG = """
meters:
  - {key: api_requests, event_name: api.request, aggregation: count}
plans:
  - key: eu
    currency: EUR
    prices: [{key: platform_fee, type: flat, amount: "49.00", cadence: in_advance}]
billing_profiles:
  - {key: erp, app: custom_invoicing, default: true, grace_period: PT0S,
     draft_sync_hook: true, issuing_sync_hook: true}
seller: {country: DE, tax_id: DE123456789}
tax_rates:
  - {key: de_vat, country: DE, percent: "19"}
customers:
  - {id: de, name: DE GmbH, address: {country: DE, postal_code: "10115"}, tax_id: DE811907980}
subscriptions:
  - {id: sub_de, customer: de, plan: eu, start_date: 2026-02-01,
     discounts: [{type: percentage, percent: "20"}]}
"""


@pytest.fixture
def ledger(tmp_path: Path):
    """The warehouse with DE GmbH's February invoice (custom invoicing, taxed), issued and
    waiting for payment, as the integration's hooks would have left it."""
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "catalog.yaml").write_text(CATALOG, encoding="utf-8")
    catalog = load_catalog(tmp_path / "catalog")
    with connect_writer(str(tmp_path / "warehouse.duckdb")) as con:
        write_catalog_tables(con, catalog)
        drafts = draft_invoices(catalog, due_cuts(catalog, "2026-02", NOW), {})
        write_month(con, "2026-02", drafts, catalog, now=NOW, run_id=None)
        _set_status(con, "payment_processing.pending")
        yield con, catalog


def _set_status(con, status: str) -> None:
    con.execute("""
        UPDATE billing.invoices
        SET status = $status, invoice_number = 'ERP-2026-0001',
            issued_at = coalesce(issued_at, $now), status_changed_at = $now""",
                {"status": status, "now": NOW})


def _invoice(con) -> tuple[str, list[str]]:
    [(invoice_id, lines)] = con.execute("""
        SELECT invoice_id, list(line_id ORDER BY position)
        FROM billing.invoice_lines GROUP BY invoice_id""").fetchall()
    return invoice_id, lines


def _statement(invoice_id: str, lines: list[str], *, paid: str = "0", status: str = "open",
               tax: dict[str, str] | None = None,
               line_taxes: tuple[str, str] | None = None,
               credit_notes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ERP's statement of the invoice: 39.20 before tax, `tax` as given."""
    entries = [{"external_id": "erp_l1", "line_id": lines[0], "amount": "49.00"},
               {"external_id": "erp_l2", "line_id": lines[1], "amount": "-9.80"}]
    if line_taxes:
        for entry, line_tax in zip(entries, line_taxes, strict=True):
            entry["tax_amount"] = line_tax
    body = {"as_of": (LATER - timedelta(hours=1)).isoformat(), "invoices": [{
        "external_id": "erp_inv_1", "invoice_id": invoice_id, "invoice_number": "ERP-2026-0001",
        "currency": "EUR", "total": "39.20", "status": status, "amount_paid": paid,
        "amount_refunded": "0", **(tax or {}), "lines": entries}]}
    if credit_notes is not None:
        body["credit_notes"] = credit_notes
    assert validate_statement(body) == []
    return body


TAXED = {"tax_total": "7.45", "total_including_tax": "46.65"}


def test_the_published_invoice_and_credit_note_carry_the_ledgers_tax(ledger,
                                                                       tmp_path: Path) -> None:
    con, catalog = ledger
    invoice_id, (fee_line, discount_line) = _invoice(con)
    # a goodwill credit of 10.00: its line reverses 10.00 x 0.19 = 1.90 of tax -> 11.90
    note = create_manual_credit_note(con, catalog, invoice_id, "10.00", reason="goodwill",
                                     actor="test", now=NOW)
    store = ApiStore(str(tmp_path / "api_store.sqlite"))
    assert publish_to_api_store(con, store) == 2

    view = store.invoice_view(invoice_id)
    assert view is not None
    assert (D(view["total"]), view["tax_total"], view["total_including_tax"],
            view["tax_note"]) == (D("39.20"), "7.45", "46.65", None)
    assert [(line["line_id"], line["line_type"], line["tax_rate_key"],
             line["tax_rate_percent"], line["tax_inclusive"], line["tax_amount"])
            for line in view["lines"]] == [
        (fee_line, "flat", "de_vat", "19", False, "9.31"),
        (discount_line, "discount", "de_vat", "19", False, "-1.86")]

    credit = store.credit_note_view(note.credit_note_id)
    assert credit is not None
    assert (D(credit["total"]), credit["tax_total"], credit["total_including_tax"],
            credit["tax_note"]) == (D("10.00"), "1.90", "11.90", None)
    [line] = credit["lines"]
    assert (line["tax_rate_key"], line["tax_rate_percent"], line["tax_inclusive"],
            line["tax_amount"]) == ("de_vat", "19", False, "-1.90")


def test_a_statement_with_the_tax_matches_and_one_without_it_is_an_amount_mismatch(
        ledger) -> None:
    con, _ = ledger
    invoice_id, lines = _invoice(con)

    assert apply_statement(con, _statement(invoice_id, lines, tax=TAXED,
                                           line_taxes=("9.31", "-1.86"))).outcome == "applied"
    [(total, remaining)] = con.execute("""
        SELECT total, amount_remaining FROM sync.provider_invoices
        WHERE provider = 'custom_invoicing'""").fetchall()
    assert (total, remaining) == (D("46.65"), D("46.65"))    # 39.20 + 7.45, nothing paid
    build_invoice_reconciliation(con, now=LATER)
    assert _reconciled(con) == ("matched", D("46.65"), D("46.65"), D("7.45"), None)

    # an integration that bills no tax: its total 39.20 is 7.45 short of what is owed
    later = _statement(invoice_id, lines)
    later["as_of"] = LATER.isoformat()
    assert apply_statement(con, later).outcome == "applied"
    build_invoice_reconciliation(con, now=LATER)
    status, ledger_total, provider_total, _, detail = _reconciled(con)
    assert (status, ledger_total, provider_total) == ("amount_mismatch", D("46.65"), D("39.20"))
    assert detail == "total 46.65 (incl. 7.45 tax) in the ledger, 39.20 at custom_invoicing"


def test_a_line_of_another_tax_is_a_line_mismatch(ledger) -> None:
    con, _ = ledger
    invoice_id, lines = _invoice(con)
    # the same totals, the tax spread otherwise over the lines: 9.32 - 1.87 = 7.45
    apply_statement(con, _statement(invoice_id, lines, tax=TAXED, line_taxes=("9.32", "-1.87")))
    build_invoice_reconciliation(con, now=LATER)
    status, *_, detail = _reconciled(con)
    assert status == "line_mismatch"
    assert detail == (f"lines: {lines[0]}: tax 9.31 in the ledger, 9.32 at the provider; "
                      f"{lines[1]}: tax -1.86 in the ledger, -1.87 at the provider")


def _reconciled(con) -> tuple[Any, ...]:
    [row] = con.execute("""
        SELECT match_status, ledger_total, provider_total, ledger_tax_total,
               CASE WHEN match_status <> 'matched' THEN detail END
        FROM finance.invoice_reconciliation""").fetchall()
    return row


@pytest.mark.parametrize(("paid", "status", "ledger_amount"), [
    ("46.65", "matched", D("46.65")),                 # the total including tax
    ("39.20", "amount_paid_mismatch", D("46.65")),    # the total before tax: 7.45 short
])
def test_a_payment_reconciles_against_the_total_including_tax(ledger, paid: str, status: str,
                                                                ledger_amount: Decimal) -> None:
    con, _ = ledger
    invoice_id, lines = _invoice(con)
    _set_status(con, "paid")
    apply_statement(con, _statement(invoice_id, lines, paid=paid, status="paid", tax=TAXED))
    build_payment_reconciliation(con, now=LATER)
    [row] = con.execute("""
        SELECT kind, amount, ledger_amount, match_status, detail
        FROM finance.payment_reconciliation""").fetchall()
    assert row[:4] == ("payment", D(paid), ledger_amount, status)
    if status != "matched":
        assert row[4] == "39.20 paid at custom_invoicing, 46.65 EUR due"
        assert row[2] - row[1] == D("7.45")           # the shortfall is the tax


def test_aging_and_credit_note_reconciliation_count_the_tax(ledger) -> None:
    con, catalog = ledger
    invoice_id, lines = _invoice(con)
    apply_statement(con, _statement(invoice_id, lines, tax=TAXED))
    build_receivables_aging(con, now=LATER)
    assert con.execute("SELECT invoice_id, amount_due FROM finance.receivables_aging"
                       ).fetchall() == [(invoice_id, D("46.65"))]

    # a goodwill credit of 10.00 issued: 10.00 + 1.90 tax = 11.90 less owed, 46.65 - 11.90
    note = create_manual_credit_note(con, catalog, invoice_id, "10.00", reason="goodwill",
                                     actor="test", now=NOW)
    con.execute("UPDATE billing.credit_notes SET status = 'issued', issued_at = $now, "
                "credit_note_number = 'ERP-CN-1'", {"now": NOW})
    build_receivables_aging(con, now=LATER)
    assert con.execute("SELECT amount_due FROM finance.receivables_aging").fetchall() == [
        (D("34.75"),)]

    [line_id] = [r[0] for r in con.execute(
        "SELECT credit_note_line_id FROM billing.credit_note_lines").fetchall()]
    credited = {"external_id": "erp_cn_1", "credit_note_id": note.credit_note_id,
                "invoice_id": invoice_id, "currency": "EUR", "total": "10.00",
                "tax_total": "1.90", "total_including_tax": "11.90", "status": "issued",
                "lines": [{"external_id": "erp_cn_1_l1", "credit_note_line_id": line_id,
                           "amount": "10.00", "tax_amount": "1.90"}]}
    body = _statement(invoice_id, lines, tax=TAXED, credit_notes=[credited])
    body["as_of"] = LATER.isoformat()
    apply_statement(con, body)
    build_credit_note_reconciliation(con, now=LATER)
    assert con.execute("""
        SELECT match_status, ledger_total, provider_total, ledger_tax_total
        FROM finance.credit_note_reconciliation""").fetchall() == [
        ("matched", D("11.90"), D("11.90"), D("1.90"))]


@pytest.mark.parametrize(("tax", "field", "words"), [
    # 39.20 + 7.45 = 46.65 (tax on top) or 39.20 (tax in the lines): 46.00 is neither
    ({"tax_total": "7.45", "total_including_tax": "46.00"}, "invoices[0].total_including_tax",
     "must be total + tax_total (46.65: tax added on top) or total (39.20: tax included"),
    ({"tax_total": "7.45"}, "invoices[0].total_including_tax", "required with a tax_total"),
    ({"tax_total": 7.45, "total_including_tax": "46.65"}, "invoices[0].tax_total",
     "not a JSON number"),
])
def test_a_statement_whose_tax_does_not_add_up_is_refused_naming_the_field(
        tax: dict[str, Any], field: str, words: str) -> None:
    body = {"as_of": NOW.isoformat(), "invoices": [{
        "external_id": "e1", "invoice_id": "inv_1", "currency": "EUR", "total": "39.20",
        "status": "open", "amount_paid": "0", "amount_refunded": "0", **tax,
        "lines": [{"external_id": "l1", "line_id": "x", "amount": "39.20"}]}]}
    [problem] = validate_statement(body)
    assert problem.field == field and words in problem.message


def test_line_taxes_must_add_up_to_the_tax_total() -> None:
    body = {"as_of": NOW.isoformat(), "invoices": [], "credit_notes": [{
        "external_id": "c1", "currency": "EUR", "total": "10.00", "status": "issued",
        "tax_total": "1.90", "total_including_tax": "11.90",
        "lines": [{"external_id": "c1_l1", "amount": "10.00", "tax_amount": "1.80"}]}]}
    [problem] = validate_statement(body)
    assert problem.field == "credit_notes[0].tax_total"
    assert problem.message == "must be the sum of the lines' tax_amount (1.80), got 1.90"


def test_goodwill_credits_stay_within_the_total_including_tax(ledger) -> None:
    """Each credit note's tax is rounded on its own: credits in pieces within the total before
    tax could credit more tax than the invoice charged (7.45). The limit including tax stops
    that: 0.03 -> 0.0057 -> 0.01 tax, twice, then 39.14 -> 7.4366 -> 7.44 would make
    0.01 + 0.01 + 7.44 = 7.46 of tax credited; 46.65 - 0.04 - 0.04 = 46.57 remains including
    tax, and 39.14 + 7.44 = 46.58 is refused though 39.14 is all that remains before tax."""
    from pipelines.invoicing.manual_documents import ManualDocumentError

    con, catalog = ledger
    invoice_id, _ = _invoice(con)
    for _ in range(2):
        create_manual_credit_note(con, catalog, invoice_id, "0.03", reason="goodwill",
                                  actor="test", now=NOW)
    assert con.execute("""
        SELECT remaining, remaining_including_tax FROM billing.remaining_creditable
        WHERE invoice_id = $id""", {"id": invoice_id}).fetchall() == [(D("39.14"), D("46.57"))]
    with pytest.raises(ManualDocumentError) as refused:
        create_manual_credit_note(con, catalog, invoice_id, "39.14", reason="goodwill",
                                  actor="test", now=NOW)
    assert str(refused.value) == (
        "amount 39.14 EUR is 46.58 EUR including tax, more than what remains creditable on "
        "invoice ERP-2026-0001 including tax: 46.57 EUR (its total including tax less what is "
        "already credited on it)")
    # 39.13 -> 7.4347 -> 7.43: 46.56 fits, leaving 0.01 including tax (0.01 before tax)
    create_manual_credit_note(con, catalog, invoice_id, "39.13", reason="goodwill", actor="test",
                              now=NOW)
    assert con.execute("""
        SELECT remaining, remaining_including_tax FROM billing.remaining_creditable
        WHERE invoice_id = $id""", {"id": invoice_id}).fetchall() == [(D("0.01"), D("0.01"))]
