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
    INVOICE_TYPES,
    MONTH,
    ORPHAN_DETAIL,
    PAYMENT_TYPES,
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

    # summary: 10 invoices of January (inv_h is December); totals per currency, never mixed
    assert "<dt>Invoices</dt><dd>10</dd>" in html
    assert "<dd>2026-02-01 12:00 UTC</dd>" in html  # generated at BILLING_NOW
    assert "<dd>2026-02-01 06:00 UTC</dd>" in html  # reconciled at
    assert page.body("summary", "totals") == [
        # currency, invoices, issued, issued total, awaiting issue, awaiting total, voided
        ["EUR", "4", "3", "1,235.00", "0", "0.00", "1"],      # 1000.25 + 234.25 + 0.50
        ["JPY", "1", "1", "150,000", "0", "0", "0"],
        ["USD", "5", "1", "99.99", "4", "511.01", "0"],       # 500 + 10 + 1 + 0.01 waiting
    ]
    counts = page.body("summary", "match-counts")
    assert ["invoice", "matched", "2"] in counts
    assert ["payment", "matched", "1"] in counts
    assert ["usage", "matched", "1"] in counts

    # revenue: issued invoices only (draft, draft.*, issuing, issuing.*, voided left out)
    assert page.body("revenue", "revenue") == [
        ["EUR", "starter", "Starter", "2", "1,234.50"],
        ["EUR", "pro", "Pro & Co <b>", "1", "0.50"],
        ["EUR", "all plans", "", "3", "1,235.00"],
        ["JPY", "enterprise", "Enterprise", "1", "150,000"],
        ["JPY", "all plans", "", "1", "150,000"],
        ["USD", "pro", "Pro & Co <b>", "1", "99.99"],
        ["USD", "all plans", "", "1", "99.99"],
    ]

    # discrepancies: one of each type, the December rows left out, the orphan in
    expected = {("invoice", t) for t in INVOICE_TYPES} | {("payment", t) for t in PAYMENT_TYPES}
    expected |= {("usage", t) for t in USAGE_TYPES}
    found = page.body("discrepancies", "discrepancy-counts")
    assert {(kind, status) for kind, status, _ in found} == expected
    assert all(n == "1" for _, _, n in found)
    findings = page.body("discrepancies", "findings")
    assert len(findings) == 17
    assert "December" not in html and "inv_h" not in html
    orphan = next(r for r in findings if r[4] == "orphan_in_provider")
    assert orphan[:4] == ["invoice", "inv_ghost orphan", "\u2014", "stripe"]
    assert orphan[5] == ORPHAN_DETAIL
    assert ["payment", "inv_b", "cust_inv_b", "stripe", "paid_in_ledger_not_at_provider",
            "paid_in_ledger_not_at_provider on inv_b"] in findings

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
    names = ["finance_invoice_reconciliation", "finance_payment_reconciliation",
             "finance_usage_reconciliation", "finance_receivables_aging"]
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
    csv = (out / "finance_receivables_aging.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("invoice_id,invoice_number,customer_id,provider,currency,amount_due")
    assert len(csv) == 6
    assert any(",1234567.890000000000," in line for line in csv)


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
