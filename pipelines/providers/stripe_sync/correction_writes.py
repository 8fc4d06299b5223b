"""What the corrections sync records in the warehouse: credit notes started, issued (our gap-free
CN-YYYYMM-NNNNN number beside Stripe's) or failed with an alert; invoices whose void Stripe
confirmed, or whose void it refused; credit notes voided at Stripe.

Callers hold the warehouse writer and run these inside their own transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import duckdb
import polars as pl

from pipelines.alerts import Alert, raise_alerts, resolve_alerts
from pipelines.invoicing.corrections import issue_credit_notes, withdraw_corrections
from pipelines.providers.stripe_sync.correction_issuer import CreditNoteResult
from pipelines.warehouse import run_sql

ACTOR = "stripe_sync"
SOURCE = "stripe_sync"


def credit_note_alert_key(credit_note_id: str) -> str:
    return f"stripe_sync_failed:{credit_note_id}"


def void_alert_key(invoice_id: str) -> str:
    return f"stripe_void_failed:{invoice_id}"


def mark_credit_notes_started(con: duckdb.DuckDBPyConnection, credit_note_ids: Sequence[str],
                              *, now: datetime) -> None:
    """Credit notes about to be sent to Stripe: from now on a run looks for them at Stripe
    before creating (their first call may have reached Stripe without an answer)."""
    con.execute("""
        UPDATE billing.credit_notes SET sync_started_at = coalesce(sync_started_at, $now)
        WHERE list_contains($ids, credit_note_id)""",
                {"now": now, "ids": list(credit_note_ids)}).fetchall()


def mark_credit_notes_issued(con: duckdb.DuckDBPyConnection,
                             results: Sequence[CreditNoteResult], *, now: datetime) -> None:
    """Credit notes Stripe holds: numbered and issued (status history by the Stripe sync), with
    Stripe's number; their failure alerts close."""
    if not results:
        return
    issue_credit_notes(con, [r.credit_note_id for r in results], now=now,
                       cause="issued at Stripe", actor=ACTOR)
    frame = pl.DataFrame([{"credit_note_id": r.credit_note_id, "number": r.number}
                          for r in results],
                         schema={"credit_note_id": pl.String, "number": pl.String})
    con.register("stripe_credit_notes_issued_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/stripe_credit_notes_issued")
    finally:
        con.unregister("stripe_credit_notes_issued_frame")
    resolve_alerts(con, [credit_note_alert_key(r.credit_note_id) for r in results], now=now)


def mark_credit_notes_failed(con: duckdb.DuckDBPyConnection, errors: Mapping[str, str], *,
                             now: datetime) -> None:
    """Credit notes whose sync failed: they stay draft (the next run retries them), with the
    error and an alert each."""
    if not errors:
        return
    for credit_note_id, error in errors.items():
        con.execute("UPDATE billing.credit_notes SET sync_error = $error "
                    "WHERE credit_note_id = $id", {"error": error, "id": credit_note_id}
                    ).fetchall()
    raise_alerts(con, [Alert(credit_note_alert_key(cid), "warning",
                             f"Stripe sync failed for credit note {cid}", error, SOURCE)
                       for cid, error in errors.items()], now=now)


def mark_voids_failed(con: duckdb.DuckDBPyConnection, errors: Mapping[str, str], *,
                      now: datetime) -> None:
    """Voided invoices whose Stripe invoice could not be voided: an alert each (retried by the
    next run)."""
    raise_alerts(con, [Alert(void_alert_key(iid), "warning",
                             f"Stripe void failed for invoice {iid}", error, SOURCE)
                       for iid, error in errors.items()], now=now)


def resolve_void_alerts(con: duckdb.DuckDBPyConnection, invoice_ids: Sequence[str], *,
                        now: datetime) -> None:
    resolve_alerts(con, [void_alert_key(iid) for iid in invoice_ids], now=now)


def void_credit_notes(con: duckdb.DuckDBPyConnection, causes: Mapping[str, str], *,
                      actor: str, now: datetime) -> None:
    """Issued credit notes voided at the provider: `voided`, with history (`causes`: credit note
    id -> why). The corrections they carried are withdrawn (the next billing run proposes their
    deltas again), with what they put on the customer's credit balance."""
    if not causes:
        return
    frame = pl.DataFrame([{"credit_note_id": cid, "cause": cause}
                          for cid, cause in causes.items()],
                         schema={"credit_note_id": pl.String, "cause": pl.String})
    con.register("credit_notes_voided_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/credit_notes_voided", {"now": now, "actor": actor})
    finally:
        con.unregister("credit_notes_voided_frame")
    withdraw_corrections(con, now=now)
