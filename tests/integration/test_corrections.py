"""Corrections of issued invoices through the billing job (contract section 9): late usage and a
price fixed in the catalog after issue become a supplementary invoice and a credit note that
point at the invoice and its lines, approved by a person or within the profile's threshold, and
issued with gap-free numbers; re-running creates nothing twice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.cli import main as billing
from tests.support.dagster_runs import ingest_landed, run_billing
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H}
customers:
  - {id: initech_003, name: Initech KK, billing_profile: manual}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
"""
INVOICE = ("SELECT invoice_id FROM billing.invoices WHERE subscription_id = 'sub_initech_pro' "
           "AND boundary = DATE '2026-02-01' AND corrects_invoice_id IS NULL")


@pytest.fixture
def initech(billing_env):
    """Initech (app none, 2 h grace) with January's seed usage: 15,420 API calls (graduated
    tiers: 20.00 + 72.00 + 5,420 x 0.005 = 119.10), storage 3.75, exports 15.00, fee 10.00."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    lines: list[object] = [event(f"api_{i}", customer="initech_003",
                                 ts=f"2026-01-{1 + i % 31:02d}T{i % 24:02d}:00:00Z")
                           for i in range(15_420)]
    lines += [event(f"gb_{gb}", customer="initech_003", name="storage.snapshot",
                    ts=f"2026-01-{day:02d}T12:00:00Z", properties={"gb": gb})
              for day, gb in ((3, 12), (15, 25), (30, "18.5"))]
    lines += [event(f"exp_{i}", customer="initech_003", name="report.exported",
                    ts="2026-01-20T08:00:00Z") for i in range(250)]
    write_lines(billing_env["landing"] / "jan.jsonl", lines)
    ingest_landed()
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    return billing_env


def corrections(warehouse) -> list[tuple]:
    return query(warehouse, """SELECT line_id, issued_amount, covered_amount, rated_amount,
                                      delta, document_type, status, decided_by
                               FROM billing.corrections ORDER BY detected_at, correction_id""")


def set_profile(catalog, extra: str) -> None:
    path = catalog / "customers.yaml"
    path.write_text(path.read_text().replace(
        "{key: manual, app: none, grace_period: PT2H}",
        "{key: manual, app: none, grace_period: PT2H, " + extra + "}"))


def test_late_usage_waits_for_approval_then_becomes_a_supplementary_invoice(initech, capsys,
                                                                            monkeypatch):
    warehouse = initech["warehouse"]
    (invoice_id,), = query(warehouse, INVOICE)
    write_lines(initech["landing"] / "late.jsonl",
                [event("late_1", customer="initech_003", ts="2026-01-31T23:00:00Z")])
    ingest_landed()
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    # 15,421 calls: 27.105 rounds half away from zero to 27.11, the line 119.10 -> 119.11
    (line_id, issued, covered, rated, delta, kind, status, decided_by), = corrections(warehouse)
    assert (issued, covered, rated, delta) == (Decimal("119.10"), Decimal("119.10"),
                                               Decimal("119.11"), Decimal("0.01"))
    assert (kind, status, decided_by) == ("supplementary_invoice", "pending_approval", None)
    # the same rating again proposes nothing new
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    assert len(corrections(warehouse)) == 1
    assert query(warehouse, "SELECT count(*) FROM billing.invoices "
                            "WHERE corrects_invoice_id IS NOT NULL") == [(0,)]

    (correction_id,), = query(warehouse, "SELECT correction_id FROM billing.corrections")
    monkeypatch.setenv("BILLING_NOW", "2026-02-02T01:00:00Z")
    billing(["corrections", "approve", correction_id, "--actor", "finance:ana"])
    assert "approved" in capsys.readouterr().out
    supplementary = query(warehouse, """
        SELECT i.status, i.total, i.corrects_invoice_id, l.line_type, l.amount,
               l.corrects_line_id, l.corrects_invoice_id
        FROM billing.invoices i JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.corrects_invoice_id IS NOT NULL""")
    assert supplementary == [("draft", Decimal("0.01"), invoice_id, "correction",
                              Decimal("0.01"), line_id, invoice_id)]
    assert query(warehouse, """SELECT from_status, to_status, actor FROM
                               billing.correction_history ORDER BY changed_at, to_status""")[-1] \
        == ("pending_approval", "approved", "finance:ana")
    # issued once the grace period is over, numbered after the month's invoice
    run_billing("2026-02", "2026-02-02T03:00:00Z")
    assert query(warehouse, "SELECT invoice_number, status FROM billing.invoices "
                            "WHERE corrects_invoice_id IS NOT NULL") == [
        ("INV-202602-00002", "issued")]
    # issued + corrections = latest rating, for every line; nothing more is proposed
    run_billing("2026-02", "2026-02-03T00:00:00Z")
    assert len(corrections(warehouse)) == 1
    assert_issued_plus_corrections_is_latest_rating(warehouse)


def test_price_fix_within_threshold_is_credited_at_once(initech):
    warehouse, catalog = initech["warehouse"], initech["catalog"]
    set_profile(catalog, 'auto_approve_corrections_up_to: "10.00"')
    plans = catalog / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '- {up_to: null, unit_price: "0.005"}', '- {up_to: null, unit_price: "0.004"}', 1))
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    # 5,420 x 0.004 = 21.68: the line 119.10 -> 113.68, credited 5.42
    (_, issued, _, rated, delta, kind, status, decided_by), = corrections(warehouse)
    assert (issued, rated, delta) == (Decimal("119.10"), Decimal("113.68"), Decimal("-5.42"))
    assert (kind, status, decided_by) == ("credit_note", "approved", "auto_approve")
    note = query(warehouse, "SELECT credit_note_number, status, total FROM billing.credit_notes")
    assert note == [(None, "draft", Decimal("5.42"))]
    run_billing("2026-02", "2026-02-02T02:30:00Z")
    assert query(warehouse, "SELECT credit_note_number, status, total FROM "
                            "billing.credit_notes") == [("CN-202602-00001", "issued",
                                                          Decimal("5.42"))]
    (invoice_id,), = query(warehouse, INVOICE)
    (api_line,), = query(warehouse, "SELECT line_id FROM billing.invoice_lines WHERE "
                                    "invoice_id = $i AND price_key = 'api_calls'",
                         {"i": invoice_id})
    assert query(warehouse, """SELECT n.invoice_id, l.corrects_line_id, l.amount
                               FROM billing.credit_note_lines l
                               JOIN billing.credit_notes n USING (credit_note_id)""") == [
        (invoice_id, api_line, Decimal("-5.42"))]
    # the issued invoice itself never changed
    assert query(warehouse, "SELECT total, status FROM billing.invoices WHERE invoice_id = $i",
                 {"i": invoice_id}) == [(Decimal("147.85"), "issued")]
    assert_issued_plus_corrections_is_latest_rating(warehouse)


def test_rejected_correction_is_not_proposed_again_until_the_rating_changes(initech, capsys):
    warehouse = initech["warehouse"]
    write_lines(initech["landing"] / "late.jsonl",
                [event("late_1", customer="initech_003", ts="2026-01-31T23:00:00Z")])
    ingest_landed()
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    (correction_id,), = query(warehouse, "SELECT correction_id FROM billing.corrections")
    with pytest.raises(SystemExit):
        billing(["corrections", "reject", correction_id])  # a reason is required
    billing(["corrections", "reject", correction_id, "--reason", "goodwill: a test call"])
    run_billing("2026-02", "2026-02-02T01:00:00Z")
    assert [c[6] for c in corrections(warehouse)] == ["rejected"]
    # more late usage changes the rating: a new correction from what is covered (119.10)
    write_lines(initech["landing"] / "late2.jsonl",
                [event(f"late_{i}", customer="initech_003", ts="2026-01-31T23:00:00Z")
                 for i in range(2, 4)])
    ingest_landed()
    run_billing("2026-02", "2026-02-02T02:00:00Z")
    rows = corrections(warehouse)
    assert [(r[2], r[3], r[4], r[6]) for r in rows] == [
        (Decimal("119.10"), Decimal("119.11"), Decimal("0.01"), "rejected"),
        (Decimal("119.10"), Decimal("119.12"), Decimal("0.02"), "pending_approval")]
    with pytest.raises(SystemExit, match="already rejected"):
        billing(["corrections", "approve", correction_id])


def assert_issued_plus_corrections_is_latest_rating(warehouse) -> None:
    """For every line of an invoice past draft: issued + corrections not rejected = the amount
    of the latest rating."""
    rows = query(warehouse, """
        SELECT r.invoice_id, r.line_id, any_value(r.rated_amount),
               coalesce(any_value(l.amount), 0) + coalesce(sum(c.delta) FILTER (
                   WHERE c.status <> 'rejected'), 0) AS covered
        FROM billing.issued_line_ratings r
        LEFT JOIN billing.invoice_lines l USING (invoice_id, line_id)
        LEFT JOIN billing.corrections c USING (invoice_id, line_id)
        GROUP BY r.invoice_id, r.line_id""")
    assert rows
    assert all(rated == covered for _, _, rated, covered in rows), rows
