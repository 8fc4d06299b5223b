"""A finance report over a warehouse filled by hand with known rows (two+ currencies, one row
per discrepancy type, rows outside the month that must not show), and a reader of the page's
sections, charts and tables. The golden values of the report tests come from these rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines.warehouse import connect_writer, sql

MONTH = "2026-01"
RECONCILED_AT = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)
SECTION_IDS = ["summary", "revenue", "corrections", "journal", "tax", "discrepancies",
               "sync-health", "aging", "alerts"]
# sections and how many charts each draws for the seeded warehouse (sync: one per provider)
CHARTS = {"revenue": 1, "discrepancies": 1, "sync-health": 2, "aging": 1}

INVOICE_TYPES = ["pending_sync", "missing_in_provider", "orphan_in_provider",
                 "duplicate_in_provider", "currency_mismatch", "amount_mismatch",
                 "line_mismatch", "status_mismatch"]
PAYMENT_TYPES = ["paid_at_provider_open_in_ledger", "paid_in_ledger_not_at_provider",
                 "amount_paid_mismatch", "refunded_not_flagged", "refund_not_at_provider"]
CREDIT_NOTE_TYPES = ["amount_mismatch", "orphan_in_provider"]
USAGE_TYPES = ["unbilled_late_events", "awaiting_rerating", "quantity_mismatch", "not_invoiced"]
REJECTION_REASON = "goodwill <b>promised</b>"
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
        seed_corrections(con)
        seed_accounting(con)
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


# (correction, invoice, billing month, currency, line, issued, covered, rated, document type,
#  document, status, decided by, reason, hours after RECONCILED_AT - 2 days it was detected)
CORRECTIONS = [
    ("corr_a", "inv_a", MONTH, "EUR", "API calls", "100.00", "100.00", "90.00", "credit_note",
     "cn_a", "approved", "auto_approve", None, 1),
    ("corr_d", "inv_b", MONTH, "EUR", "Storage", "20.00", "20.00", "24.00",
     "supplementary_invoice", None, "rejected", "finance:bob", REJECTION_REASON, 2),
    ("corr_c", "inv_g", MONTH, "JPY", "API calls", "150000", "150000", "151000",
     "supplementary_invoice", None, "pending_approval", None, None, 3),
    ("corr_b", "inv_c", MONTH, "USD", "API calls", "50.00", "50.00", "55.50",
     "supplementary_invoice", "inv_c_s", "approved", "finance:ana", None, 4),
    # another month's correction waiting for approval: listed as pending, not as the month's
    ("corr_nov", "inv_nov", "2025-11", "USD", "Exports", "5.00", "5.00", "10.00",
     "supplementary_invoice", None, "pending_approval", None, None, 0),
]
# (credit note, number, invoice, billing month, currency, total, status, kind, reason)
CREDIT_NOTES = [
    ("cn_a", "CN-202601-00001", "inv_a", MONTH, "EUR", "10.00", "issued", "correction",
     "correction"),
    ("cn_b", "CN-202601-00002", "inv_k", MONTH, "EUR", "0.20", "issued", "manual",
     "goodwill gesture"),
    ("cn_dec", "CN-202512-00001", "inv_h", "2025-12", "EUR", "50.00", "issued", "manual",
     "another month"),
]


def seed_corrections(con) -> None:
    """Corrections of the month (one per decision), a pending one of another month, their
    history, the credit notes and the supplementary invoice they made, and the credit notes'
    reconciliation (matched, an amount mismatch, an orphan, and another month's finding)."""
    detected = RECONCILED_AT - timedelta(days=2)
    for (correction_id, invoice_id, month, currency, line, issued, covered, rated, kind,
         document, status, decided_by, reason, hours) in CORRECTIONS:
        at = detected + timedelta(hours=hours)
        con.execute("""
            INSERT INTO billing.corrections BY NAME
            SELECT $id AS correction_id, $invoice AS invoice_id, 'line_' || $id AS line_id,
                   'cust_' || $invoice AS customer_id, $month AS billing_month,
                   $currency AS currency, $line AS description,
                   CAST($issued AS DECIMAL(38, 12)) AS issued_amount,
                   CAST($covered AS DECIMAL(38, 12)) AS covered_amount,
                   CAST($rated AS DECIMAL(38, 12)) AS rated_amount,
                   CAST($rated AS DECIMAL(38, 12)) - CAST($covered AS DECIMAL(38, 12)) AS delta,
                   0 AS revision, $kind AS document_type, $document AS document_id,
                   $status AS status, $reason AS reason, $decided_by AS decided_by,
                   CASE WHEN $decided_by IS NOT NULL THEN $at + INTERVAL 30 MINUTE END
                       AS decided_at,
                   $at AS detected_at, 'run_1' AS run_id, 'usage' AS line_type""",
                    {"id": correction_id, "invoice": invoice_id, "month": month,
                     "currency": currency, "line": line, "issued": issued, "covered": covered,
                     "rated": rated, "kind": kind, "document": document, "status": status,
                     "reason": reason, "decided_by": decided_by, "at": at})
        con.execute("INSERT INTO billing.correction_history VALUES "
                    "($id, NULL, 'pending_approval', $at, 'billing_run', 're-rating differs')",
                    {"id": correction_id, "at": at})
        if decided_by:
            con.execute("INSERT INTO billing.correction_history VALUES "
                        "($id, 'pending_approval', $status, $at + INTERVAL 30 MINUTE, $actor, "
                        "$reason)", {"id": correction_id, "status": status, "at": at,
                                     "actor": decided_by, "reason": reason})
    for (credit_note_id, number, invoice_id, month, currency, total, status, kind,
         reason) in CREDIT_NOTES:
        con.execute("""
            INSERT INTO billing.credit_notes BY NAME
            SELECT $id AS credit_note_id, $number AS credit_note_number,
                   $invoice AS invoice_id, 'cust_' || $invoice AS customer_id,
                   $month AS billing_month, $currency AS currency,
                   CAST($total AS DECIMAL(38, 12)) AS total, $status AS status,
                   $reason AS reason, $kind AS kind, 'stripe_default' AS billing_profile,
                   'stripe' AS app, $at AS issue_after, $at AS created_at,
                   CASE $kind WHEN 'manual' THEN 'finance:ana' ELSE 'billing_run' END
                       AS created_by,
                   $at AS issued_at, $at AS status_changed_at""",
                    {"id": credit_note_id, "number": number, "invoice": invoice_id,
                     "month": month, "currency": currency, "total": total, "status": status,
                     "kind": kind, "reason": reason, "at": RECONCILED_AT - timedelta(days=1)})
    con.execute("""
        INSERT INTO billing.invoices BY NAME
        SELECT 'inv_c_s' AS invoice_id, 'INV-202601-00099' AS invoice_number, customer_id,
               subscription_id, plan_key, billing_month, boundary, period_start, period_end,
               currency, 5.50 AS subtotal, 0 AS discount_total, 5.50 AS total,
               'issued' AS status, collection_method, due_date, billing_profile, app,
               issue_after, $at AS issued_at, $at AS created_at, $at AS rated_at,
               'inv_c' AS corrects_invoice_id
        FROM billing.invoices WHERE invoice_id = 'inv_c'""", {"at": RECONCILED_AT})
    for credit_note_id, external_id, status, detail in (
            ("cn_a", "cn_s_a", "matched", "as in the ledger"),
            ("cn_b", "cn_s_b", "amount_mismatch", "credited 0.20 EUR in the ledger, 0.30 EUR "
                                                  "at stripe"),
            ("cn_ghost", "cn_s_ghost", "orphan_in_provider", "stripe credit note cn_s_ghost "
                                                             "claims credit note cn_ghost"),
            ("cn_dec", "cn_s_dec", "missing_in_provider", "December: not in this report")):
        con.execute("""
            INSERT INTO finance.credit_note_reconciliation (credit_note_id, provider,
                external_id, invoice_id, match_status, findings, detail, sla_breached,
                reconciled_at)
            SELECT $id, 'stripe', $external, n.invoice_id, $status,
                   CASE WHEN $status = 'matched' THEN []::VARCHAR[] ELSE [$status] END,
                   $detail, false, $at
            FROM (SELECT 1) LEFT JOIN billing.credit_notes n ON n.credit_note_id = $id""",
                    {"id": credit_note_id, "external": external_id, "status": status,
                     "detail": detail, "at": RECONCILED_AT})


# Journal entries: (entry, posted at, source type, currency, [(account, debit, credit)]).
# inv_h (December) defers a 100.00 EUR fee of 2025-12-15 .. 2026-03-15 (90 days) with 19.00 tax;
# its recognition: December round(100 x 17/90) = 18.89, January round(100 x 48/90) - 18.89 =
# 53.33 - 18.89 = 34.44. January: inv_a issued (1,000.25 at issue), inv_b paid (234.25), the
# USD inv_c issued (99.99); February's payment must not count in January.
AR, CASH, TAX, DEFERRED, REVENUE = ("1200 Accounts receivable", "1110 Stripe clearing",
                                    "2200 Sales tax payable", "2400 Deferred revenue",
                                    "4000 Revenue")
JOURNAL = [
    ("je_h", "2025-12-15 10:00:00+00", "invoice", "EUR",
     [(AR, "119.00", "0"), (DEFERRED, "0", "100.00"), (TAX, "0", "19.00")]),
    ("je_h_dec", "2025-12-31 23:59:59+00", "revenue_recognition", "EUR",
     [(DEFERRED, "18.89", "0"), (REVENUE, "0", "18.89")]),
    ("je_a", "2026-01-10 09:00:00+00", "invoice", "EUR", [(AR, "1000.25", "0"),
                                                         (REVENUE, "0", "1000.25")]),
    ("je_b_paid", "2026-01-20 12:00:00+00", "payment", "EUR", [(CASH, "234.25", "0"),
                                                               (AR, "0", "234.25")]),
    ("je_h_jan", "2026-01-31 23:59:59+00", "revenue_recognition", "EUR",
     [(DEFERRED, "34.44", "0"), (REVENUE, "0", "34.44")]),
    ("je_c", "2026-01-05 08:00:00+00", "invoice", "USD", [(AR, "99.99", "0"),
                                                         (REVENUE, "0", "99.99")]),
    ("je_a_paid", "2026-02-03 08:00:00+00", "payment", "EUR", [(CASH, "1000.25", "0"),
                                                               (AR, "0", "1000.25")]),
]
# Revenue schedule: (line, document type, currency, basis, month, amount, recognized)
SCHEDULE = [
    ("line_h1", "invoice", "EUR", "deferred", "2025-12", "18.89", True),
    ("line_h1", "invoice", "EUR", "deferred", "2026-01", "34.44", True),
    ("line_h1", "invoice", "EUR", "deferred", "2026-02", "31.11", False),
    ("line_h1", "invoice", "EUR", "deferred", "2026-03", "15.56", False),
    ("line_a1", "invoice", "EUR", "at_issue", "2025-12", "1000.25", True),
    ("cnl_a1", "credit_note", "EUR", "at_issue", "2026-01", "-10.00", True),
    ("line_c1", "invoice", "USD", "at_issue", "2025-12", "99.99", True),
]
# finance.tax_report: (period, country, region, rate, percent, currency, taxable, tax,
# invoices, credit notes); December's row must not show in January's report
TAX_REPORT = [
    ("2026-01", "DE", None, "de_vat", "19", "EUR", "990.25", "188.15", 2, 1),
    ("2026-01", "FR", None, None, None, "EUR", "100.00", "0", 1, 0),
    ("2026-01", "US", "CA", "us_ca_sales", "7.25", "USD", "99.99", "7.25", 1, 0),
    ("2025-12", "DE", None, "de_vat", "19", "EUR", "5000.00", "950.00", 1, 0),
]


def seed_accounting(con) -> None:
    """The chart's default accounts, the journal, the revenue schedule and the tax report."""
    con.execute("DELETE FROM billing.accounts")
    con.executemany("INSERT INTO billing.accounts VALUES (?, NULL, NULL, ?, ?, 'test')",
                    [("receivable", None, AR), ("cash", "stripe", CASH),
                     ("tax_payable", None, TAX), ("deferred_revenue", None, DEFERRED),
                     ("revenue", None, REVENUE)])
    for entry_id, posted_at, source_type, currency, lines in JOURNAL:
        con.execute("""
            INSERT INTO finance.journal_entries VALUES ($id, $at::TIMESTAMPTZ, $type, $id, 0,
                'posting', NULL, $currency, 'digest', $type, NULL, NULL, $at::TIMESTAMPTZ,
                'run_1')""", {"id": entry_id, "at": posted_at, "type": source_type,
                              "currency": currency})
        for number, (account, debit, credit) in enumerate(lines, start=1):
            con.execute("""
                INSERT INTO finance.journal_lines VALUES ($id, $n, $account,
                    $debit::DECIMAL(38, 12), $credit::DECIMAL(38, 12), 'cust', $currency)""",
                        {"id": entry_id, "n": number, "account": account, "debit": debit,
                         "credit": credit, "currency": currency})
    for line, kind, currency, basis, month, amount, recognized in SCHEDULE:
        con.execute("""
            INSERT INTO finance.revenue_schedule VALUES ($kind, 'doc_' || $line, $line, 'cust',
                $currency, $account, $basis, DATE '2025-12-15', DATE '2026-03-15', $month, 1,
                $amount::DECIMAL(38, 12), 0, $recognized, $at)""",
                    {"kind": kind, "line": line, "currency": currency,
                     "account": REVENUE, "basis": basis, "month": month, "amount": amount,
                     "recognized": recognized, "at": RECONCILED_AT})
    for (period, country, region, rate, percent, currency, taxable, tax, invoices,
         credit_notes) in TAX_REPORT:
        con.execute("""
            INSERT INTO finance.tax_report VALUES ($period, $country, $region, $rate,
                $percent::DECIMAL(38, 12), false, $currency, $taxable::DECIMAL(38, 12),
                $tax::DECIMAL(38, 12), $invoices, $credit_notes, $at)""",
                    {"period": period, "country": country, "region": region, "rate": rate,
                     "percent": percent, "currency": currency, "taxable": taxable, "tax": tax,
                     "invoices": invoices, "credit_notes": credit_notes,
                     "at": RECONCILED_AT})


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
