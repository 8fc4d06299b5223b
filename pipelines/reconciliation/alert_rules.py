"""Alerts from reconciliation and health: each open discrepancy or unhealthy condition is one
open alert in health.alerts, refreshed while it lasts and closed when it is gone.

Keys (all owned here; others' alerts are left alone):
- ``reconciliation:invoice:<provider>:<invoice or provider invoice>`` a ledger invoice that does
  not match its provider, or an orphan (an invoice still being handed over is not one: the sync
  and custom invoicing SLA alerts cover those, per invoice);
- ``reconciliation:credit_note:<provider>:<credit note or provider credit note>`` a ledger
  credit note that does not match its provider (missing, duplicated, another amount or invoice,
  voided on one side only), or a provider credit note the ledger does not know (orphan); one
  still being handed over is not one;
- ``reconciliation:no_snapshot:<provider>`` invoices past their SLA that cannot be reconciled
  because the provider has never reported (no Stripe snapshot, no invoice statement);
- ``reconciliation:payment:<provider>:<payment|refund>:<invoice>`` a payment or refund that
  does not match;
- ``reconciliation:usage:<subscription>:<meter>:<period start>`` usage not billed as measured
  (late events no correction covers yet, or one waiting for approval; not the ones an approved
  correction's document is about to bill, nor those a person rejected, nor a voided invoice's);
- ``health:rate_limited:<provider>`` the provider answered 429 on the reconciliation day;
- ``health:ingestion_rejects`` rejected or conflicting event lines nobody has resolved;
- ``health:stuck_invoices`` invoices in a syncing or sync_failed state past their SLA;
- ``health:payment_errors`` invoices whose payment failed and that are still in that state;
- ``health:job_failed:<job>`` the latest finished run of a scheduled job failed (Dagster's run
  history, read by the reconciliation run and passed in as `failed_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.alerts import Alert, Severity, open_alert_keys, raise_alerts, resolve_alerts

SOURCE = "reconciliation"
PREFIXES = ("reconciliation:", "health:")
CRITICAL = {"missing_in_provider", "orphan_in_provider", "duplicate_in_provider",
            "amount_mismatch", "currency_mismatch", "invoice_mismatch", "amount_paid_mismatch",
            "refund_amount_mismatch"}
USAGE_ALERTED = ("unbilled_late_events", "awaiting_approval", "quantity_mismatch",
                 "not_invoiced")
"""Usage match statuses that call for someone (a re-run, a decision, a look); awaiting_rerating
and awaiting_correction clear by themselves, correction_rejected was someone's decision."""


@dataclass(frozen=True)
class FailedRun:
    """The latest finished run of a job, when it failed."""

    job_name: str
    run_id: str
    ended_at: datetime | None
    message: str


def _severity(match_status: str) -> Severity:
    return "critical" if match_status in CRITICAL else "warning"


def current_alerts(con: duckdb.DuckDBPyConnection, *, now: datetime,
                   failed_runs: Sequence[FailedRun] = ()) -> list[Alert]:
    """The alerts the reconciliation and health tables (and failed job runs) call for now."""
    alerts: list[Alert] = [
        Alert(f"health:job_failed:{run.job_name}", "critical", f"{run.job_name} run failed",
              f"run {run.run_id} failed"
              + (f" at {run.ended_at.isoformat(timespec='seconds')}" if run.ended_at else "")
              + f": {run.message}", SOURCE)
        for run in failed_runs]
    for provider, invoice_id, external_id, status, detail in con.execute("""
            SELECT provider, invoice_id, external_id, match_status, detail
            FROM finance.invoice_reconciliation
            WHERE match_status NOT IN ('matched', 'pending_sync')
            ORDER BY ALL""").fetchall():
        subject_id = invoice_id if status != "orphan_in_provider" else external_id
        alerts.append(Alert(
            f"reconciliation:invoice:{provider}:{subject_id}", _severity(status),
            f"{status.replace('_', ' ')}: {subject_id} ({provider})", detail, SOURCE))
    for provider, credit_note_id, external_id, status, detail in con.execute("""
            SELECT provider, credit_note_id, external_id, match_status, detail
            FROM finance.credit_note_reconciliation
            WHERE match_status NOT IN ('matched', 'pending_sync')
            ORDER BY ALL""").fetchall():
        subject_id = credit_note_id if status != "orphan_in_provider" else external_id
        alerts.append(Alert(
            f"reconciliation:credit_note:{provider}:{subject_id}", _severity(status),
            f"{status.replace('_', ' ')}: credit note {subject_id} ({provider})", detail,
            SOURCE))
    for provider, waiting in con.execute("""
            SELECT provider, count(*) FROM finance.invoice_reconciliation
            WHERE match_status = 'pending_sync' AND snapshot_at IS NULL AND sla_breached
            GROUP BY provider ORDER BY provider""").fetchall():
        how = ("send invoice statements (POST /api/v1/apps/custom-invoicing/statement)"
               if provider == "custom_invoicing" else "let the sync refresh its snapshot")
        alerts.append(Alert(
            f"reconciliation:no_snapshot:{provider}", "warning",
            f"{provider} has never reported its invoices",
            f"{waiting} invoice(s) past their SLA cannot be reconciled with {provider}: "
            f"{how}", SOURCE))
    for provider, kind, invoice_id, status, detail in con.execute("""
            SELECT provider, kind, invoice_id, match_status, detail
            FROM finance.payment_reconciliation WHERE match_status <> 'matched'
            ORDER BY ALL""").fetchall():
        alerts.append(Alert(
            f"reconciliation:payment:{provider}:{kind}:{invoice_id}", _severity(status),
            f"{status.replace('_', ' ')}: {invoice_id} ({provider})", detail, SOURCE))
    for subscription_id, meter_key, period_start, status, detail in con.execute("""
            SELECT subscription_id, meter_key, period_start, match_status, detail
            FROM finance.usage_reconciliation
            WHERE list_contains($alerted, match_status)
              AND NOT (match_status = 'not_invoiced' AND invoice_status IS NOT DISTINCT FROM
                       'voided')
            ORDER BY ALL""", {"alerted": list(USAGE_ALERTED)}).fetchall():
        alerts.append(Alert(
            f"reconciliation:usage:{subscription_id}:{meter_key}:{period_start}", "warning",
            f"{status.replace('_', ' ')}: {subscription_id} {meter_key} from {period_start}",
            detail, SOURCE))
    for provider, limited, attempts in con.execute("""
            SELECT provider, rate_limited, attempts FROM health.sync_health
            WHERE day = CAST($now AS DATE) AND rate_limited > 0 ORDER BY provider""",
            {"now": now}).fetchall():
        alerts.append(Alert(
            f"health:rate_limited:{provider}", "warning", f"{provider} rate limit reached",
            f"{limited} of {attempts} calls today were answered 429 (retried within the "
            f"limit); lower the sync's request rate if this persists", SOURCE))
    rejects, conflicts, files = con.execute("""
        SELECT count(*), count(*) FILTER (WHERE reason = 'conflict'), count(DISTINCT file_id)
        FROM raw.rejected_events WHERE resolved_at IS NULL""").fetchall()[0]
    if rejects:
        alerts.append(Alert(
            "health:ingestion_rejects", "warning", f"{rejects} event line(s) rejected",
            f"{rejects} rejected line(s), {conflicts} of them conflicts, in {files} file(s) "
            f"wait in raw.rejected_events (fix the customers or the lines, then "
            f"`billing reprocess-rejected`)",
            SOURCE))
    stuck = con.execute("""
        SELECT stuck_invoices FROM health.pipeline_health WHERE day = CAST($now AS DATE)""",
        {"now": now}).fetchall()
    if stuck and stuck[0][0]:
        alerts.append(Alert(
            "health:stuck_invoices", "critical", f"{stuck[0][0]} invoice(s) stuck syncing",
            f"{stuck[0][0]} invoice(s) in a syncing or sync_failed state longer than their "
            f"billing profile's SLA: see finance.invoice_reconciliation (pending_sync)", SOURCE))
    failed = con.execute("""
        SELECT count(*), string_agg(invoice_id, ', ' ORDER BY invoice_id)
        FROM billing.invoices WHERE status = 'payment_processing.failed'""").fetchall()[0]
    if failed[0]:
        alerts.append(Alert(
            "health:payment_errors", "warning", f"{failed[0]} payment(s) failed",
            f"invoices whose payment failed and is not yet retried or settled: {failed[1]}",
            SOURCE))
    return alerts


def refresh_alerts(con: duckdb.DuckDBPyConnection, *, now: datetime,
                   failed_runs: Sequence[FailedRun] = ()) -> tuple[int, int]:
    """Open the alerts conditions call for, close this module's alerts whose condition is gone;
    returns (opened, closed)."""
    alerts = current_alerts(con, now=now, failed_runs=failed_runs)
    wanted = {alert.key for alert in alerts}
    opened = raise_alerts(con, alerts, now=now)
    stale = {key for prefix in PREFIXES for key in open_alert_keys(con, prefix)} - wanted
    closed = resolve_alerts(con, stale, now=now)
    return opened, closed
