"""`billing report`: the month's self-contained finance page and the finance exports.

A warehouse is filled by hand with known rows (two+ currencies, one row per discrepancy type, rows
outside the month that must not show); the golden values below are computed by hand.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from pipelines.warehouse import connect_writer, sql

MONTH = "2026-01"
RECONCILED_AT = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)
SECTION_IDS = ["summary", "revenue", "discrepancies", "sync-health", "aging", "alerts"]
# sections and how many charts each draws for the seeded warehouse (sync: one per provider)
CHARTS = {"revenue": 1, "discrepancies": 1, "sync-health": 2, "aging": 1}

INVOICE_TYPES = ["pending_sync", "missing_in_provider", "orphan_in_provider",
                 "duplicate_in_provider", "currency_mismatch", "amount_mismatch",
                 "line_mismatch", "status_mismatch"]
PAYMENT_TYPES = ["paid_at_provider_open_in_ledger", "paid_in_ledger_not_at_provider",
                 "amount_paid_mismatch", "refunded_not_flagged", "refund_not_at_provider"]
USAGE_TYPES = ["unbilled_late_events", "awaiting_rerating", "quantity_mismatch", "not_invoiced"]
ORPHAN_DETAIL = "Stripe invoice in_9 names inv_ghost <script>alert('x')</script> & no ledger"

# (invoice, plan, currency, total, status, billing month)
INVOICES = [
    ("inv_a", "starter", "EUR", "1000.25", "issued", MONTH),
    ("inv_b", "starter", "EUR", "234.25", "paid", MONTH),
    ("inv_k", "pro", "EUR", "0.50", "overdue", MONTH),
    ("inv_f", "starter", "EUR", "7.00", "voided", MONTH),
    ("inv_c", "pro", "USD", "99.99", "payment_processing.pending", MONTH),
    ("inv_d", "pro", "USD", "500.00", "draft", MONTH),
    ("inv_e", "pro", "USD", "10.00", "issuing.syncing", MONTH),
    ("inv_i", "pro", "USD", "1.00", "draft.sync_failed", MONTH),
    ("inv_j", "pro", "USD", "0.01", "issuing", MONTH),
    ("inv_g", "enterprise", "JPY", "150000", "issued", MONTH),
    ("inv_h", "starter", "EUR", "5000.00", "issued", "2025-12"),  # another month
]


def seed_warehouse(path: Path) -> None:
    """Fill a warehouse with the hand-made rows the golden values below come from."""
    with connect_writer(str(path)) as con:
        con.execute(sql("reconciliation_schema"))  # idempotent
        con.executemany("INSERT INTO billing.plans VALUES (?, ?, ?, 'monthly', NULL, 'test')",
                        [("starter", "Starter", "EUR"), ("pro", "Pro & Co <b>", "USD"),
                         ("enterprise", "Enterprise", "JPY")])
        for invoice_id, plan, currency, total, status, month in INVOICES:
            first = date.fromisoformat(f"{month}-01")
            con.execute("""
                INSERT INTO billing.invoices (invoice_id, invoice_number, customer_id,
                    subscription_id, plan_key, billing_month, boundary, period_start, period_end,
                    currency, subtotal, discount_total, total, status, collection_method,
                    due_date, billing_profile, app, issue_after, issued_at, created_at, rated_at)
                VALUES ($id, NULL, $customer, $sub, $plan, $month, $first, $first - 31, $first,
                        $currency, CAST($total AS DECIMAL(38, 12)), 0,
                        CAST($total AS DECIMAL(38, 12)), $status, 'send_invoice', $first + 30,
                        'stripe_default', 'stripe', $at, NULL, $at, $at)""",
                        {"id": invoice_id, "customer": f"cust_{invoice_id}",
                         "sub": f"sub_{invoice_id}", "plan": plan, "month": month,
                         "first": first, "currency": currency, "total": total,
                         "status": status, "at": RECONCILED_AT})
        # invoice reconciliation: two matches, one row per finding type (the orphan's invoice is
        # unknown to the ledger), and a finding of another month that must not show
        month_invoices = ["inv_a", "inv_b", "inv_c", "inv_d", "inv_e", "inv_g", "inv_i",
                          "inv_j", "inv_k"]
        rows = [("inv_a", "matched", "in sync"), ("inv_b", "matched", "in sync"),
                ("inv_h", "missing_in_provider", "December: not in this report")]
        for i, kind in enumerate(INVOICE_TYPES):
            if kind == "orphan_in_provider":
                rows.append(("inv_ghost", kind, ORPHAN_DETAIL))
            else:
                rows.append((month_invoices[i], kind, f"{kind} found on {month_invoices[i]}"))
        for invoice_id, status, detail in rows:
            con.execute("""
                INSERT INTO finance.invoice_reconciliation (invoice_id, provider, external_id,
                    billing_month, ledger_currency, ledger_total, provider_total, ledger_status,
                    provider_status, match_status, findings, detail, sla_breached,
                    reconciled_at)
                SELECT $id, 'stripe', 'in_' || $id, i.billing_month, i.currency, i.total,
                       i.total, i.status, 'open', $status, [$status], $detail, false, $at
                FROM (SELECT 1) LEFT JOIN billing.invoices i ON i.invoice_id = $id""",
                        {"id": invoice_id, "status": status, "detail": detail,
                         "at": RECONCILED_AT})
        payments = [("inv_b", "matched"), ("inv_h", "amount_paid_mismatch")]
        payments += [(month_invoices[i], kind) for i, kind in enumerate(PAYMENT_TYPES)]
        for invoice_id, status in payments:
            con.execute("""
                INSERT INTO finance.payment_reconciliation (invoice_id, provider, external_id,
                    kind, currency, amount, ledger_amount, ledger_status, provider_status,
                    match_status, detail, reconciled_at)
                VALUES ($id, 'stripe', 'pi_' || $id, 'payment', 'EUR', 10.5, 10.5, 'paid',
                        'succeeded', $status, $status || ' on ' || $id, $at)""",
                        {"id": invoice_id, "status": status, "at": RECONCILED_AT})
        usage = [(MONTH, "inv_a", "matched"), ("2025-12", "inv_h", "quantity_mismatch")]
        usage += [(MONTH, None if kind == "not_invoiced" else "inv_c", kind)
                  for kind in USAGE_TYPES]
        for n, (month, invoice_id, status) in enumerate(usage):
            con.execute("""
                INSERT INTO finance.usage_reconciliation (billing_month, customer_id,
                    subscription_id, meter_key, period_start, period_end, invoice_id,
                    invoice_status, events_accepted, events_rated, quantity_aggregated,
                    quantity_rated, quantity_billed, unbilled_events, match_status, detail,
                    reconciled_at)
                VALUES ($month, 'cust_u', 'sub_u', 'meter_' || $n, DATE '2025-12-01',
                        DATE '2026-01-01', $id, 'issued', 5, 4, 5, 4, 4, 1, $status,
                        $status || ' for meter_' || $n, $at)""",
                        {"month": month, "n": n, "id": invoice_id, "status": status,
                         "at": RECONCILED_AT})
        aging = [("inv_a", "EUR", "1000.25", 5, "0-30"), ("inv_b", "EUR", "234.25", -3, "0-30"),
                 ("inv_c", "USD", "99.99", 40, "31-60"),
                 ("inv_old", "USD", "1234567.89", 120, "90+"),
                 ("inv_g", "JPY", "150000", 70, "61-90")]
        for invoice_id, currency, amount, days, bucket in aging:
            con.execute("""
                INSERT INTO finance.receivables_aging (invoice_id, invoice_number, customer_id,
                    provider, currency, amount_due, status, issued_at, due_date, days_past_due,
                    aging_bucket, reconciled_at)
                VALUES ($id, 'INV-' || $id, 'cust_' || $id, 'stripe', $currency,
                        CAST($amount AS DECIMAL(38, 12)), 'issued', $at, DATE '2026-01-01',
                        $days, $bucket, $at)""",
                        {"id": invoice_id, "currency": currency, "amount": amount, "days": days,
                         "bucket": bucket, "at": RECONCILED_AT})
        # sync health: the window is 2025-12-02 .. 2026-01-31
        sync = [("stripe", "2025-11-01", 7, 1, 1), ("stripe", "2025-12-01", 8, 1, 1),
                ("stripe", "2025-12-02", 40, 2, 5), ("stripe", "2026-01-05", 120, 3, 9),
                ("stripe", "2026-02-01", 9, 1, 1), ("custom_invoicing", "2026-01-10", 12, 1, 0)]
        for provider, day, attempts, failed, limited in sync:
            con.execute("""
                INSERT INTO health.sync_health VALUES ($provider, CAST($day AS DATE), $attempts,
                    $attempts - $failed, $failed, $limited, $limited, 85.5, 420.0, 2.5, 1, $at)""",
                        {"provider": provider, "day": day, "attempts": attempts,
                         "failed": failed, "limited": limited, "at": RECONCILED_AT})
        for day, files in (("2025-12-31", 4), ("2026-01-03", 2), ("2026-02-01", 9)):
            con.execute("""
                INSERT INTO health.pipeline_health VALUES (CAST($day AS DATE), $files, 1000, 990,
                    4, 6, 1, 3, 2, 1, 0, $at)""", {"day": day, "files": files,
                                                    "at": RECONCILED_AT})
        con.executemany("INSERT INTO health.alerts VALUES (?, ?, ?, ?, ?, ?, ?)", [
            ("sla:custom_invoicing:inv_x", "warning", "inv_x waits", "past its SLA",
             RECONCILED_AT - timedelta(days=1), RECONCILED_AT, "custom_invoicing"),
            ("sync_failed:stripe:inv_e", "critical", "Stripe refused inv_e",
             "card_declined & retries exhausted", RECONCILED_AT, RECONCILED_AT, "stripe_sync")])


class PageParser(HTMLParser):
    """Sections of a report page: their ids in order, the <svg> charts each holds and the
    text of each table (by the table's class) as rows of cells."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.svgs: dict[str, int] = {}
        self.tables: dict[tuple[str, str], list[list[str]]] = {}
        self._table: tuple[str, str] | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.sections.append(values.get("id") or "")
        elif tag == "svg" and self.sections:
            self.svgs[self.sections[-1]] = self.svgs.get(self.sections[-1], 0) + 1
        elif tag == "table" and self.sections:
            css = (values.get("class") or "").split()
            self._table = (self.sections[-1], css[-1] if css else "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def body(self, section: str, table: str) -> list[list[str]]:
        """The data rows (header left out) of a section's table."""
        return self.tables[(section, table)][1:]


def parse(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    return parser


@pytest.fixture
def report(billing_env: dict[str, Path], tmp_path: Path,
           capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """The seeded warehouse's report for 2026-01, written by the CLI, and what it printed."""
    from pipelines.cli import main

    seed_warehouse(billing_env["warehouse"])
    out = tmp_path / "out"
    main(["report", "--month", MONTH, "--out", str(out)])
    page = out / f"billing-report-{MONTH}.html"
    return {"out": out, "page": page, "html": page.read_text(encoding="utf-8"),
            "printed": capsys.readouterr().out}


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


def _chromium() -> str:
    """The Chromium to render with: $CHROMIUM, /usr/bin/chromium or `chromium` on PATH.
    Missing: skip, unless BILLING_REQUIRE_CHROMIUM=1 (CI), which fails instead."""
    explicit = os.environ.get("CHROMIUM")
    candidates = [explicit] if explicit else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    reason = (f"CHROMIUM={explicit!r} is not an executable" if explicit
              else "no Chromium found (/usr/bin/chromium, chromium on PATH; or set CHROMIUM)")
    if os.environ.get("BILLING_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"BILLING_REQUIRE_CHROMIUM=1 but {reason}")
    pytest.skip(reason)


def _headless(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_report_renders_in_headless_chromium(report: dict[str, object], tmp_path: Path) -> None:
    binary = _chromium()
    url = Path(str(report["page"])).resolve().as_uri()
    dom = _headless(binary, tmp_path / "profile", "--dump-dom", url).stdout
    page = parse(dom)
    assert page.sections == SECTION_IDS
    for section, charts in CHARTS.items():
        assert page.svgs.get(section) == charts, section
    assert ["EUR", "starter", "Starter", "2", "1,234.50"] in page.body("revenue", "revenue")

    png = tmp_path / "page.png"
    _headless(binary, tmp_path / "profile", f"--screenshot={png}", "--window-size=1280,4000",
              "--hide-scrollbars", url)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 4000)
    assert len(data) > 60_000  # a blank page compresses to a few KB


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
