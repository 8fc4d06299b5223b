"""Documents finance makes by hand (contract section 9), through the CLI and the billing job:
`billing credit-note create` up to what remains creditable, numbered and issued like correction
credit notes; `billing invoice void` for an issued invoice nobody paid, refused for a paid one
and for a draft, with nothing half-written."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from pipelines.cli import main as billing
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.warehouse import connect_writer, transaction
from tests.support.dagster_runs import ingest_landed, run_billing
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

D = Decimal
CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H}
customers:
  - {id: initech_003, name: Initech KK, billing_profile: manual}
  - {id: umbrella_004, name: Umbrella AG, billing_profile: manual}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
  - {id: sub_umbrella_pro, customer: umbrella_004, plan: professional, start_date: 2026-01-01}
"""


@pytest.fixture
def issued(billing_env, monkeypatch):
    """Two customers (app none, 2 h grace), each with 5,000 API calls in January:
    1,000 x 0.01 + 10.00 + 4,000 x 0.008 = 52.00, plus February's fee 10.00: invoices of 62.00
    cut on February 1st and issued at 03:00 (INV-202602-00001 Initech, -00002 Umbrella)."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    write_lines(billing_env["landing"] / "jan.jsonl",
                [event(f"{customer}_{i}", customer=customer,
                       ts=f"2026-01-{1 + i % 31:02d}T{i % 24:02d}:00:00Z")
                 for customer in ("initech_003", "umbrella_004") for i in range(5_000)])
    ingest_landed()
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    monkeypatch.setenv("BILLING_NOW", "2026-02-05T10:00:00Z")
    assert query(billing_env["warehouse"], """
        SELECT invoice_number, customer_id, status, total FROM billing.invoices
        ORDER BY invoice_number""") == [
        ("INV-202602-00001", "initech_003", "issued", D("62.00")),
        ("INV-202602-00002", "umbrella_004", "issued", D("62.00"))]
    return billing_env


def refused(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        billing(argv)
    capsys.readouterr()
    return str(exit_info.value)


def credit_notes(warehouse) -> list[tuple]:
    return query(warehouse, """
        SELECT n.credit_note_number, n.status, n.kind, n.total, n.reason, n.created_by,
               l.corrects_line_id, l.amount
        FROM billing.credit_notes n JOIN billing.credit_note_lines l USING (credit_note_id)
        ORDER BY n.credit_note_number, n.total""")


def test_manual_credit_notes_up_to_what_remains_creditable(issued, capsys):
    warehouse = issued["warehouse"]
    billing(["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "20.00",
             "--reason", "goodwill: API outage on Jan 12", "--actor", "finance:ana"])
    assert "still creditable: 42.00 USD" in capsys.readouterr().out
    assert credit_notes(warehouse) == [
        (None, "draft", "manual", D("20.00"), "goodwill: API outage on Jan 12", "finance:ana",
         None, D("-20.00"))]

    # above what remains (62.00 - 20.00), or not in cents: refused, nothing written
    assert "more than what remains creditable on invoice" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "42.01",
         "--reason", "goodwill"], capsys)
    assert "42.00 USD" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "42.01",
         "--reason", "goodwill"], capsys)
    assert "more decimals than USD has (2)" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "10.005",
         "--reason", "goodwill"], capsys)
    assert "needs a reason" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "1",
         "--reason", "  "], capsys)
    assert "no invoice" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00099", "--amount", "1",
         "--reason", "goodwill"], capsys)
    assert len(credit_notes(warehouse)) == 1

    # exactly what remains is accepted; then nothing is left
    billing(["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "42",
             "--reason", "goodwill: rest of January", "--actor", "finance:ana"])
    assert "still creditable: 0.00 USD" in capsys.readouterr().out
    assert "remains creditable on invoice" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00001", "--amount", "0.01",
         "--reason", "goodwill"], capsys)

    # issued like correction credit notes: numbered once the profile's grace period (2 h) is over
    run_billing("2026-02", "2026-02-05T11:00:00Z")
    assert [n[:2] for n in credit_notes(warehouse)] == [(None, "draft"), (None, "draft")]
    run_billing("2026-02", "2026-02-05T12:00:00Z")
    assert [n[:4] for n in credit_notes(warehouse)] == [
        ("CN-202602-00001", "issued", "manual", D("20.00")),
        ("CN-202602-00002", "issued", "manual", D("42.00"))]
    assert query(warehouse, """
        SELECT h.from_status, h.to_status, h.actor FROM billing.credit_note_status_history h
        JOIN billing.credit_notes n USING (credit_note_id)
        WHERE n.credit_note_number = 'CN-202602-00001' ORDER BY h.changed_at""") == [
        (None, "draft", "finance:ana"), ("draft", "issued", "billing_run")]
    # the invoice itself never changed
    assert query(warehouse, "SELECT status, total FROM billing.invoices "
                            "WHERE invoice_number = 'INV-202602-00001'") == [
        ("issued", D("62.00"))]


def test_void_of_an_issued_unpaid_invoice(issued, capsys):
    warehouse = issued["warehouse"]
    billing(["invoice", "void", "INV-202602-00002", "--reason", "billed twice",
             "--actor", "finance:ana"])
    assert "voided (issued -> payment_processing.pending -> voided)" in capsys.readouterr().out
    assert query(warehouse, """
        SELECT h.from_status, h.to_status, h.cause, h.actor
        FROM billing.invoice_status_history h JOIN billing.invoices i USING (invoice_id)
        WHERE i.invoice_number = 'INV-202602-00002' ORDER BY h.changed_at, h.to_status""")[-2:] \
        == [("issued", "payment_processing.pending", "voided: billed twice", "finance:ana"),
            ("payment_processing.pending", "voided", "voided: billed twice", "finance:ana")]
    assert query(warehouse, "SELECT status, total FROM billing.invoices "
                            "WHERE invoice_number = 'INV-202602-00002'") == [
        ("voided", D("62.00"))]
    assert "already voided" in refused(
        ["invoice", "void", "INV-202602-00002", "--reason", "again"], capsys)
    # a voided invoice is not credited, and a re-run does not correct it
    assert "only an issued invoice (not voided) can be credited" in refused(
        ["credit-note", "create", "--invoice", "INV-202602-00002", "--amount", "1",
         "--reason", "goodwill"], capsys)
    run_billing("2026-02", "2026-02-05T12:00:00Z")
    assert query(warehouse, "SELECT count(*) FROM billing.corrections") == [(0,)]


def test_void_refused_for_a_paid_invoice_a_draft_and_a_credited_invoice(issued, capsys):
    warehouse = issued["warehouse"]
    with connect_writer(str(warehouse)) as con, transaction(con):
        [(initech,)] = con.execute("SELECT invoice_id FROM billing.invoices "
                                   "WHERE invoice_number = 'INV-202602-00001'").fetchall()
        apply_status_changes(con, [StatusChange(initech, "paid", "bank transfer", "erp",
                                                payment_side=True)],
                             now=datetime(2026, 2, 4, tzinfo=UTC))
    history = query(warehouse, "SELECT count(*) FROM billing.invoice_status_history")
    message = refused(["invoice", "void", "INV-202602-00001", "--reason", "customer left"],
                      capsys)
    assert "is paid: a paid invoice is not voided, credit it instead" in message
    assert "billing credit-note create --invoice" in message
    assert query(warehouse, "SELECT status FROM billing.invoices WHERE invoice_id = $i",
                 {"i": initech}) == [("paid",)]
    assert query(warehouse, "SELECT count(*) FROM billing.invoice_status_history") == history

    # a paid invoice is credited instead
    billing(["credit-note", "create", "--invoice", initech, "--amount", "62.00",
             "--reason", "customer left"])
    assert "credits 62.00 USD" in capsys.readouterr().out

    # an invoice already credited is not voided (the credit note settled part of it)
    billing(["credit-note", "create", "--invoice", "INV-202602-00002", "--amount", "5.00",
             "--reason", "goodwill"])
    capsys.readouterr()
    assert "already corrected or credited by credit note" in refused(
        ["invoice", "void", "INV-202602-00002", "--reason", "billed twice"], capsys)

    # a draft is not voided: March's invoice before its grace period is over
    run_billing("2026-03", "2026-03-01T01:00:00Z")
    [(march,)] = query(warehouse, "SELECT invoice_id FROM billing.invoices WHERE "
                                  "subscription_id = 'sub_umbrella_pro' AND boundary = "
                                  "DATE '2026-03-01'")
    assert "is draft, not issued" in refused(
        ["invoice", "void", march, "--reason", "too early"], capsys)
    assert query(warehouse, "SELECT status FROM billing.invoices WHERE invoice_id = $i",
                 {"i": march}) == [("draft",)]
