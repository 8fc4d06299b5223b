"""The journal and revenue recognition over a warehouse filled by hand (pipelines/accounting):
one March with an invoice (an in-advance fee across two months, usage, 10 % exclusive tax), a
credit note on the usage line, a payment and a partial refund, posted and recognized with the
golden amounts computed by hand; the trial balance is zero per currency; a re-run posts
nothing; a change is a reversal plus a new entry; the blocking checks pass and catch a
tampered journal; a void reverses the issue; a write-off and its reversal once paid."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.accounting import checks
from pipelines.accounting.journal import post_journal
from pipelines.catalog.accounts import account_rows
from pipelines.catalog.models import Accounts
from pipelines.checks import pandera_check
from pipelines.warehouse import connect_writer

ISSUED = datetime(2026, 3, 15, 1, 0, tzinfo=UTC)
CREDITED = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
PAID = datetime(2026, 3, 25, 9, 0, tzinfo=UTC)
REFUNDED = datetime(2026, 3, 28, 16, 0, tzinfo=UTC)
NOW = datetime(2026, 4, 2, 6, 0, tzinfo=UTC)
A = Accounts()
CLEARING = A.cash["stripe"]


def _invoice(con: duckdb.DuckDBPyConnection, invoice_id: str, status: str, *,
             customer: str = "c1", currency: str = "USD") -> None:
    con.execute("""
        INSERT INTO billing.invoices BY NAME
        SELECT $id AS invoice_id, 'INV-' || $id AS invoice_number, $customer AS customer_id,
               'sub_1' AS subscription_id, 'pro' AS plan_key, '2026-03' AS billing_month,
               DATE '2026-03-15' AS boundary, DATE '2026-02-15' AS period_start,
               DATE '2026-03-15' AS period_end, $currency AS currency, 350 AS subtotal,
               0 AS discount_total, 350 AS total, $status AS status,
               'charge_automatically' AS collection_method, DATE '2026-03-15' AS due_date,
               'stripe' AS billing_profile, 'stripe' AS app, $at AS issue_after,
               $at AS issued_at, $at AS created_at, $at AS rated_at,
               10 AS tax_rate_percent, false AS tax_inclusive, 35 AS tax_total,
               385 AS total_including_tax, $at AS status_changed_at""",
                {"id": invoice_id, "status": status, "customer": customer,
                 "currency": currency, "at": ISSUED})
    con.execute("""
        INSERT INTO billing.invoice_lines BY NAME
        SELECT * FROM (VALUES
            ($id || '_fee', 'flat', 'platform_fee', 300.00, 30.00, DATE '2026-03-15',
             DATE '2026-04-15', 0),
            ($id || '_usage', 'usage', 'api_calls', 50.00, 5.00, DATE '2026-02-15',
             DATE '2026-03-15', 1))
            l(line_id, line_type, price_key, amount, tax_amount, period_start, period_end,
              position),
            (SELECT $id AS invoice_id, 'line' AS description, false AS tax_inclusive)""",
                {"id": invoice_id})


def _status(con: duckdb.DuckDBPyConnection, invoice_id: str, to: str, at: datetime) -> None:
    con.execute("INSERT INTO billing.invoice_status_history VALUES ($id, NULL, $to, $at, "
                "'test', 'test')", {"id": invoice_id, "to": to, "at": at})


def seed(con: duckdb.DuckDBPyConnection) -> None:
    for row in account_rows(A):
        con.execute("INSERT INTO billing.accounts BY NAME SELECT $role AS role, "
                    "$plan_key AS plan_key, $price_key AS price_key, $provider AS provider, "
                    "$account AS account, $source_file AS source_file", row)
    _invoice(con, "inv_1", "partially_refunded")
    _status(con, "inv_1", "paid", PAID)
    _status(con, "inv_1", "partially_refunded", REFUNDED)
    # a credit note of 20.00 (+ 2.00 tax) on the usage line, issued before the payment
    con.execute("""
        INSERT INTO billing.credit_notes BY NAME
        SELECT 'cn_1' AS credit_note_id, 'CN-1' AS credit_note_number, 'inv_1' AS invoice_id,
               'c1' AS customer_id, '2026-03' AS billing_month, 'USD' AS currency,
               20 AS total, 2 AS tax_total, 22 AS total_including_tax, 'issued' AS status,
               'correction' AS reason, 'correction' AS kind, 'stripe' AS billing_profile,
               'stripe' AS app, $at AS issue_after, $at AS created_at, 'test' AS created_by,
               $at AS issued_at, $at AS status_changed_at""", {"at": CREDITED})
    con.execute("""
        INSERT INTO billing.credit_note_lines BY NAME
        SELECT 'cnl_1' AS credit_note_line_id, 'cn_1' AS credit_note_id,
               'inv_1_usage' AS corrects_line_id, -20.00 AS amount, -2.00 AS tax_amount,
               false AS tax_inclusive, 'usage credit' AS description, 0 AS position""")
    # Stripe shows 50.00 of the 363.00 paid refunded
    con.execute("""
        INSERT INTO sync.provider_invoices BY NAME
        SELECT 'stripe' AS provider, 'in_1' AS external_id, 'inv_1' AS invoice_id,
               'paid' AS status, 'USD' AS currency, 385 AS total, 363 AS amount_paid,
               0 AS amount_remaining, 50 AS amount_refunded, $at AS snapshot_at""",
                {"at": NOW})


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect_writer(str(tmp_path / "warehouse.duckdb")) as con:
        seed(con)
        yield con


def _lines(con: duckdb.DuckDBPyConnection, source_type: str) -> list[tuple]:
    return con.execute("""
        SELECT l.account, l.debit, l.credit, l.customer_id
        FROM finance.journal_lines l JOIN finance.journal_entries e USING (entry_id)
        WHERE e.source_type = $t AND e.entry_kind = 'posting' ORDER BY e.posted_at, l.line_no
    """, {"t": source_type}).fetchall()


def _balances(con: duckdb.DuckDBPyConnection) -> dict[str, Decimal]:
    return {account: balance for account, balance in con.execute(
        "SELECT account, sum(debit - credit) FROM finance.journal_lines GROUP BY account"
    ).fetchall()}


def _checks_pass(con: duckdb.DuckDBPyConnection) -> None:
    for model, frame in ((checks.EntryBalances, checks.entry_balances(con)),
                         (checks.ReceivableByCustomer, checks.receivable_by_customer(con)),
                         (checks.ScheduleSums, checks.schedule_sums(con))):
        outcome = pandera_check(model, frame)
        assert outcome.passed, (model.__name__, outcome.metadata)


def test_a_month_with_a_credit_note_and_a_partial_refund_is_posted_and_recognized(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    con = warehouse
    counts = post_journal(con, now=NOW)
    assert counts == {"invoice": 1, "credit_note": 1, "payment": 1, "refund": 1,
                      "revenue_recognition": 1, "schedule_rows": 6}
    d = Decimal
    # issue: Dr receivable 385.00 (350 + 35 tax); Cr deferred 300 (the in-advance fee),
    # Cr revenue 50 (usage), Cr tax payable 35
    assert _lines(con, "invoice") == [
        (A.receivable, d("385"), d("0"), "c1"), (A.deferred_revenue, d("0"), d("300"), "c1"),
        (A.revenue, d("0"), d("50"), "c1"), (A.tax_payable, d("0"), d("35"), "c1")]
    # credit note on the usage line (at issue): Dr contra revenue 20, Dr tax 2, Cr receivable 22
    assert _lines(con, "credit_note") == [
        (A.receivable, d("0"), d("22"), "c1"), (A.contra_revenue, d("20"), d("0"), "c1"),
        (A.tax_payable, d("2"), d("0"), "c1")]
    # paid: 385 - 22 credited before payment = 363; refunded 50 (Stripe's figure)
    assert _lines(con, "payment") == [(CLEARING, d("363"), d("0"), "c1"),
                                      (A.receivable, d("0"), d("363"), "c1")]
    assert _lines(con, "refund") == [(A.receivable, d("50"), d("0"), "c1"),
                                     (CLEARING, d("0"), d("50"), "c1")]
    # March is over: 300 x 17/31 = 164.516.. -> 164.52 of the fee moves to revenue
    assert _lines(con, "revenue_recognition") == [
        (A.deferred_revenue, d("164.52"), d("0"), "c1"), (A.revenue, d("0"), d("164.52"), "c1")]
    [(posted_at,)] = con.execute("SELECT posted_at FROM finance.journal_entries "
                                 "WHERE source_type = 'revenue_recognition'").fetchall()
    assert posted_at == datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)
    # the schedule: usage 50 over Feb 15 - Mar 15 (14 + 14 days) 25 / 25; its credit -20
    # over the same period -10 / -10; the fee 164.52 / 135.48
    schedule = con.execute("""SELECT line_id, month, amount, basis, recognized
                              FROM finance.revenue_schedule ORDER BY line_id, month""").fetchall()
    assert schedule == [
        ("cnl_1", "2026-02", d("-10"), "at_issue", True),
        ("cnl_1", "2026-03", d("-10"), "at_issue", True),
        ("inv_1_fee", "2026-03", d("164.52"), "deferred", True),
        ("inv_1_fee", "2026-04", d("135.48"), "deferred", False),
        ("inv_1_usage", "2026-02", d("25"), "at_issue", True),
        ("inv_1_usage", "2026-03", d("25"), "at_issue", True)]
    # trial balance: receivable 385 - 22 - 363 + 50 = 50; deferred -300 + 164.52 = -135.48;
    # revenue -50 - 164.52 = -214.52; tax -35 + 2 = -33; contra 20; clearing 363 - 50 = 313;
    # 50 + 20 + 313 = 383 = 135.48 + 214.52 + 33: the sum is zero
    assert _balances(con) == {A.receivable: d("50"), A.deferred_revenue: d("-135.48"),
                              A.revenue: d("-214.52"), A.tax_payable: d("-33"),
                              A.contra_revenue: d("20"), CLEARING: d("313")}
    assert con.execute("SELECT currency, sum(debit) - sum(credit) FROM finance.journal_lines "
                       "GROUP BY currency").fetchall() == [("USD", d("0"))]
    # deferred revenue per month: 300 deferred and 164.52 recognized in March
    assert con.execute("SELECT month, deferred, recognized, balance "
                       "FROM finance.deferred_revenue_balance").fetchall() == [
        ("2026-03", d("300"), d("164.52"), d("135.48"))]
    _checks_pass(con)


def test_a_rerun_posts_nothing_and_a_change_is_a_reversal_plus_a_new_entry(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    con = warehouse
    post_journal(con, now=NOW)
    before = con.execute("SELECT count(*) FROM finance.journal_entries").fetchone()
    assert post_journal(con, now=NOW) == {"schedule_rows": 6}
    assert con.execute("SELECT count(*) FROM finance.journal_entries").fetchone() == before
    # Stripe refunds 30.00 more: the 50.00 refund is reversed and an 80.00 one posted
    con.execute("UPDATE sync.provider_invoices SET amount_refunded = 80")
    later = datetime(2026, 4, 3, 6, 0, tzinfo=UTC)
    assert post_journal(con, now=later) == {"reversals": 1, "refund": 1, "schedule_rows": 6}
    rows = con.execute("""
        SELECT revision, entry_kind, posted_at, reverses_entry_id IS NOT NULL
        FROM finance.journal_entries WHERE source_type = 'refund'
        ORDER BY recorded_at, entry_kind""").fetchall()
    assert rows == [(0, "posting", REFUNDED, False), (1, "posting", later, False),
                    (0, "reversal", later, True)]
    # a refund no credit note explains stays on receivable (owed by the customer, or waiting
    # for its credit note): 385 - 22 - 363 + 80 = 80
    assert _balances(con)[A.receivable] == Decimal("80")
    _checks_pass(con)


def test_the_checks_catch_an_unbalanced_entry_and_a_receivable_off_the_documents(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    con = warehouse
    post_journal(con, now=NOW)
    con.execute("UPDATE finance.journal_lines SET debit = debit + 1 "
                "WHERE account = $a AND debit > 0 AND entry_id IN (SELECT entry_id FROM "
                "finance.journal_entries WHERE source_type = 'payment')", {"a": CLEARING})
    assert not pandera_check(checks.EntryBalances, checks.entry_balances(con)).passed
    con.execute("UPDATE finance.journal_lines SET credit = credit + 1 "
                "WHERE account = $a AND credit > 0 AND entry_id IN (SELECT entry_id FROM "
                "finance.journal_entries WHERE source_type = 'payment')", {"a": A.receivable})
    assert pandera_check(checks.EntryBalances, checks.entry_balances(con)).passed
    assert not pandera_check(checks.ReceivableByCustomer,
                             checks.receivable_by_customer(con)).passed
    con.execute("UPDATE finance.revenue_schedule SET amount = amount + 0.01 "
                "WHERE line_id = 'inv_1_fee' AND month = '2026-04'")
    assert not pandera_check(checks.ScheduleSums, checks.schedule_sums(con)).passed


def test_a_void_reverses_the_issue_and_its_recognition(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    con = warehouse
    _invoice(con, "inv_2", "issued", customer="c2", currency="EUR")
    post_journal(con, now=NOW)
    voided_at = datetime(2026, 4, 5, tzinfo=UTC)
    con.execute("UPDATE billing.invoices SET status = 'voided' WHERE invoice_id = 'inv_2'")
    _status(con, "inv_2", "voided", voided_at)
    counts = post_journal(con, now=datetime(2026, 4, 6, tzinfo=UTC))
    # the void entry, and the reversal of March's recognition of the voided invoice
    assert counts == {"void": 1, "reversals": 1, "schedule_rows": 6}
    eur = dict(con.execute("SELECT account, sum(debit - credit) FROM finance.journal_lines "
                           "WHERE currency = 'EUR' GROUP BY account").fetchall())
    assert set(eur.values()) == {Decimal(0)}
    [(reverses, posted_at)] = con.execute("""
        SELECT v.reverses_entry_id = i.entry_id, v.posted_at
        FROM finance.journal_entries v, finance.journal_entries i
        WHERE v.source_type = 'void' AND i.source_type = 'invoice'
          AND i.source_id = 'inv_2'""").fetchall()
    assert reverses and posted_at == voided_at
    _checks_pass(con)


def test_a_write_off_and_its_reversal_when_the_invoice_is_paid_after_all(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    con = warehouse
    _invoice(con, "inv_3", "uncollectible", customer="c3")
    _status(con, "inv_3", "uncollectible", datetime(2026, 3, 30, tzinfo=UTC))
    post_journal(con, now=NOW)
    assert _lines(con, "write_off") == [(A.bad_debt, Decimal("385"), Decimal("0"), "c3"),
                                        (A.receivable, Decimal("0"), Decimal("385"), "c3")]
    _checks_pass(con)
    con.execute("UPDATE billing.invoices SET status = 'paid' WHERE invoice_id = 'inv_3'")
    _status(con, "inv_3", "paid", datetime(2026, 4, 10, tzinfo=UTC))
    assert post_journal(con, now=datetime(2026, 4, 11, tzinfo=UTC)) == {
        "payment": 1, "reversals": 1, "schedule_rows": 10}
    c3 = dict(con.execute("SELECT account, sum(debit - credit) FROM finance.journal_lines "
                          "WHERE customer_id = 'c3' GROUP BY account").fetchall())
    assert c3[A.receivable] == 0 and c3[A.bad_debt] == 0 and c3[CLEARING] == Decimal("385")
    _checks_pass(con)


def test_the_journal_export_has_one_row_per_line_of_the_month(tmp_path: Path) -> None:
    import polars as pl

    from pipelines.cli.export import export_journal

    path = tmp_path / "warehouse.duckdb"
    with connect_writer(str(path)) as con:
        seed(con)
        con.execute("UPDATE billing.invoices SET invoice_number = '=HYPERLINK(1)'")
        post_journal(con, now=NOW)
    csv = export_journal("2026-03", "csv", tmp_path / "j.csv", warehouse=str(path))
    parquet = export_journal("2026-03", "parquet", tmp_path / "j.parquet", warehouse=str(path))
    frame = pl.read_parquet(parquet)
    # March: invoice 4 lines, credit note 3, payment 2, refund 2, recognition 2
    assert frame.height == 13
    assert frame["debit"].sum() == frame["credit"].sum()
    text = csv.read_text(encoding="utf-8")
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text
    assert export_journal("2026-05", "parquet", tmp_path / "e.parquet",
                          warehouse=str(path)).exists()
    with pytest.raises(ValueError):
        export_journal("March", "csv", tmp_path / "x.csv", warehouse=str(path))


def test_the_refund_is_the_main_copys_when_the_provider_holds_several(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    """A second copy of inv_1 at Stripe (made by hand, its id sorting first) shows 100.00
    refunded; the copy our sync mapped (in_1) shows 50.00. The journal and the receivable
    check both take the mapped copy's 50.00, never the largest."""
    con = warehouse
    con.execute("""
        INSERT INTO sync.provider_invoices BY NAME
        SELECT 'stripe' AS provider, 'in_0_by_hand' AS external_id, 'inv_1' AS invoice_id,
               'paid' AS status, 'USD' AS currency, 385 AS total, 363 AS amount_paid,
               0 AS amount_remaining, 100 AS amount_refunded, $at AS snapshot_at""",
                {"at": NOW})
    con.execute("INSERT INTO sync.external_ids VALUES ('stripe', 'invoice', 'inv_1', 'in_1', "
                "$at)", {"at": ISSUED})
    post_journal(con, now=NOW)
    assert _lines(con, "refund") == [(A.receivable, Decimal("50"), Decimal("0"), "c1"),
                                     (CLEARING, Decimal("0"), Decimal("50"), "c1")]
    # receivable 385 - 22 - 363 + 50 = 50 in the journal and from the documents
    assert checks.receivable_by_customer(con).rows() == [
        ("c1", "USD", Decimal("50"), Decimal("50"))]
    _checks_pass(con)


def test_payment_and_refund_dates_without_a_move_in_the_ledger(
        warehouse: duckdb.DuckDBPyConnection) -> None:
    """Providers' own payment instants are not read: a payment is dated by the ledger's first
    move to paid. Without one (a ledger older than its status history), by the invoice's last
    status change, never before its issue. A refund only the provider's snapshot shows (the
    ledger still says paid) is dated by that snapshot, never by the payment (docs/accounting.md,
    "Dates")."""
    con = warehouse
    changed = datetime(2026, 3, 26, 8, 0, tzinfo=UTC)
    snapshot = datetime(2026, 4, 1, 23, 0, tzinfo=UTC)
    _invoice(con, "inv_4", "paid", customer="c4")          # no 'paid' row in the history
    con.execute("UPDATE billing.invoices SET status_changed_at = $at WHERE invoice_id = 'inv_4'",
                {"at": changed})
    con.execute("""
        INSERT INTO sync.provider_invoices BY NAME
        SELECT 'stripe' AS provider, 'in_4' AS external_id, 'inv_4' AS invoice_id,
               'paid' AS status, 'USD' AS currency, 385 AS total, 385 AS amount_paid,
               0 AS amount_remaining, 10 AS amount_refunded, $at AS snapshot_at""",
                {"at": snapshot})
    _invoice(con, "inv_5", "paid", customer="c5")           # status_changed_at unknown
    con.execute("UPDATE billing.invoices SET status_changed_at = NULL "
                "WHERE invoice_id = 'inv_5'")
    post_journal(con, now=NOW)
    dates = dict(((t, s), at) for t, s, at in con.execute(
        "SELECT source_type, source_id, posted_at FROM finance.journal_entries "
        "WHERE source_id IN ('inv_4', 'inv_5') AND source_type IN ('payment', 'refund')"
    ).fetchall())
    assert dates == {("payment", "inv_4"): changed, ("refund", "inv_4"): snapshot,
                     ("payment", "inv_5"): ISSUED}
    # the next snapshot is later, but the refund is the same: nothing is posted again
    con.execute("UPDATE sync.provider_invoices SET snapshot_at = $at", {"at": NOW})
    assert post_journal(con, now=NOW) == {"schedule_rows": 14}
    _checks_pass(con)
