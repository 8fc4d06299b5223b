"""The sections of the report page, one function per section, each given the month's data.

Summary (totals per currency, reconciliation by match status), revenue by plan, the
corrections of the month's invoices (what, why, by whom, what waits; credit notes and
supplementary invoices), the journal (totals per account and the trial balance, revenue
recognized and deferred revenue per month), the tax report, the discrepancies and their
findings, sync and pipeline health, receivables aging and the open alerts. Currencies are never
added together; each is charted on its own scale.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal

from pipelines.reporting.charts import Bar, BarGroup, Series, bar_chart, line_chart
from pipelines.reporting.formatting import (
    count,
    format_money,
    instant,
    missing_note,
    nothing_to_report,
    number,
    status_badge,
    table,
    text,
)
from pipelines.reporting.report_data import (
    ACCOUNTING_TABLES,
    CORRECTION_TABLES,
    RECONCILIATION_TABLES,
    SYNC_LOOKBACK_DAYS,
    ReportData,
    Row,
    trial_balance,
)

AGING_BUCKETS = ("0-30", "31-60", "61-90", "90+")


def summary_section(data: ReportData) -> str:
    """The month at a glance: totals per currency and reconciliation rows per match status."""
    invoices = sum(r["invoices"] for r in data.invoice_totals)
    reconciled = max((r["reconciled_at"] for r in data.match_counts if r["reconciled_at"]),
                     default=None)
    facts = [("Month", f"{data.month} ({calendar.month_name[data.first_day.month]} "
                       f"{data.first_day.year})"),
             ("Generated at", instant(data.generated_at)),
             ("Reconciled at", instant(reconciled) or "not reconciled yet"),
             ("Invoices", count(invoices))]
    parts = ['<dl class="facts">' + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>"
                                            for k, v in facts) + "</dl>"]
    parts.append("<h3>Totals per currency</h3>")
    if data.invoice_totals:
        parts.append(table(
            ("currency", "invoices", "issued", "issued total", "awaiting issue",
             "awaiting total", "voided"),
            ([text(r["currency"]), count(r["invoices"]), count(r["issued"]),
              format_money(r["issued_total"], r["currency"]), count(r["awaiting_issue"]),
              format_money(r["awaiting_total"], r["currency"]), count(r["voided"])]
             for r in data.invoice_totals), numeric=range(1, 7), css="data totals"))
    else:
        parts.append(nothing_to_report(f"no invoices for {data.month}."))
    parts.append("<h3>Reconciliation by match status</h3>")
    parts.append(missing_note(data, RECONCILIATION_TABLES))
    if data.match_counts:
        parts.append(table(
            ("kind", "match status", "rows"),
            ([text(r["kind"]), status_badge(r["match_status"]), count(r["rows"])]
             for r in data.match_counts), numeric=(2,), css="data match-counts"))
    else:
        parts.append(nothing_to_report(f"no reconciliation rows for {data.month}."))
    return "".join(parts)


def revenue_section(data: ReportData) -> str:
    """Issued revenue per plan, one subtotal and one chart scale per currency."""
    if not data.revenue:
        return nothing_to_report(f"no issued invoices for {data.month}.")
    by_currency: dict[str, list[Row]] = {}
    for row in data.revenue:
        by_currency.setdefault(row["currency"], []).append(row)
    table_rows: list[list[str]] = []
    groups = []
    for currency, rows in by_currency.items():
        for r in rows:
            table_rows.append([text(currency), text(r["plan_key"]), text(r["plan_name"]),
                               count(r["invoices"]), format_money(r["revenue"], currency)])
        subtotal = sum((r["revenue"] for r in rows), Decimal(0))
        table_rows.append([text(currency), "<strong>all plans</strong>", "",
                           count(sum(r["invoices"] for r in rows)),
                           f"<strong>{format_money(subtotal, currency)}</strong>"])
        groups.append(BarGroup(currency, [
            Bar(r["plan_key"], r["revenue"], f"{currency} {format_money(r['revenue'], currency)}")
            for r in rows]))
    return (
        '<p class="note">Issued invoices of the billing month (not draft, draft.*, issuing*, '
        "voided). Currencies are never added together.</p>"
        + table(("currency", "plan", "plan name", "invoices", "revenue"), table_rows,
                 numeric=(3, 4), css="data revenue")
        + bar_chart(f"Revenue by plan, {data.month}", groups,
                    note="Each currency is drawn on its own scale."))


def discrepancies_section(data: ReportData) -> str:
    """Reconciliation rows that do not match: counts per type, a chart, the findings."""
    parts = [missing_note(data, RECONCILIATION_TABLES)]
    counts = [r for r in data.match_counts if r["match_status"] != "matched"]
    if not counts:
        parts.append(nothing_to_report(f"every reconciled invoice, payment and usage period of "
                              f"{data.month} matches."))
        return "".join(parts)
    parts.append(table(("kind", "match status", "rows"),
                        ([text(r["kind"]), status_badge(r["match_status"]), count(r["rows"])]
                         for r in counts), numeric=(2,), css="data discrepancy-counts"))
    parts.append(bar_chart(f"Discrepancies by type, {data.month}", [BarGroup("rows", [
        Bar(f"{r['kind']} \u00b7 {r['match_status']}", r["rows"], count(r["rows"]))
        for r in counts])]))
    total = data.discrepancy_total
    shown = len(data.discrepancies)
    parts.append(f"<h3>Findings ({count(total)})</h3>")
    if shown < total:
        parts.append(f'<p class="note">The first {count(shown)} of {count(total)} are shown; '
                     f"the exports beside this page hold every row.</p>")
    parts.append('<p class="note">Orphans (provider invoices, credit notes or payments the '
                 "ledger does not know) have no billing month and appear in every month's "
                 "report. A credit note row names the credit note.</p>")
    parts.append(table(
        ("kind", "document", "customer", "provider", "status", "detail"),
        ([text(r["kind"]),
          text(r["invoice_id"]) + (' <span class="badge warn">orphan</span>' if r["orphan"]
                                 else ""),
          text(r["customer_id"]), text(r["provider"]), status_badge(r["match_status"]),
          text(r["detail"])] for r in data.discrepancies), wrap=(5,), css="data findings"))
    return "".join(parts)


def _decision_badge(status: str | None) -> str:
    css = {"approved": "ok", "rejected": "bad", "pending_approval": "warn"}.get(status or "", "")
    return f'<span class="badge {css}">{text(status)}</span>'


def _document(row: Row) -> str:
    """The document a correction is on: its kind, number (or id while a draft) and status."""
    kind = row["document_type"].replace("_", " ")
    if not row["document_id"]:
        return text({"pending_approval": f"{kind} once approved", "rejected": "none"}.get(
            row["status"], f"{kind}, not made yet"))
    return (f"{text(kind)} "
            f"<strong>{text(row['document_number'] or row['document_id'])}</strong> "
            f"({text(row['document_status'])})")


def corrections_section(data: ReportData) -> str:
    """What was corrected in the month's invoices, why, by whom; what waits for approval; the
    credit notes and supplementary invoices."""
    parts = [missing_note(data, CORRECTION_TABLES),
             '<p class="note">A billing run that rates an issued invoice of the month differently '
             "records, per line, the delta against what the invoice and its earlier corrections "
             "already bill (covered): decreases go on a credit note, increases on a "
             "supplementary invoice, after approval (automatic within the billing profile's "
             "auto_approve_corrections_up_to, else by a person). The ledger does not record "
             "whether a delta comes from late usage or a price fixed in the catalog: the line and "
             "the move from covered to rated say what changed. Currencies are never added "
             "together.</p>"]
    if data.correction_totals:
        parts.append(table(
            ("currency", "corrections", "approved", "pending", "rejected", "increases approved",
             "decreases approved", "supplementary invoices issued", "credit notes issued"),
            ([text(r["currency"]), count(r["corrections"]), count(r["approved"]),
              count(r["pending"]), count(r["rejected"]),
              format_money(r["increases"], r["currency"]),
              format_money(r["decreases"], r["currency"]),
              format_money(r["supplementary_issued"], r["currency"]),
              format_money(r["credited"], r["currency"])] for r in data.correction_totals),
            numeric=range(1, 9), css="data correction-totals"))
    parts.append(f"<h3>What was corrected ({count(len(data.corrections))})</h3>")
    if data.corrections:
        parts.append(table(
            ("detected", "invoice", "line", "issued", "covered", "rated", "delta", "document",
             "decision", "by", "decided", "reason"),
            ([text(instant(r["detected_at"])),
              text(r["invoice_number"] or r["invoice_id"]),
              text(r["description"]),
              format_money(r["issued_amount"], r["currency"]),
              format_money(r["covered_amount"], r["currency"]),
              format_money(r["rated_amount"], r["currency"]),
              f"{text(r['currency'])} {format_money(r['delta'], r['currency'])}",
              _document(r), _decision_badge(r["status"]), text(r["decided_by"]),
              text(instant(r["decided_at"])), text(r["reason"])]
             for r in data.corrections),
            numeric=range(3, 7), wrap=(2, 7, 11), css="data corrections"))
    else:
        parts.append(nothing_to_report(f"no invoice of {data.month} was corrected."))
    parts.append(f"<h3>Waiting for approval ({count(len(data.pending_corrections))})</h3>")
    if data.pending_corrections:
        parts.append('<p class="note">Every correction waiting for a person, whatever its month. '
                     "Decide with <code>billing corrections approve ID</code> or <code>billing "
                     "corrections reject ID --reason ...</code>.</p>")
        parts.append(table(
            ("correction", "month", "detected", "invoice", "customer", "line", "covered",
             "rated", "delta", "would go on"),
            ([text(r["correction_id"]), text(r["billing_month"]),
              text(instant(r["detected_at"])), text(r["invoice_number"] or r["invoice_id"]),
              text(r["customer_id"]), text(r["description"]),
              format_money(r["covered_amount"], r["currency"]),
              format_money(r["rated_amount"], r["currency"]),
              f"{text(r['currency'])} {format_money(r['delta'], r['currency'])}",
              text(r["document_type"].replace("_", " "))]
             for r in data.pending_corrections),
            numeric=range(6, 9), wrap=(5,), css="data pending-corrections"))
    else:
        parts.append(nothing_to_report("no correction waits for approval."))
    parts.append("<h3>Decisions</h3>")
    if data.correction_history:
        parts.append(table(
            ("when", "correction", "invoice", "from", "to", "by", "reason"),
            ([text(instant(r["changed_at"])), text(r["correction_id"]),
              text(r["invoice_number"] or r["invoice_id"]), text(r["from_status"]),
              _decision_badge(r["to_status"]), text(r["actor"]), text(r["reason"])]
             for r in data.correction_history),
            wrap=(6,), css="data correction-history"))
    else:
        parts.append(nothing_to_report(f"no decision on corrections of {data.month}."))
    parts.append(f"<h3>Credit notes ({count(len(data.credit_notes))})</h3>")
    if data.credit_notes:
        parts.append(table(
            ("credit note", "invoice", "customer", "kind", "reason", "credited", "status",
             "app", "made by", "issued", "reconciliation"),
            ([text(r["credit_note_number"] or r["credit_note_id"]),
              text(r["invoice_number"] or r["invoice_id"]), text(r["customer_id"]),
              text(r["kind"]), text(r["reason"]),
              f"{text(r['currency'])} {format_money(r['total'], r['currency'])}",
              text(r["status"]), text(r["app"]), text(r["created_by"]),
              text(instant(r["issued_at"])), _credit_note_match(data, r)]
             for r in data.credit_notes),
            numeric=(5,), wrap=(4,), css="data credit-notes"))
    else:
        parts.append(nothing_to_report(f"no credit note for the invoices of {data.month}."))
    parts.append(f"<h3>Supplementary invoices ({count(len(data.supplementary_invoices))})</h3>")
    if data.supplementary_invoices:
        parts.append(table(
            ("invoice", "corrects", "customer", "total", "status", "issued"),
            ([text(r["invoice_number"] or r["invoice_id"]),
              text(r["corrects_number"] or r["corrects_invoice_id"]), text(r["customer_id"]),
              f"{text(r['currency'])} {format_money(r['total'], r['currency'])}",
              text(r["status"]), text(instant(r["issued_at"]))]
             for r in data.supplementary_invoices),
            numeric=(3,), css="data supplementary-invoices"))
    else:
        parts.append(nothing_to_report(f"no supplementary invoice for {data.month}."))
    return "".join(parts)


def journal_section(data: ReportData) -> str:
    """The journal per account and currency for the month with the trial balance per currency,
    the revenue recognized per month and the deferred revenue balance per month."""
    parts = [missing_note(data, ACCOUNTING_TABLES),
             '<p class="note">The double-entry journal the accounting system posts '
             "(<code>billing export journal --month " + text(data.month) + "</code>; "
             "docs/accounting.md). Entries are dated by their fact (issue, payment, refund, "
             "write-off, void; a recognition at its month's end) in UTC; a change is a reversal "
             "plus a new entry, dated when the pipeline saw it. Currencies are never added "
             "together.</p>",
             f"<h3>Journal per account, {text(data.month)}</h3>"]
    if data.journal_accounts:
        totals = {t["currency"]: t for t in trial_balance(data.journal_accounts)}
        table_rows: list[list[str]] = []
        for currency, total in totals.items():
            for r in (r for r in data.journal_accounts if r["currency"] == currency):
                table_rows.append([text(currency), text(r["account"]), count(r["lines"]),
                                   format_money(r["debits"], currency),
                                   format_money(r["credits"], currency),
                                   format_money(r["net"], currency),
                                   format_money(r["balance"], currency), ""])
            badge = ('<span class="badge ok">balanced</span>' if total["balanced"]
                     else '<span class="badge bad">does not balance</span>')
            table_rows.append([text(currency), "<strong>trial balance</strong>", "",
                               *(f"<strong>{format_money(total[c], currency)}</strong>"
                                 for c in ("debits", "credits", "net", "balance")), badge])
        parts.append('<p class="note">Debits, credits and net (debit - credit) of the '
                     "entries posted in the month; balance: every entry posted up to the "
                     "month's end. Per currency the trial balance sums to zero.</p>")
        parts.append(table(("currency", "account", "lines", "debits", "credits", "net",
                            "balance at month end", "trial balance"), table_rows,
                           numeric=range(2, 7), css="data trial-balance"))
    else:
        parts.append(nothing_to_report(f"no journal entries posted up to {data.month}."))
    parts.append("<h3>Revenue recognized per month</h3>")
    if data.revenue_recognized:
        parts.append('<p class="note">Net of tax, by the month the service was given (twelve '
                     "months up to the report's): usage and in-arrears fees at issue, in-advance "
                     "fees from deferred revenue by day, credit notes against it.</p>")
        parts.append(table(
            ("month", "currency", "at issue", "from deferred", "credit notes", "recognized",
             "month"),
            ([text(r["month"]), text(r["currency"]),
              format_money(r["at_issue"], r["currency"]),
              format_money(r["from_deferred"], r["currency"]),
              format_money(r["credit_notes"], r["currency"]),
              f"<strong>{format_money(r['recognized'], r['currency'])}</strong>",
              text("over" if r["month_over"] else "in progress")]
             for r in data.revenue_recognized), numeric=range(2, 6),
            css="data revenue-recognized"))
    else:
        parts.append(nothing_to_report(f"no revenue scheduled up to {data.month}."))
    parts.append("<h3>Deferred revenue per month</h3>")
    if data.deferred_revenue:
        parts.append('<p class="note">From the journal (twelve months up to the report month): '
                     "deferred by the month's invoices less credit notes, recognized by its "
                     "revenue recognition entries, and the balance at the month's end.</p>")
        parts.append(table(
            ("month", "currency", "account", "deferred", "recognized", "balance at month end"),
            ([text(r["month"]), text(r["currency"]), text(r["account"]),
              format_money(r["deferred"], r["currency"]),
              format_money(r["recognized"], r["currency"]),
              f"<strong>{format_money(r['balance'], r['currency'])}</strong>"]
             for r in data.deferred_revenue), numeric=range(3, 6),
            css="data deferred-revenue"))
    else:
        parts.append(nothing_to_report(f"no deferred revenue up to {data.month}."))
    return "".join(parts)


def _percent(value: Decimal | None) -> str:
    return "" if value is None else f"{Decimal(value).normalize():f} %"


def tax_section(data: ReportData) -> str:
    """finance.tax_report of the month: per jurisdiction, rate and currency, the taxable amount
    and the tax of issued invoices less credit notes, with a subtotal per currency."""
    parts = [missing_note(data, ("finance.tax_report",))]
    if not data.tax_report:
        parts.append(nothing_to_report(f"no document issued or voided in {data.month}."))
        return "".join(parts)
    parts.append('<p class="note">Documents issued (or voided) in the month, UTC: invoices less '
                 "credit notes; a void is taken back in the month of the void. Jurisdiction and "
                 "rate are the invoice's; taxable is net of tax (docs/tax.md). No rate: a "
                 "customer without address, or an EU reverse charge (0 %).</p>")
    table_rows: list[list[str]] = []
    by_currency: dict[str, list[Row]] = {}
    for row in data.tax_report:
        by_currency.setdefault(row["currency"], []).append(row)
    for currency, rows in by_currency.items():
        for r in rows:
            table_rows.append([text(currency), text(r["country"]), text(r["region"]),
                               text(r["tax_rate_key"]), _percent(r["tax_rate_percent"]),
                               text("inclusive" if r["tax_inclusive"] else "exclusive"),
                               format_money(r["taxable_amount"], currency),
                               format_money(r["tax_amount"], currency),
                               count(r["invoices"]), count(r["credit_notes"])])
        taxable = sum((r["taxable_amount"] for r in rows), Decimal(0))
        tax = sum((r["tax_amount"] for r in rows), Decimal(0))
        table_rows.append([
            text(currency), "<strong>all</strong>", "", "", "", "",
            f"<strong>{format_money(taxable, currency)}</strong>",
            f"<strong>{format_money(tax, currency)}</strong>",
            count(sum(r["invoices"] for r in rows)),
            count(sum(r["credit_notes"] for r in rows))])
    parts.append(table(("currency", "country", "region", "rate", "percent", "kind", "taxable",
                        "tax", "invoices", "credit notes"), table_rows,
                       numeric=range(4, 10), css="data tax-report"))
    return "".join(parts)


def _credit_note_match(data: ReportData, row: Row) -> str:
    """How the credit note came out of the reconciliation with its provider; app none has
    no provider to reconcile with."""
    if row["app"] not in ("stripe", "custom_invoicing"):
        return text("no provider")
    match = data.credit_note_matches.get(row["credit_note_id"])
    return status_badge(match["match_status"]) if match else text("not reconciled yet")


def sync_health_section(data: ReportData) -> str:
    """Provider calls per day (the month and the days before) and the pipeline health."""
    parts = [f'<p class="note">Provider calls per day, {data.sync_first_day.isoformat()} to '
             f"{data.last_day.isoformat()} (the month and the {SYNC_LOOKBACK_DAYS} days "
             "before).</p>", missing_note(data, ("health.sync_health",))]
    if data.sync_health:
        days = [data.sync_first_day + timedelta(days=i)
                for i in range((data.last_day - data.sync_first_day).days + 1)]
        labels = [d.isoformat() for d in days]
        by_provider: dict[str, dict[date, Row]] = {}
        for row in data.sync_health:
            by_provider.setdefault(row["provider"], {})[row["day"]] = row
        for provider, rows in by_provider.items():
            series = [Series(name, [rows[d][column] if d in rows else 0 for d in days], color)
                      for name, column, color in (("attempts", "attempts", "#2f6fad"),
                                                  ("failed", "failed", "#c0392b"),
                                                  ("rate limited (429)", "rate_limited",
                                                   "#e08e0b"))]
            parts.append(f"<h3>{text(provider)}</h3>")
            parts.append(line_chart(f"{provider}: attempts, failed and rate limited per day",
                                    labels, series, marker=SYNC_LOOKBACK_DAYS,
                                    marker_label=f"{data.month} starts"))
        parts.append(table(
            ("provider", "day", "attempts", "succeeded", "failed", "retried", "rate limited",
             "p50 ms", "p95 ms", "oldest pending h", "pending"),
            ([text(r["provider"]), text(r["day"].isoformat()), count(r["attempts"]),
              count(r["succeeded"]), count(r["failed"]), count(r["retried"]),
              count(r["rate_limited"]), number(r["p50_ms"]), number(r["p95_ms"]),
              number(r["oldest_pending_hours"], 1), count(r["invoices_pending"])]
             for r in data.sync_health), numeric=range(2, 11), css="data sync"))
    else:
        parts.append(nothing_to_report("no provider calls in this window."))
    parts.append("<h3>Pipeline health</h3>")
    parts.append(missing_note(data, ("health.pipeline_health",)))
    if data.pipeline_health:
        columns = ("files", "received", "accepted", "duplicates", "rejected", "conflicts",
                   "late_events", "stuck_invoices", "failed_deliveries", "payment_errors")
        parts.append(table(
            ("day", *(c.replace("_", " ") for c in columns)),
            ([text(r["day"].isoformat()), *(count(r[c]) for c in columns)]
             for r in data.pipeline_health), numeric=range(1, 11), css="data pipeline"))
    else:
        parts.append(nothing_to_report(f"no pipeline health rows for {data.month}."))
    return "".join(parts)


def aging_section(data: ReportData) -> str:
    """What is owed, per currency and days past due."""
    parts = [missing_note(data, ("finance.receivables_aging",))]
    if not data.aging:
        parts.append(nothing_to_report("no open receivables."))
        return "".join(parts)
    cells: dict[str, dict[str, Row]] = {}
    for row in data.aging:
        cells.setdefault(row["currency"], {})[row["aging_bucket"]] = row
    buckets = list(AGING_BUCKETS) + sorted({r["aging_bucket"] for r in data.aging}
                                           - set(AGING_BUCKETS))
    reconciled = max((r["reconciled_at"] for r in data.aging), default=None)
    table_rows = []
    groups = []
    for currency, by_bucket in cells.items():
        row = [text(currency)]
        for bucket in buckets:
            cell = by_bucket.get(bucket)
            row.append(format_money(cell["amount_due"], currency) if cell else "")
        total = sum((c["amount_due"] for c in by_bucket.values()), Decimal(0))
        row.append(f"<strong>{format_money(total, currency)}</strong>")
        row.append(count(sum(c["invoices"] for c in by_bucket.values())))
        table_rows.append(row)
        groups.append(BarGroup(currency, [
            Bar(f"{bucket} days", by_bucket[bucket]["amount_due"] if bucket in by_bucket else 0,
                f"{currency} {format_money(by_bucket[bucket]['amount_due'], currency)}"
                if bucket in by_bucket else "\u2014") for bucket in buckets]))
    columns = ["currency", *(f"{bucket} days" for bucket in buckets), "total due", "invoices"]
    return "".join(parts) + (
        f'<p class="note">Amounts due as of {text(instant(reconciled))}, by days past due '
        "(0-30 includes invoices not yet due).</p>"
        + table(columns, table_rows, numeric=range(1, len(columns)), css="data aging")
        + bar_chart("Receivables by aging bucket", groups,
                    note="Each currency is drawn on its own scale."))


def alerts_section(data: ReportData) -> str:
    """The alerts open now, whatever month they started in."""
    parts = [missing_note(data, ("health.alerts",))]
    if not data.alerts:
        parts.append(nothing_to_report("no open alerts."))
        return "".join(parts)
    parts.append(table(
        ("severity", "alert", "subject", "detail", "first seen", "last seen", "source"),
        ([f'<span class="badge {text(r["severity"])}">{text(r["severity"])}</span>',
          text(r["alert_key"]), text(r["subject"]), text(r["detail"]),
          text(instant(r["first_seen"])), text(instant(r["last_seen"])), text(r.get("source"))]
         for r in data.alerts),
        wrap=(2, 3), css="data alerts"))
    return "".join(parts)
