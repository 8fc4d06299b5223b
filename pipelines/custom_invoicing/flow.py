"""The custom invoicing app's side of the lifecycle, run by the sync job.

- An invoice in `issuing` goes to `issuing.syncing` when its profile has the issuing hook (an
  `invoice.issuing_sync_requested` notification goes out from the status history), else straight
  on to `issued` and `payment_processing.pending`.
- An invoice that waits in a syncing state longer than its profile's `sync_sla`, or in payment
  processing past its due date plus that SLA without a payment status, raises an alert; the alert
  closes when the invoice moves on.
- The invoices integrations may act on are published, with their states and lines, into the
  integration API's store, so the API answers 404 and 409 without opening the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import duckdb

from pipelines.alerts import Alert, open_alert_keys, raise_alerts, resolve_alerts
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.warehouse import sql

ACTOR = "custom_invoicing"
SLA_ALERT = "custom_invoicing_sla:"


@dataclass(frozen=True)
class FlowUpdate:
    """What one pass of the custom invoicing flow did."""

    sync_requested: int      # issuing -> issuing.syncing (hook on)
    issued: int              # issuing -> issued -> payment_processing.pending (hook off)
    waiting: int             # invoices waiting for the integration
    alerts_opened: int
    alerts_closed: int


def advance(con: duckdb.DuckDBPyConnection, *, now: datetime) -> FlowUpdate:
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
    late = con.execute(sql("custom_invoicing/invoices_past_sla"), {"now": now}).fetchall()
    waiting = con.execute("""
        SELECT count(*) FROM billing.invoices
        WHERE app = 'custom_invoicing' AND status IN ('draft.syncing', 'issuing.syncing')
        """).fetchall()[0][0]
    alerts = [Alert(key=f"{SLA_ALERT}{invoice_id}", severity="warning",
                    subject=f"invoice {invoice_id} ({customer_id}) waits for the integration",
                    detail=f"{status} since {since.isoformat()}: {what}, past the "
                           f"{sla_hours:g} h SLA of billing profile {profile}",
                    source=ACTOR)
              for invoice_id, customer_id, status, since, what, sla_hours, profile in late]
    opened = raise_alerts(con, alerts, now=now)
    stale = open_alert_keys(con, SLA_ALERT) - {a.key for a in alerts}
    closed = resolve_alerts(con, stale, now=now)
    return FlowUpdate(sync_requested=requested, issued=issued, waiting=waiting,
                      alerts_opened=opened, alerts_closed=closed)


def published_invoices(con: duckdb.DuckDBPyConnection) -> list[PublishedInvoice]:
    """Every custom invoicing invoice with its current state and lines, as the API sees them."""
    rows = con.execute("""
        SELECT i.invoice_id, i.customer_id, i.app, i.status, i.currency,
               CAST(i.total AS VARCHAR),
               list(struct_pack(line_id := l.line_id, line_type := l.line_type)
                    ORDER BY l.position) FILTER (WHERE l.line_id IS NOT NULL)
        FROM billing.invoices i
        LEFT JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.app = 'custom_invoicing' AND i.status <> 'discarded'
        GROUP BY ALL ORDER BY i.invoice_id""").fetchall()
    return [PublishedInvoice(invoice_id=invoice_id, customer_id=customer_id, app=app,
                             status=status, currency=currency, total=Decimal(total),
                             lines=tuple(PublishedLine(line_id=line["line_id"],
                                                       line_type=line["line_type"])
                                         for line in lines or ()))
            for invoice_id, customer_id, app, status, currency, total, lines in rows]


def publish(con: duckdb.DuckDBPyConnection, store: ApiStore) -> int:
    """Publish the invoices integrations may act on into the API's store, and withdraw the
    ones that are gone (a discarded draft is deleted from the ledger): calls about them get 404
    from then on. Returns how many are published."""
    invoices = published_invoices(con)
    store.publish_invoices(invoices)
    store.unpublish_invoices(sorted(store.published_ids() - {i.invoice_id for i in invoices}))
    return len(invoices)
