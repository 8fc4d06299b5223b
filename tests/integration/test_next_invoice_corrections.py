"""Policy `corrections: next_invoice` through the billing job (contract section 9): approved
corrections become `correction` lines on the subscription's next invoice, survive its
re-ratings, and a credit larger than that invoice is carried over as the customer's credit
balance, used up by the invoice after it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.cli import main as billing
from tests.support.dagster_runs import ingest_landed, run_billing
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

D = Decimal
CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H, corrections: next_invoice,
     auto_approve_corrections_up_to: "100.00"}
customers:
  - {id: initech_003, name: Initech KK, billing_profile: manual}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
"""
TIER_2 = '- {up_to: 10000, unit_price: "0.008"}'
TIER_3 = '- {up_to: null, unit_price: "0.005"}'


@pytest.fixture
def initech(billing_env):
    """Initech (app none, 2 h grace, corrections on the next invoice, approved up to 100.00) with
    15,000 API calls in January: 1,000 x 0.01 + 10.00 + 9,000 x 0.008 + 5,000 x 0.005 =
    20.00 + 72.00 + 25.00 = 117.00; with February's platform fee 10.00 the invoice cut on
    February 1st is 127.00, issued at 03:00."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    write_lines(billing_env["landing"] / "jan.jsonl",
                [event(f"api_{i}", customer="initech_003",
                       ts=f"2026-01-{1 + i % 31:02d}T{i % 24:02d}:00:00Z")
                 for i in range(15_000)])
    ingest_landed()
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    assert invoice_at(billing_env["warehouse"], "2026-02-01")[1:] == ("issued", D("127.00"))
    return billing_env


def fix_prices(catalog, *replacements: tuple[str, str]) -> None:
    plans = catalog / "plans.yaml"
    text = plans.read_text()
    for old, new in replacements:
        text = text.replace(old, new, 1)
    plans.write_text(text)


def invoice_at(warehouse, boundary: str) -> tuple:
    [row] = query(warehouse, """
        SELECT invoice_id, status, total FROM billing.invoices
        WHERE subscription_id = 'sub_initech_pro' AND boundary = $b::DATE
          AND corrects_invoice_id IS NULL""", {"b": boundary})
    return row


def lines(warehouse, invoice_id: str) -> list[tuple]:
    return query(warehouse, """
        SELECT line_type, description, amount, corrects_invoice_id, corrects_line_id
        FROM billing.invoice_lines WHERE invoice_id = $i ORDER BY position""",
                 {"i": invoice_id})


def balance(warehouse) -> list[tuple]:
    return query(warehouse, """
        SELECT granted, used, balance, used_by_drafts, carried_over_by_drafts, available
        FROM billing.customer_credit_balances WHERE customer_id = 'initech_003'""")


def api_line_of(warehouse, invoice_id: str) -> str:
    [(line_id,)] = query(warehouse, "SELECT line_id FROM billing.invoice_lines "
                                    "WHERE invoice_id = $i AND price_key = 'api_calls'",
                         {"i": invoice_id})
    return line_id


def test_corrections_go_on_the_next_invoice_and_survive_its_re_ratings(initech, monkeypatch):
    warehouse, catalog = initech["warehouse"], initech["catalog"]
    february = invoice_at(warehouse, "2026-02-01")[0]
    fix_prices(catalog, (TIER_3, '- {up_to: null, unit_price: "0.004"}'))
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    # 5,000 x 0.004 = 20.00: the line 117.00 -> 112.00, approved at once, waiting for March
    assert query(warehouse, """SELECT delta, document_type, status, document_id
                               FROM billing.corrections""") == [
        (D("-5.00"), "next_invoice", "approved", None)]
    assert query(warehouse, "SELECT count(*) FROM billing.credit_notes") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM billing.invoices WHERE corrects_invoice_id "
                            "IS NOT NULL") == [(0,)]

    # March's draft (no February usage): the top-up to the 50.00 commitment of February
    # (10.00 fee + 0 usage -> 40.00), March's fee 10.00, and the correction: 45.00
    run_billing("2026-03", "2026-03-01T01:00:00Z")
    march, status, total = invoice_at(warehouse, "2026-03-01")
    assert (status, total) == ("draft", D("45.00"))
    correction_line = ("correction", "Correction of INV-202602-00001: Api calls (graduated) "
                       "2026-01-01 \u2013 2026-02-01", D("-5.00"), february,
                       api_line_of(warehouse, february))
    assert lines(warehouse, march)[-1] == correction_line
    assert query(warehouse, "SELECT document_id FROM billing.corrections") == [(march,)]

    # February usage arrives before March is issued: the draft is re-rated in place, the
    # correction line stays. 6,000 calls: 20.00 + 5,000 x 0.008 = 60.00, no top-up (70.00 >=
    # 50.00): 60.00 + 10.00 - 5.00 = 65.00
    write_lines(initech["landing"] / "feb.jsonl",
                [event(f"feb_{i}", customer="initech_003",
                       ts=f"2026-02-{1 + i % 28:02d}T{i % 24:02d}:00:00Z")
                 for i in range(6_000)])
    monkeypatch.setenv("BILLING_NOW", "2026-03-01T01:15:00Z")  # when the file is ingested
    ingest_landed()
    run_billing("2026-03", "2026-03-01T01:30:00Z")
    assert invoice_at(warehouse, "2026-03-01")[1:] == ("draft", D("65.00"))
    assert [(t, a) for t, _, a, _, _ in lines(warehouse, march)] == [
        ("usage", D("60.00")), ("usage", D("0.00")), ("usage", D("0.00")),
        ("flat", D("10.00")), ("correction", D("-5.00"))]
    assert lines(warehouse, march)[-1] == correction_line

    run_billing("2026-03", "2026-03-01T03:00:00Z")
    assert query(warehouse, """SELECT invoice_number, status, subtotal, discount_total, total
                               FROM billing.invoices WHERE invoice_id = $i""",
                 {"i": march}) == [("INV-202603-00001", "issued", D("65.00"), D("0"),
                                    D("65.00"))]
    # re-running both months changes nothing and proposes nothing new
    run_billing("2026-02", "2026-03-02T00:00:00Z")
    run_billing("2026-03", "2026-03-02T00:00:00Z")
    assert len(query(warehouse, "SELECT * FROM billing.corrections")) == 1
    assert lines(warehouse, march)[-1] == correction_line
    # the correction line is no difference of March's re-rating either
    assert query(warehouse, "SELECT count(*) FROM billing.invoice_differences "
                            "WHERE invoice_id = $i", {"i": march}) == [(0,)]
    assert balance(warehouse) == []


def test_a_credit_larger_than_the_next_invoice_is_carried_over_and_used_by_the_one_after(
        initech, capsys):
    warehouse, catalog = initech["warehouse"], initech["catalog"]
    fix_prices(catalog, (TIER_2, '- {up_to: 10000, unit_price: "0.002"}'),
               (TIER_3, '- {up_to: null, unit_price: "0.001"}'))
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    # 20.00 + 9,000 x 0.002 + 5,000 x 0.001 = 43.00: the line 117.00 -> 43.00, credited 74.00
    assert query(warehouse, "SELECT delta, status FROM billing.corrections") == [
        (D("-74.00"), "approved")]

    # March: 40.00 top-up + 10.00 fee - 74.00 = -24.00 -> brought to 0.00, 24.00 carried over
    run_billing("2026-03", "2026-03-01T03:00:00Z")
    march, status, total = invoice_at(warehouse, "2026-03-01")
    assert (status, total) == ("issued", D("0.00"))
    assert [(t, a) for t, _, a, _, _ in lines(warehouse, march)][-2:] == [
        ("correction", D("-74.00")), ("credit_balance", D("24.00"))]
    assert balance(warehouse) == [(D("24.00"), D("0"), D("24.00"), D("0"), D("0"), D("24.00"))]
    # February is credited 74.00 on March already: 127.00 - 74.00 = 53.00 remains creditable
    with pytest.raises(SystemExit) as refused:
        billing(["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "53.01",
                 "--reason", "goodwill"])
    assert "remains creditable on invoice INV-202602-00001: 53.00 USD" in str(refused.value)

    # April's draft uses it: 40.00 top-up + 10.00 fee - 24.00 = 26.00 (reserved while a draft)
    run_billing("2026-04", "2026-04-01T01:00:00Z")
    april, status, total = invoice_at(warehouse, "2026-04-01")
    assert (status, total) == ("draft", D("26.00"))
    assert balance(warehouse) == [(D("24.00"), D("0"), D("24.00"), D("24.00"), D("0"),
                                   D("0"))]
    run_billing("2026-04", "2026-04-01T03:00:00Z")
    assert invoice_at(warehouse, "2026-04-01")[1:] == ("issued", D("26.00"))
    assert lines(warehouse, april)[-1][:3] == ("credit_balance", "Credit balance applied",
                                               D("-24.00"))
    # used up: granted = used + remaining
    assert balance(warehouse) == [(D("24.00"), D("24.00"), D("0"), D("0"), D("0"), D("0"))]
    assert query(warehouse, """SELECT invoice_id, amount FROM billing.customer_credit_movements
                               ORDER BY created_at""") == [(march, D("24.00")),
                                                           (april, D("-24.00"))]

    # voiding April gives the 24.00 back; May (40.00 + 10.00) uses it: 26.00
    billing(["invoice", "void", april, "--reason", "wrong address", "--actor", "finance:ana"])
    assert "voided" in capsys.readouterr().out
    assert balance(warehouse) == [(D("24.00"), D("0"), D("24.00"), D("0"), D("0"), D("24.00"))]
    run_billing("2026-05", "2026-05-01T03:00:00Z")
    assert invoice_at(warehouse, "2026-05-01")[1:] == ("issued", D("26.00"))
    assert balance(warehouse) == [(D("24.00"), D("24.00"), D("0"), D("0"), D("0"), D("0"))]


def test_approval_puts_a_waiting_correction_on_the_draft_and_voids_move_it(billing_env, capsys,
                                                                           monkeypatch):
    """Every correction waits for a person (threshold 0); 5,000 January calls: 20.00 + 4,000 x
    0.008 = 52.00, February's invoice 62.00. Tier 2 fixed to 0.006: 44.00, a correction of
    -8.00."""
    warehouse, catalog = billing_env["warehouse"], billing_env["catalog"]
    (catalog / "customers.yaml").write_text(CUSTOMERS.replace(
        'auto_approve_corrections_up_to: "100.00"', 'auto_approve_corrections_up_to: "0"'))
    write_lines(billing_env["landing"] / "jan.jsonl",
                [event(f"api_{i}", customer="initech_003",
                       ts=f"2026-01-{1 + i % 31:02d}T{i % 24:02d}:00:00Z") for i in range(5_000)])
    ingest_landed()
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    fix_prices(catalog, (TIER_2, '- {up_to: 10000, unit_price: "0.006"}'))
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    run_billing("2026-03", "2026-03-01T01:00:00Z")
    march = invoice_at(warehouse, "2026-03-01")[0]
    # pending: not on March's draft (40.00 top-up + 10.00 fee)
    assert invoice_at(warehouse, "2026-03-01")[1:] == ("draft", D("50.00"))
    [(correction_id,)] = query(warehouse, "SELECT correction_id FROM billing.corrections "
                                          "WHERE status = 'pending_approval'")
    monkeypatch.setenv("BILLING_NOW", "2026-03-01T01:10:00Z")
    billing(["corrections", "approve", correction_id, "--actor", "finance:ana"])
    assert f"made {march}" in capsys.readouterr().out
    assert invoice_at(warehouse, "2026-03-01")[1:] == ("draft", D("42.00"))

    # March issued with the correction, then voided: the correction goes back to waiting and
    # lands on April's draft (40.00 + 10.00 - 8.00)
    run_billing("2026-03", "2026-03-01T03:00:00Z")
    assert invoice_at(warehouse, "2026-03-01")[1:] == ("issued", D("42.00"))
    billing(["invoice", "void", march, "--reason", "sent to the wrong entity"])
    capsys.readouterr()
    assert query(warehouse, "SELECT status, document_id FROM billing.corrections") == [
        ("approved", None)]
    run_billing("2026-04", "2026-04-01T01:00:00Z")
    april, status, total = invoice_at(warehouse, "2026-04-01")
    assert (status, total) == ("draft", D("42.00"))
    assert lines(warehouse, april)[-1][:3] == (
        "correction", "Correction of INV-202602-00001: Api calls (graduated) "
        "2026-01-01 \u2013 2026-02-01", D("-8.00"))
    assert query(warehouse, "SELECT document_id FROM billing.corrections") == [(april,)]

    # voiding the corrected invoice itself withdraws its correction from April's draft
    billing(["invoice", "void", "INV-202602-00001", "--reason", "customer never signed"])
    assert "1 correction(s) of it withdrawn" in capsys.readouterr().out
    assert query(warehouse, "SELECT status, document_id, reason FROM billing.corrections") == [
        ("rejected", None, "invoice voided: customer never signed")]
    assert invoice_at(warehouse, "2026-04-01")[1:] == ("draft", D("50.00"))
    assert [t for t, *_ in lines(warehouse, april)] == [
        "usage", "usage", "usage", "minimum_commitment", "flat"]
