"""The custom invoicing app end to end: the real billing run and sync job (Dagster), the
integration API as its own process (`billing api`, uvicorn), and a local integration (an ERP
stand-in) that receives the signed sync-hook notifications on 127.0.0.1 and answers through the
API with a bearer token, exactly as a customer's integration would.

Umbrella's profile has both hooks: draft.syncing -> (draft/synchronized) -> issuing.syncing ->
(issuing/synchronized) -> payment_processing.pending with the ERP's number. Hooli's profile has
none: straight to payment_processing.pending with our own number.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit.api_client import ApiError
from tests.support.dagster_runs import run_billing, run_sync
from tests.support.erp import UMBRELLA_SUBSCRIPTION, Erp
from tests.support.warehouse import query


def history(warehouse: Path, invoice_id: str) -> list[tuple[str, str]]:
    """The invoice's statuses in the order it went through them, with who moved it there
    (moves made in one step share their instant, so the chain follows from_status)."""
    rows = query(warehouse, """
        SELECT from_status, to_status, actor FROM billing.invoice_status_history
        WHERE invoice_id = $i""", {"i": invoice_id})
    following = {from_status: (to_status, actor) for from_status, to_status, actor in rows}
    assert len(following) == len(rows), rows
    chain, current = [], None
    while current in following:
        current, actor = following[current]
        chain.append((current, actor))
    assert len(chain) == len(rows), rows
    return chain


def test_both_hooks_answered_through_the_api_and_no_hooks_straight_to_payment(erp: Erp):
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella, hooli = erp.invoice("umbrella_004"), erp.invoice("hooli_005")
    # leaving draft after the grace period: the draft hook holds Umbrella's invoice
    assert erp.status("umbrella_004") == "draft.syncing"
    assert erp.status("hooli_005") == "issuing"

    # sync 1: Hooli issued with our number; Umbrella's ERP asked to sync the draft
    steps = run_sync("2026-02-01T12:00:00Z")
    assert steps["sync/custom_invoicing"]["issued_without_hook"] == 1
    assert steps["sync/custom_invoicing"]["waiting_for_integration"] == 1
    assert erp.status("hooli_005") == "payment_processing.pending"
    [(hooli_number,)] = query(erp.warehouse, "SELECT invoice_number FROM billing.invoices "
                                             "WHERE invoice_id = $i", {"i": hooli})
    assert hooli_number.startswith("INV-")
    erp.integration.wait_idle()
    assert [m["type"] for m in erp.integration.received] == ["invoice.draft_sync_requested"]
    requested = erp.integration.received[0]["data"]["invoice"]
    assert requested["invoice_id"] == umbrella
    lines = query(erp.warehouse, "SELECT line_id FROM billing.invoice_lines "
                                 "WHERE invoice_id = $i ORDER BY line_id", {"i": umbrella})
    assert sorted(line["line_id"] for line in requested["lines"]) == [r[0] for r in lines]
    assert erp.integration.errors == []
    assert erp.store.pending_count() == 1   # the ERP's draft/synchronized, waiting in the inbox

    # sync 2: the callback applied; the issuing hook asks the ERP to issue
    steps = run_sync("2026-02-01T12:20:00Z")
    assert steps["sync/api_inbox"]["items_applied"] == 1
    assert erp.status("umbrella_004") == "issuing.syncing"
    external = dict(query(erp.warehouse, """
        SELECT internal_id, external_id FROM sync.external_ids
        WHERE provider = 'custom_invoicing'"""))
    assert external[umbrella] == erp.integration.invoices[umbrella].external_id
    assert {lid: external[lid] for (lid,) in lines} == erp.integration.invoices[umbrella].line_ids
    erp.integration.wait_idle()
    assert [m["type"] for m in erp.integration.received] == [
        "invoice.draft_sync_requested", "invoice.issuing_sync_requested"]

    # the API dies right after answering 202: the accepted call is still applied
    erp.api.process.send_signal(signal.SIGKILL)
    erp.api.process.wait()
    steps = run_sync("2026-02-01T12:40:00Z")
    assert steps["sync/api_inbox"]["items_applied"] == 1
    assert erp.status("umbrella_004") == "payment_processing.pending"
    [(number, sent_at, payment_id)] = query(erp.warehouse, """
        SELECT i.invoice_number, i.sent_to_customer_at, x.external_id
        FROM billing.invoices i LEFT JOIN sync.external_ids x
          ON x.provider = 'custom_invoicing' AND x.object_type = 'payment'
         AND x.internal_id = i.invoice_id
        WHERE i.invoice_id = $i""", {"i": umbrella})
    assert number == erp.integration.invoices[umbrella].number
    assert number.startswith("ERP-")
    assert sent_at is not None and payment_id == f"{external[umbrella]}_pay"
    assert [s for s, _ in history(erp.warehouse, umbrella)] == [
        "draft", "draft.syncing", "issuing", "issuing.syncing", "issued",
        "payment_processing.pending"]

    # payment status is mandatory from here: the ERP reports it, the invoice is paid
    erp.restart_api()
    erp.integration.report_payment(umbrella, "paid")
    run_sync("2026-02-02T09:00:00Z")
    assert erp.status("umbrella_004") == "paid"
    assert ("paid", "api:umbrella-erp#1") in history(erp.warehouse, umbrella)
    # the ERP's own view of its invoices comes with its statement (reconciliation's snapshot)
    erp.integration.send_statement("2026-02-02T09:30:00Z")
    run_sync("2026-02-02T10:00:00Z")
    assert query(erp.warehouse, """
        SELECT status, number FROM sync.provider_invoices
        WHERE provider = 'custom_invoicing' AND invoice_id = $i""",
                 {"i": umbrella}) == [("paid", number)]

    # a callback for an invoice in the wrong state is refused, naming the state
    with pytest.raises(ApiError) as refused:
        erp.integration.client.draft_synchronized(umbrella, external_id="erp_again")
    assert refused.value.status_code == 409
    assert refused.value.current_state == "paid"
    # every call the API accepted was applied, none lost or rejected
    assert query(erp.warehouse, """
        SELECT event_type, outcome FROM sync.provider_events
        WHERE provider = 'custom_invoicing' ORDER BY received_at""") == [
        ("custom_invoicing.draft_synchronized", "applied"),
        ("custom_invoicing.issuing_synchronized", "applied"),
        ("custom_invoicing.payment_status", "applied"),
        ("custom_invoicing.statement", "applied")]
    assert erp.store.pending_count() == 0


def test_callback_against_the_warehouse_state_is_refused_without_writes(erp: Erp):
    """The API checks a call against the state it last saw; the warehouse checks it again."""
    from pipelines.custom_invoicing.callbacks import ISSUING_SYNCHRONIZED, apply_callback
    from pipelines.warehouse import connect_writer, transaction

    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    before = history(erp.warehouse, umbrella)
    with connect_writer(str(erp.warehouse)) as con, transaction(con):
        result = apply_callback(con, ISSUING_SYNCHRONIZED, umbrella,
                                {"invoice_number": "ERP-X-1",
                                 "sent_to_customer_at": "2026-02-01T13:00:00Z"},
                                actor="test", now=datetime(2026, 2, 1, 13, tzinfo=UTC))
    assert result.outcome == "rejected"
    assert "draft.syncing" in (result.reason or "")
    assert history(erp.warehouse, umbrella) == before
    assert query(erp.warehouse, "SELECT invoice_number FROM billing.invoices "
                                "WHERE invoice_id = $i", {"i": umbrella}) == [(None,)]


def test_an_invoice_number_of_our_own_form_is_refused(silent_erp: Erp):
    """INV-YYYYMM-NNNNN is the form of our own sequence, which counts only the numbers it gave:
    an integration's INV-202602-00001 could later be given to another invoice. The API refuses
    it naming the field (the pipeline refuses it too, for calls accepted before), and nothing
    changes."""
    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    run_sync("2026-02-01T12:00:00Z")
    erp.integration.wait_idle()
    assert erp.status("umbrella_004") == "draft.syncing"
    with pytest.raises(ApiError) as refused:
        erp.integration.client.draft_synchronized(
            umbrella, external_id="erp_ours", invoice_number="INV-202602-00001")
    assert (refused.value.status_code, refused.value.field) == (422, "invoicing.invoice_number")
    run_sync("2026-02-01T12:10:00Z")
    assert erp.status("umbrella_004") == "draft.syncing"
    assert query(erp.warehouse, "SELECT invoice_number FROM billing.invoices "
                                "WHERE invoice_id = $i", {"i": umbrella}) == [(None,)]
    assert query(erp.warehouse, "SELECT count(*) FROM sync.external_ids "
                                "WHERE internal_id = $i", {"i": umbrella}) == [(0,)]


def test_invoice_waiting_past_the_sla_raises_an_alert_that_closes_when_answered(
        silent_erp: Erp):
    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    run_sync("2026-02-01T12:00:00Z")
    erp.integration.wait_idle()
    assert erp.status("umbrella_004") == "draft.syncing"

    def alerts() -> list[tuple[str, str]]:
        return query(erp.warehouse, "SELECT alert_key, subject FROM health.alerts "
                                    "WHERE alert_key = $k",
                     {"k": f"custom_invoicing_sla:{umbrella}"})

    run_sync("2026-02-02T11:00:00Z")             # 23 h waiting: within the 24 h SLA
    assert alerts() == []
    steps = run_sync("2026-02-02T13:00:00Z")     # 25 h: past it
    assert steps["sync/custom_invoicing"]["sla_alerts_opened"] == 1
    assert alerts() == [(f"custom_invoicing_sla:{umbrella}",
                         f"invoice {umbrella} (umbrella_004) waits for the integration")]
    run_sync("2026-02-02T14:00:00Z")             # still open, not raised twice
    assert len(alerts()) == 1
    # Hooli (no hooks, charged automatically, due on issue) owes a payment status by now too
    hooli = erp.invoice("hooli_005")
    [(detail,)] = query(erp.warehouse, "SELECT detail FROM health.alerts WHERE alert_key = $k",
                        {"k": f"custom_invoicing_sla:{hooli}"})
    assert "payment_processing.pending" in detail and "waiting for a payment status" in detail

    # the integration catches up: the invoice moves on and the alert closes
    requested = erp.integration.received[0]["data"]["invoice"]
    erp.integration.synchronize_draft(umbrella, requested["lines"])
    steps = run_sync("2026-02-02T15:00:00Z")
    assert steps["sync/custom_invoicing"]["sla_alerts_closed"] == 1
    assert erp.status("umbrella_004") == "issuing.syncing"
    assert alerts() == []
    assert query(erp.warehouse, """
        SELECT first_seen, closed_at FROM health.alert_history WHERE alert_key = $k""",
                 {"k": f"custom_invoicing_sla:{umbrella}"}) == [
        (datetime(2026, 2, 2, 13, tzinfo=UTC), datetime(2026, 2, 2, 15, tzinfo=UTC))]


def test_discarded_draft_is_withdrawn_from_the_api(erp: Erp):
    """A draft the catalog no longer produces is discarded; integrations get 404 for it."""
    run_billing("2026-02", "2026-02-01T00:30:00Z")      # within the grace period: drafts
    run_sync("2026-02-01T00:30:00Z")
    umbrella = erp.invoice("umbrella_004")
    published = erp.store.published_invoice(umbrella)
    assert published is not None and published.status == "draft"

    catalog = erp.warehouse.parent / "catalog" / "customers.yaml"
    text = catalog.read_text()
    dropped = text.replace(UMBRELLA_SUBSCRIPTION + "\n", "")
    assert dropped != text
    catalog.write_text(dropped)
    run_billing("2026-02", "2026-02-01T00:40:00Z")
    assert query(erp.warehouse, "SELECT count(*) FROM billing.invoices "
                                "WHERE customer_id = 'umbrella_004'") == [(0,)]
    assert history(erp.warehouse, umbrella)[-1][0] == "discarded"
    run_sync("2026-02-01T00:40:00Z")
    assert erp.store.published_invoice(umbrella) is None
    with pytest.raises(ApiError) as gone:
        erp.integration.client.payment_status(umbrella, "paid")
    assert gone.value.status_code == 404
    assert erp.integration.received == []       # a draft asks the integration nothing
