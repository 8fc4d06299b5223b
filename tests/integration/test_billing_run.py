"""The billing stage through Dagster: golden invoices, idempotent re-runs, frozen issued
invoices, backfills and the blocking checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from pipelines.jobs import BILLING_JOB
from tests.support.dagster_runs import ingest_landed, run_job
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H}
customers:
  - {id: acme_corp_001, name: Acme Corporation}
  - {id: initech_003, name: Initech KK, billing_profile: manual}
  - {id: hooli_005, name: Hooli, billing_profile: manual}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
  - {id: sub_hooli_pro, customer: hooli_005, plan: professional, start_date: 2026-01-01}
"""


@pytest.fixture
def small_catalog(billing_env):
    """The example meters and plans, two customers on the seed plan (one with app none)."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    return billing_env


def seed_usage(landing: Path, customer: str, name: str) -> Path:
    """January usage of the contract's seed example: 15,420 API calls, storage peaking at
    25 GB, 250 exports."""
    lines: list[object] = [event(f"{customer}_api_{i}", customer=customer,
                                 ts=f"2026-01-{1 + i % 31:02d}T{i % 24:02d}:00:00Z")
                           for i in range(15_420)]
    lines += [event(f"{customer}_gb_{gb}", customer=customer, name="storage.snapshot",
                    ts=f"2026-01-{day:02d}T12:00:00Z", properties={"gb": gb})
              for day, gb in ((3, 12), (15, 25), (30, "18.5"))]
    lines += [event(f"{customer}_exp_{i}", customer=customer, name="report.exported",
                    ts="2026-01-20T08:00:00Z") for i in range(250)]
    # outside the period or another customer's: not billed to this invoice
    lines += [event(f"{customer}_late", customer=customer, ts="2026-02-01T00:00:00Z")]
    return write_lines(landing / name, lines)


def billing_run(month: str, now: str) -> dg.ExecuteInProcessResult:
    """The billing job's result for a month (`YYYY-MM`), failed or not."""
    return run_job(BILLING_JOB, now, partition=f"{month}-01")


def invoice_lines(warehouse: Path, subscription: str, boundary: str) -> dict[str, Decimal]:
    rows = query(warehouse, """
        SELECT coalesce(l.price_key, l.line_type), l.amount
        FROM billing.invoice_lines l JOIN billing.invoices i USING (invoice_id)
        WHERE i.subscription_id = $sub AND i.boundary = $b::DATE ORDER BY l.position""",
                 {"sub": subscription, "b": boundary})
    return dict(rows)


def test_seed_plan_invoice_golden_values(small_catalog):
    warehouse = small_catalog["warehouse"]
    seed_usage(small_catalog["landing"], "acme_corp_001", "jan.jsonl")
    ingest_landed()
    result = billing_run("2026-02", "2026-02-03T00:00:00Z")
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    lines = invoice_lines(warehouse, "sub_acme_pro", "2026-02-01")
    assert lines == {
        # 1000 x 0.01 + 10.00 flat + 9000 x 0.008 + 5420 x 0.005 = 10 + 10 + 72 + 27.10
        "api_calls": Decimal("119.10"),
        # max 25 GB, 10 included: 15 x 0.25
        "storage": Decimal("3.75"),
        # ceil(250 / 100) = 3 packages x 5.00
        "exports": Decimal("15.00"),
        # February's platform fee, in advance
        "platform_fee": Decimal("10.00"),
    }
    [(number, status, total, subtotal, due)] = query(warehouse, """
        SELECT invoice_number, status, total, subtotal, due_date::VARCHAR FROM billing.invoices
        WHERE subscription_id = 'sub_acme_pro' AND boundary = DATE '2026-02-01'""")
    # January's charges (with January's 10.00 fee) are far above the 50.00 commitment; the grace
    # period is over, so the stripe invoice waits in issuing for the Stripe sync (no number yet)
    assert (number, status, total, subtotal, due) == (
        None, "issuing", Decimal("147.85"), Decimal("147.85"), "2026-02-01")
    [(tiers,)] = query(warehouse, """
        SELECT tiers FROM billing.invoice_lines WHERE price_key = 'api_calls'
        AND period_start = DATE '2026-01-01' AND invoice_id IN (SELECT invoice_id
        FROM billing.invoices WHERE subscription_id = 'sub_acme_pro')""")
    # finance can explain the amount tier by tier: units x unit price + flat fee
    assert [(Decimal(t["units"]), Decimal(t["unit_price"]), Decimal(t["flat_fee"]),
             Decimal(t["amount"])) for t in json.loads(tiers)] == [
        (1000, Decimal("0.01"), Decimal("10.00"), Decimal("20.00")),
        (9000, Decimal("0.008"), 0, Decimal("72")),
        (5420, Decimal("0.005"), 0, Decimal("27.1"))]
    [(quantity, counted)] = query(warehouse, """
        SELECT quantity, events_counted FROM billing.usage_quantities
        WHERE subscription_id = 'sub_acme_pro' AND meter_key = 'api_requests'""")
    assert (quantity, counted) == (Decimal("15420"), 15_420)


def test_empty_month_gives_minimum_commitment_and_rerun_changes_nothing(small_catalog):
    warehouse = small_catalog["warehouse"]
    ingest_landed()
    assert billing_run("2026-02", "2026-02-03T00:00:00Z").success

    def snapshot():
        return [query(warehouse, f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("billing.invoices", "billing.invoice_lines")] + [
            query(warehouse, "SELECT * FROM billing.invoice_status_history ORDER BY ALL")]

    first = snapshot()
    lines = invoice_lines(warehouse, "sub_acme_pro", "2026-02-01")
    # no usage: zero lines kept; 10.00 of January's fee counts, so 40.00 tops up to 50.00
    assert lines["api_calls"] == lines["storage"] == lines["exports"] == Decimal("0")
    assert lines["minimum_commitment"] == Decimal("40.00")
    assert billing_run("2026-02", "2026-02-03T00:00:00Z").success
    assert snapshot() == first


def test_issued_invoice_never_changes_and_a_late_difference_is_recorded(small_catalog):
    warehouse, landing = small_catalog["warehouse"], small_catalog["landing"]
    seed_usage(landing, "initech_003", "jan.jsonl")
    ingest_landed()
    # 01:00 is within initech's 2 h grace period: still a draft
    early = billing_run("2026-02", "2026-02-01T01:00:00Z")
    assert early.success
    assert query(warehouse, "SELECT status FROM billing.invoices WHERE subscription_id = "
                            "'sub_initech_pro' AND boundary = DATE '2026-02-01'") == [("draft",)]
    assert billing_run("2026-02", "2026-02-01T03:00:00Z").success
    issued = query(warehouse, "SELECT invoice_number, status, total FROM billing.invoices "
                              "WHERE subscription_id = 'sub_initech_pro' AND boundary = "
                              "DATE '2026-02-01'")
    # numbered in customer order: hooli_005 got 00001
    assert issued == [("INV-202602-00002", "issued", Decimal("147.85"))]
    history = query(warehouse, """
        SELECT from_status, to_status, cause FROM billing.invoice_status_history h
        JOIN billing.invoices i USING (invoice_id)
        WHERE i.subscription_id = 'sub_initech_pro' AND i.boundary = DATE '2026-02-01'
        ORDER BY changed_at """)
    assert history == [(None, "draft", "rated: service period closed"),
                       ("draft", "issued", "grace period over")]
    # a late January event arrives after issue
    write_lines(landing / "late.jsonl", [event("late_1", customer="initech_003",
                                               ts="2026-01-31T23:00:00Z")])
    ingest_landed()
    rerun = billing_run("2026-02", "2026-02-02T00:00:00Z")
    assert rerun.success
    assert query(warehouse, "SELECT invoice_number, status, total FROM billing.invoices "
                            "WHERE subscription_id = 'sub_initech_pro' AND boundary = "
                            "DATE '2026-02-01'") == issued
    diffs = query(warehouse, """SELECT item, issued_amount, rerated_amount
                                FROM billing.invoice_differences ORDER BY item""")
    # 15,421 calls: one more unit at 0.005 → 119.105 rounds half away from zero to 119.11
    assert diffs == [("line amount", Decimal("119.10"), Decimal("119.11")),
                     ("total", Decimal("147.85"), Decimal("147.86"))]
    assert billing_run("2026-02", "2026-02-02T00:00:00Z").success
    assert len(query(warehouse, "SELECT * FROM billing.invoice_differences")) == 2


def test_draft_is_rerated_in_place_with_the_same_ids(small_catalog):
    warehouse, landing = small_catalog["warehouse"], small_catalog["landing"]
    write_lines(landing / "a.jsonl", [event(f"a{i}", ts="2026-01-05T00:00:00Z")
                                      for i in range(2000)])
    ingest_landed()
    # within the 1 h grace period the invoice is still a draft, so late events re-rate it
    assert billing_run("2026-02", "2026-02-01T00:30:00Z").success
    before = invoice_lines(warehouse, "sub_acme_pro", "2026-02-01")
    ids = query(warehouse, "SELECT line_id FROM billing.invoice_lines ORDER BY 1")
    write_lines(landing / "b.jsonl", [event(f"b{i}", ts="2026-01-06T00:00:00Z")
                                      for i in range(1000)])
    ingest_landed()
    assert billing_run("2026-02", "2026-02-01T00:45:00Z").success
    after = invoice_lines(warehouse, "sub_acme_pro", "2026-02-01")
    # 2000 calls: 10 + 10 + 1000 x 0.008 = 28.00; 3000 calls: 10 + 10 + 2000 x 0.008 = 36.00
    assert (before["api_calls"], after["api_calls"]) == (Decimal("28.00"), Decimal("36.00"))
    assert query(warehouse, "SELECT line_id FROM billing.invoice_lines ORDER BY 1") == ids


def test_backfill_a_range_with_gap_free_numbers(small_catalog, capsys, monkeypatch):
    from pipelines.cli import main

    warehouse = small_catalog["warehouse"]
    ingest_landed()
    monkeypatch.setenv("BILLING_NOW", "2026-05-01T06:00:00Z")
    main(["run", "--month", "2026-01", "--to", "2026-04"])
    printed = capsys.readouterr()
    out = printed.out
    assert "2026-03: rated 3 invoice(s): 3 draft(s) written, 3 left draft" in out
    # progress on standard error: each step and check with its time, the step's own lines
    progress = printed.err.splitlines()
    assert any(line.endswith("s] billing/usage_quantities: started") for line in progress)
    assert any("billing/usage_quantities: 2026-03: " in line and " usage rows from " in line
               for line in progress)
    assert any("] billing/invoices: done in " in line for line in progress)
    assert any("] check invoice_totals_match_lines: passed in " in line for line in progress)
    assert not any("FAILED" in line for line in progress)
    # totals by status and currency, not one row per invoice unless asked
    assert "INV-202603-00001" not in out and "issued   USD              2  100.00" in out
    main(["run", "--month", "2026-03", "--details"])
    assert "INV-202603-00001" in capsys.readouterr().out
    numbers = query(warehouse, """
        SELECT billing_month, list(invoice_number ORDER BY invoice_number)
        FROM billing.invoices WHERE status = 'issued' GROUP BY 1 ORDER BY 1""")
    # the two app-none customers are issued per cut, numbered per month without gaps
    assert numbers == [(f"2026-0{m}", [f"INV-20260{m}-00001", f"INV-20260{m}-00002"])
                       for m in range(1, 5)]
    assert query(warehouse, "SELECT count(*), count(DISTINCT (subscription_id, boundary)) "
                            "FROM billing.invoices") == [(12, 12)]
    # re-running the range issues nothing twice and keeps every number
    main(["run", "--month", "2026-01", "--to", "2026-04"])
    assert query(warehouse, """
        SELECT billing_month, list(invoice_number ORDER BY invoice_number)
        FROM billing.invoices WHERE status = 'issued' GROUP BY 1 ORDER BY 1""") == numbers


def test_invoice_checks_catch_a_corrupted_ledger(small_catalog):
    from pipelines.catalog import load_catalog
    from pipelines.invoicing import audit
    from pipelines.warehouse import connect_reader, connect_writer

    seed_usage(small_catalog["landing"], "acme_corp_001", "jan.jsonl")
    ingest_landed()
    now = datetime(2026, 2, 3, tzinfo=UTC)
    assert billing_run("2026-02", now.isoformat()).success
    catalog = load_catalog(small_catalog["catalog"])
    path = str(small_catalog["warehouse"])
    with connect_reader(path) as con:
        assert audit.invoice_totals(con, "2026-02").passed
        assert audit.lines_priced(con, catalog, "2026-02", now).passed
        assert audit.usage_coverage(con, "2026-02").passed
    with connect_writer(path) as con:
        con.execute("UPDATE billing.invoice_lines SET amount = 119.09 "
                    "WHERE price_key = 'api_calls' AND amount = 119.10")
        # a flat fee that is not its price (10.00 for a full month)
        con.execute("UPDATE billing.invoice_lines SET amount = 9.99 "
                    "WHERE price_key = 'platform_fee' AND period_start = DATE '2026-02-01'")
        # an event counted twice: a second, overlapping usage row for the same meter
        con.execute("""INSERT INTO billing.usage_quantities
                       SELECT billing_month, subscription_id, customer_id, meter_key,
                              period_start + 1, period_end, quantity, events_counted, rated_at
                       FROM billing.usage_quantities
                       WHERE meter_key = 'exports' AND subscription_id = 'sub_acme_pro'""")
    with connect_reader(path) as con:
        totals = audit.invoice_totals(con, "2026-02")
        priced = audit.lines_priced(con, catalog, "2026-02", now)
        coverage = audit.usage_coverage(con, "2026-02")
    assert not totals.passed
    assert "sum of the invoice's lines" in totals.metadata["failure_cases"].markdown
    assert not priced.passed
    assert "rounded price computation" in priced.metadata["failure_cases"].markdown
    # the api_calls line and the three subscriptions' February platform fees
    assert priced.metadata["failures"] == 4
    assert not coverage.passed
    assert "overlapping_periods" in coverage.metadata["failure_cases"].markdown


def test_prorated_first_period_passes_the_pricing_check(billing_env):
    """The example catalog's acme starts on 2026-01-20 with anchor 1: the start-date cut bills
    the partial period Jan 20 - Feb 1 in advance, prorated by days."""
    ingest_landed()
    result = billing_run("2026-01", "2026-02-03T00:00:00Z")
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    # 10.00 x 12/31 days = 3.870967... -> 3.87
    assert invoice_lines(billing_env["warehouse"], "sub_acme_pro", "2026-01-20") == {
        "platform_fee": Decimal("3.87")}
