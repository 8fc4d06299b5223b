"""Moving custom invoicing invoices on, run by the sync job, and their SLA alerts.

- An invoice in `issuing` goes to `issuing.syncing` when its profile has the issuing hook (an
  `invoice.issuing_sync_requested` notification goes out from the status history), else straight
  on to `issued` and `payment_processing.pending`.
- Credit notes of custom invoicing profiles take the same hooks (`credit_notes`): a draft whose
  grace period is over and whose invoice is issued goes to its draft or issuing sync, or is
  issued.
- An invoice (or credit note) that waits in a syncing state longer than its profile's
  `sync_sla`, or an invoice in payment processing past its due date plus that SLA without a
  payment status, raises an alert; the alert closes when the document moves on.

The sync job then publishes the invoices and credit notes to the integration API
(`api_publication`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.alerts import Alert, open_alert_keys, raise_alerts, resolve_alerts
from pipelines.custom_invoicing.credit_notes import CreditNoteProgress, advance_credit_notes
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.warehouse import sql

ACTOR = "custom_invoicing"
SLA_ALERT = "custom_invoicing_sla:"


@dataclass(frozen=True)
class InvoiceProgress:
    """What one pass of `advance_invoices` did."""

    sync_requested: int      # issuing -> issuing.syncing (hook on)
    issued: int              # issuing -> issued -> payment_processing.pending (hook off)
    waiting: int             # invoices waiting for the integration
    alerts_opened: int
    alerts_closed: int
    credit_notes: CreditNoteProgress   # the same pass over credit notes


def advance_invoices(con: duckdb.DuckDBPyConnection, *, now: datetime) -> InvoiceProgress:
    """Move custom invoicing invoices on and refresh the SLA alerts, in the caller's
    transaction."""
    due = con.execute(sql("custom_invoicing/invoices_to_advance")).fetchall()
    changes = [StatusChange(invoice_id, to_status,
                            "issuing sync requested" if to_status == "issuing.syncing"
                            else "issued (no issuing hook)", ACTOR)
               for invoice_id, to_status in due]
    outcomes = apply_status_changes(con, changes, now=now)
    requested = sum(o.outcome == "applied" and o.change.to_status == "issuing.syncing"
                    for o in outcomes)
    issued = sum(o.outcome == "applied" and o.change.to_status != "issuing.syncing"
                 for o in outcomes)
    credit_notes = advance_credit_notes(con, now=now)
    late = con.execute(sql("custom_invoicing/invoices_past_sla"), {"now": now}).fetchall()
    waiting = con.execute("""
        SELECT count(*) FROM billing.invoices
        WHERE app = 'custom_invoicing' AND status IN ('draft.syncing', 'issuing.syncing')
        """).fetchall()[0][0]
    alerts = [Alert(key=f"{SLA_ALERT}{document_id}", severity="warning",
                    subject=f"{document} {document_id} ({customer_id}) waits for the integration",
                    detail=f"{status} since {since.isoformat()}: {what}, past the "
                           f"{sla_hours:g} h SLA of billing profile {profile}",
                    source=ACTOR)
              for document_id, customer_id, status, since, what, sla_hours, profile, document
              in late]
    opened = raise_alerts(con, alerts, now=now)
    stale = open_alert_keys(con, SLA_ALERT) - {a.key for a in alerts}
    closed = resolve_alerts(con, stale, now=now)
    return InvoiceProgress(sync_requested=requested, issued=issued, waiting=waiting,
                           alerts_opened=opened, alerts_closed=closed,
                           credit_notes=credit_notes)
