"""The journal through the real Dagster jobs (docs/accounting.md): a month at the local Stripe
with issued invoices, a goodwill credit note, a payment and a partial refund, a write-off and an
annual in-advance fee starting mid-month; `billing_run`, `sync_run` and `reconcile_run` (which
posts the journal, finance/journal) as the schedules launch them. Hand-computed entries; a
re-run posts nothing; a refund that grows is a reversal plus a new entry; every entry balances;
receivable per customer equals the open documents (the blocking checks, run by the job)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.catalog.models import Accounts
from pipelines.cli import main as billing
from pipelines.jobs import RECONCILE_JOB
from tests.support.dagster_runs import run_billing, run_job, succeeded
from tests.support.landing import event, write_lines
from tests.support.local_stripe import SYNC_NOW, bill, sync
from tests.support.warehouse import query

D = Decimal
A = Accounts()
CLEARING = A.cash["stripe"]

PLANS = """
  - key: simple
    name: Simple
    currency: USD
    billing_period: monthly
    prices:
      - {key: platform_fee, type: flat, amount: "100.00", cadence: in_advance}
      - {key: api_calls, meter: api_requests, type: per_unit, unit_price: "0.50"}
  - key: annual
    name: Annual in advance
    currency: USD
    billing_period: yearly
    prices:
      - {key: platform_fee, type: flat, amount: "1200.00", cadence: in_advance}
"""
CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
customers:
  - {id: c_pay, name: Pays Inc, email: pay@shops.example}
  - {id: c_tax, name: Taxed Inc, email: tax@shops.example,
     address: {country: US, region: CA, postal_code: "94105"}}
  - {id: c_annual, name: Annual Inc, email: annual@shops.example}
subscriptions:
  - {id: sub_pay, customer: c_pay, plan: simple, start_date: 2026-01-01, billing_anchor: 1}
  - {id: sub_tax, customer: c_tax, plan: simple, start_date: 2026-02-01, billing_anchor: 1}
  - {id: sub_annual, customer: c_annual, plan: annual, start_date: 2026-01-15}
"""


JOURNAL_CHECKS = {"journal_entries_balance", "receivable_matches_open_documents",
                  "revenue_schedule_sums_to_lines"}


def reconcile(now: str) -> None:
    """`reconcile_run`; the journal's three blocking checks ran and passed."""
    result = succeeded(run_job(RECONCILE_JOB, now))
    outcomes = {e.check_name: e.passed for e in result.get_asset_check_evaluations()
                if e.check_name in JOURNAL_CHECKS}
    assert outcomes == dict.fromkeys(JOURNAL_CHECKS, True)


def stripe_id(wh: Path, invoice_id: str) -> str:
    return query(wh, "SELECT external_id FROM sync.external_ids WHERE provider = 'stripe' "
                     "AND object_type = 'invoice' AND internal_id = $id", {"id": invoice_id})[0][0]


def entries(wh: Path, customer: str) -> dict[tuple[str, str], list[tuple]]:
    """The live postings of a customer, by source (type, id): (account, debit, credit)."""
    rows = query(wh, """
        SELECT e.source_type, e.source_id, l.account, l.debit, l.credit
        FROM finance.journal_entries e JOIN finance.journal_lines l USING (entry_id)
        WHERE l.customer_id = $c AND e.entry_kind = 'posting'
          AND NOT EXISTS (SELECT 1 FROM finance.journal_entries r
                          WHERE r.reverses_entry_id = e.entry_id AND r.entry_kind = 'reversal')
        ORDER BY e.posted_at, e.source_type, l.line_no""", {"c": customer})
    out: dict[tuple[str, str], list[tuple]] = {}
    for source_type, source_id, account, debit, credit in rows:
        out.setdefault((source_type, source_id), []).append((account, debit, credit))
    return out


def journal_size(wh: Path) -> tuple[int, int]:
    return query(wh, "SELECT (SELECT count(*) FROM finance.journal_entries), "
                     "(SELECT count(*) FROM finance.journal_lines)")[0]


def assert_balanced(wh: Path) -> None:
    """Every entry balances; per currency the trial balance is zero; the receivable of each
    customer equals its open documents (the same frames the blocking checks read)."""
    assert query(wh, """
        SELECT entry_id FROM finance.journal_lines GROUP BY entry_id
        HAVING sum(debit) <> sum(credit)""") == []
    assert query(wh, "SELECT currency, sum(debit - credit) FROM finance.journal_lines "
                     "GROUP BY currency") == [("USD", D(0))]


@pytest.fixture
def month_at_stripe(stripe_env):
    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    plans = stripe_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text() + PLANS)
    write_lines(stripe_env["landing"] / "jan.jsonl",
                [event(f"pay-{i}", customer="c_pay", ts=f"2026-01-{10 + i:02d}T10:00:00Z")
                 for i in range(4)])
    run_billing("2026-01", SYNC_NOW)      # the annual fee's cut, 2026-01-15
    bill()                                # January's usage and February's fees, 2026-02-01
    assert sync().success                 # issued at Stripe, numbered
    return stripe_env


def test_a_month_of_documents_and_payments_is_posted_by_reconcile_run(
        month_at_stripe, local_stripe):
    wh: Path = month_at_stripe["warehouse"]
    ids = dict(query(wh, "SELECT customer_id || ':' || billing_month, invoice_id "
                         "FROM billing.invoices WHERE status <> 'discarded'"))
    pay_jan, pay, tax = ids["c_pay:2026-01"], ids["c_pay:2026-02"], ids["c_tax:2026-02"]
    annual = ids["c_annual:2026-01"]
    assert dict(query(wh, "SELECT invoice_id, total_including_tax FROM billing.invoices")) == {
        pay_jan: D("100.00"),  # January's fee (cut 2026-01-01), left unpaid
        pay: D("102.00"),      # 100.00 February fee + 4 January calls x 0.50
        tax: D("107.25"),      # 100.00 + 7.25 % California sales tax
        annual: D("1200.00")}  # a year in advance, 2026-01-15 .. 2027-01-15, no address: no tax

    # a goodwill credit of 5.00 on c_pay's invoice, taken to Stripe; c_pay pays the rest
    # (102.00 - 5.00 = 97.00), then 20.00 is refunded; c_tax's invoice is uncollectible
    billing(["credit-note", "create", "--invoice", pay, "--amount", "5.00", "--reason",
             "goodwill", "--actor", "finance:test"])
    assert sync("2026-02-03T02:00:00Z").success
    local_stripe.invoice_action(stripe_id(wh, pay), "pay")
    local_stripe.invoice_action(stripe_id(wh, tax), "mark_uncollectible")
    assert sync("2026-02-04T00:00:00Z").success
    local_stripe.invoice_action(stripe_id(wh, pay), "refund", amount=2000)
    assert sync("2026-02-05T00:00:00Z").success
    assert dict(query(wh, "SELECT invoice_id, status FROM billing.invoices")) == {
        pay_jan: "payment_processing.pending", pay: "partially_refunded",
        tax: "uncollectible", annual: "payment_processing.pending"}
    [credit_note] = query(wh, "SELECT credit_note_id FROM billing.credit_notes "
                              "WHERE issued_at IS NOT NULL")[0]

    # March 2nd: February is over
    reconcile("2026-03-02T06:00:00Z")
    fee_recognized = [(A.deferred_revenue, D("100"), D(0)), (A.revenue, D(0), D("100"))]
    assert entries(wh, "c_pay") == {
        # January's fee: deferred at issue, January (31 of 31 days) recognized once issued
        ("invoice", pay_jan): [(A.receivable, D("100"), D(0)),
                               (A.deferred_revenue, D(0), D("100"))],
        ("revenue_recognition", f"{pay_jan}|2026-01"): fee_recognized,
        # issue: Dr receivable 102.00; Cr revenue 2.00 (usage), deferred 100.00 (the fee)
        ("invoice", pay): [(A.receivable, D("102"), D(0)), (A.revenue, D(0), D("2")),
                           (A.deferred_revenue, D(0), D("100"))],
        # a credit note naming no line is at issue: Dr contra revenue 5.00, Cr receivable
        ("credit_note", credit_note): [(A.receivable, D(0), D("5")),
                                       (A.contra_revenue, D("5"), D(0))],
        # paid 102.00 - 5.00 credited before the payment = 97.00
        ("payment", pay): [(CLEARING, D("97"), D(0)), (A.receivable, D(0), D("97"))],
        # Stripe's figure: 20.00 of it refunded
        ("refund", pay): [(A.receivable, D("20"), D(0)), (CLEARING, D(0), D("20"))],
        # February (Feb 1 .. Mar 1, 28 of 28 days) recognized: the whole 100.00
        ("revenue_recognition", f"{pay}|2026-02"): fee_recognized}
    assert entries(wh, "c_tax") == {
        # Dr receivable 107.25; Cr deferred 100.00, Cr tax payable 7.25
        ("invoice", tax): [(A.receivable, D("107.25"), D(0)),
                           (A.deferred_revenue, D(0), D("100")),
                           (A.tax_payable, D(0), D("7.25"))],
        ("write_off", tax): [(A.bad_debt, D("107.25"), D(0)),
                             (A.receivable, D(0), D("107.25"))],
        ("revenue_recognition", f"{tax}|2026-02"): fee_recognized}
    # the annual fee, 1,200.00 over 365 days from 2026-01-15: January (17 days)
    # round(1200 x 17/365) = round(55.890..) = 55.89; February (28 days) round(1200 x 45/365)
    # - 55.89 = 147.95 - 55.89 = 92.06; both months are over
    assert entries(wh, "c_annual") == {
        ("invoice", annual): [(A.receivable, D("1200"), D(0)),
                              (A.deferred_revenue, D(0), D("1200"))],
        ("revenue_recognition", f"{annual}|2026-01"): [(A.deferred_revenue, D("55.89"), D(0)),
                                                       (A.revenue, D(0), D("55.89"))],
        ("revenue_recognition", f"{annual}|2026-02"): [(A.deferred_revenue, D("92.06"), D(0)),
                                                       (A.revenue, D(0), D("92.06"))]}
    schedule = query(wh, """SELECT month, days, amount, recognized FROM finance.revenue_schedule
                            WHERE document_id = $id ORDER BY month""", {"id": annual})
    assert len(schedule) == 13 and sum(r[2] for r in schedule) == D("1200")
    assert sum(r[1] for r in schedule) == 365
    assert schedule[:3] == [("2026-01", 17, D("55.89"), True), ("2026-02", 28, D("92.06"), True),
                            # round(1200 x 76/365) = 249.86 - 147.95 = 101.91
                            ("2026-03", 31, D("101.91"), False)]
    # the last month carries the remainder: 1200.00 - round(1200 x 351/365) = 1200 - 1153.97
    assert schedule[-1] == ("2027-01", 14, D("46.03"), False)
    # January's recognition is dated when the invoice was issued (after January was over)
    issued = query(wh, "SELECT issued_at FROM billing.invoices WHERE invoice_id = $id",
                   {"id": annual})[0][0]
    assert query(wh, "SELECT posted_at FROM finance.journal_entries WHERE source_id = $s",
                 {"s": f"{annual}|2026-01"}) == [(issued,)]
    assert query(wh, "SELECT posted_at FROM finance.journal_entries WHERE source_id = $s",
                 {"s": f"{annual}|2026-02"}) == [
        (datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),)]
    # receivable per customer: c_pay 100.00 (January, open) + 102 - 5 - 97 + 20 = 120.00 (the
    # refund has no credit note yet); c_tax 0 (written off); c_annual 1,200.00 open
    assert query(wh, """
        SELECT customer_id, sum(debit - credit) FROM finance.journal_lines
        WHERE account = $a GROUP BY ALL ORDER BY ALL""", {"a": A.receivable}) == [
        ("c_annual", D("1200")), ("c_pay", D("120")), ("c_tax", D("0"))]
    assert_balanced(wh)

    # a re-run posts nothing
    before = journal_size(wh)
    reconcile("2026-03-02T07:00:00Z")
    assert journal_size(wh) == before

    # Stripe refunds 10.00 more: the 20.00 refund is reversed and a 30.00 one posted, at the
    # run's time; nothing else moves
    local_stripe.invoice_action(stripe_id(wh, pay), "refund", amount=1000)
    reconcile("2026-03-03T06:00:00Z")
    refunds = query(wh, """
        SELECT e.revision, e.entry_kind, e.posted_at, l.account, l.debit, l.credit
        FROM finance.journal_entries e JOIN finance.journal_lines l USING (entry_id)
        WHERE e.source_type = 'refund' ORDER BY e.recorded_at, e.entry_kind, l.line_no""")
    later = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    assert [r for r in refunds if r[2] == later] == [
        (1, "posting", later, A.receivable, D("30"), D(0)),
        (1, "posting", later, CLEARING, D(0), D("30")),
        (0, "reversal", later, A.receivable, D(0), D("20")),
        (0, "reversal", later, CLEARING, D("20"), D(0))]
    assert journal_size(wh) == (before[0] + 2, before[1] + 4)
    assert query(wh, "SELECT sum(debit - credit) FROM finance.journal_lines WHERE account = $a "
                     "AND customer_id = 'c_pay'", {"a": A.receivable}) == [(D("130"),)]
    assert_balanced(wh)
