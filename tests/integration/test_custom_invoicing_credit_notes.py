"""Corrections of custom invoicing invoices through the integration's hooks (contract section 9):
a price fixed in the catalog after issue makes a credit note and a supplementary invoice. The
credit note takes the same hooks as an invoice, with `document_type: credit_note`
(credit_note.draft_sync_requested -> credit-notes/{id}/draft/synchronized -> issuing.syncing ->
credit-notes/{id}/issuing/synchronized -> issued with the ERP's number); the supplementary
invoice is an ordinary invoice through the invoice hooks, naming the invoice and lines it
corrects. The ERP's statement lists its credit notes for reconciliation.

Real Dagster billing and sync runs, `billing api` in its own process and the local ERP answering
signed notifications over 127.0.0.1 (the `erp` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from devkit.api_client import ApiError
from tests.support.dagster_runs import run_billing, run_sync
from tests.support.erp import Erp
from tests.support.warehouse import query


def fix_platform_fee(erp: Erp, amount: str) -> None:
    """A price fixed in the catalog after issue, corrections approved up to 100.00."""
    catalog = erp.warehouse.parent / "catalog"
    plans = catalog / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '{key: platform_fee, type: flat, amount: "10.00", cadence: in_advance}',
        '{key: platform_fee, type: flat, amount: "' + amount + '", cadence: in_advance}', 1))
    customers = catalog / "customers.yaml"
    customers.write_text(customers.read_text().replace(
        "grace_period: PT1H", 'grace_period: PT1H, auto_approve_corrections_up_to: "100.00"'))


def issued_through_both_hooks(erp: Erp) -> str:
    """February's invoice of Umbrella (both hooks) answered by the ERP up to payment
    processing; Hooli's (no hooks) issued with our number. Returns Umbrella's invoice id."""
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_sync("2026-02-01T12:00:00Z")
    erp.integration.wait_idle()
    run_sync("2026-02-01T12:20:00Z")
    erp.integration.wait_idle()
    run_sync("2026-02-01T12:40:00Z")
    assert erp.status("umbrella_004") == "payment_processing.pending"
    assert erp.status("hooli_005") == "payment_processing.pending"
    return erp.invoice("umbrella_004")


def credit_note_chain(erp: Erp, credit_note_id: str) -> list[tuple[str, str]]:
    """The credit note's statuses in order, with who moved it there."""
    rows = query(erp.warehouse, """
        SELECT from_status, to_status, actor FROM billing.credit_note_status_history
        WHERE credit_note_id = $c""", {"c": credit_note_id})
    following = {from_status: (to_status, actor) for from_status, to_status, actor in rows}
    chain, current = [], None
    while current in following:
        current, actor = following[current]
        chain.append((current, actor))
    assert len(chain) == len(rows), rows
    return chain


def lines_of(erp: Erp, invoice_id: str) -> dict[str, str]:
    """The invoice's line ids by line type."""
    return dict(query(erp.warehouse, "SELECT line_type, line_id FROM billing.invoice_lines "
                                     "WHERE invoice_id = $i", {"i": invoice_id}))


def received(erp: Erp, kind: str) -> list[dict]:
    """The data of the notifications of this type the ERP received (signature verified)."""
    return [m["data"] for m in erp.integration.received if m["type"] == kind]


def test_credit_note_through_both_hooks_is_issued_with_the_erps_number(erp: Erp) -> None:
    umbrella = issued_through_both_hooks(erp)
    umbrella_lines = lines_of(erp, umbrella)
    # the platform fee 10.00 -> 8.00 after issue: the fee line is credited 2.00, the minimum
    # commitment top-up (40.00 -> 42.00) billed 2.00 more on a supplementary invoice
    fix_platform_fee(erp, "8.00")
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    [(credit_note, credited, total, status)] = query(erp.warehouse, """
        SELECT credit_note_id, invoice_id, total, status FROM billing.credit_notes
        WHERE customer_id = 'umbrella_004'""")
    assert (credited, total, status) == (umbrella, Decimal("2.00"), "draft")
    [(credit_line, corrects, amount)] = query(erp.warehouse, """
        SELECT credit_note_line_id, corrects_line_id, amount FROM billing.credit_note_lines
        WHERE credit_note_id = $c""", {"c": credit_note})
    assert (corrects, amount) == (umbrella_lines["flat"], Decimal("-2.00"))
    [(supplementary,)] = query(erp.warehouse, """
        SELECT invoice_id FROM billing.invoices WHERE corrects_invoice_id = $i""",
                               {"i": umbrella})

    # within the grace period the credit note stays a draft: nothing asked of the ERP yet
    steps = run_sync("2026-02-01T13:30:00Z")
    assert steps["sync/custom_invoicing"]["credit_notes_sync_requested"] == 0
    assert erp.integration.client.credit_note(credit_note)["status"] == "draft"

    # grace over: the draft hook asks the ERP (credit_note.draft_sync_requested) and the
    # supplementary invoice leaves draft through the invoice hooks
    run_billing("2026-02", "2026-02-01T14:00:00Z")
    steps = run_sync("2026-02-01T14:00:00Z")
    assert steps["sync/custom_invoicing"]["credit_notes_sync_requested"] == 1
    assert steps["sync/custom_invoicing"]["credit_notes_issued"] == 1        # Hooli's, no hooks
    erp.integration.wait_idle()
    [requested] = received(erp, "credit_note.draft_sync_requested")
    assert requested["document_type"] == "credit_note"
    note = requested["credit_note"]
    assert (note["credit_note_id"], note["status"], note["invoice_id"], note["total"]) == (
        credit_note, "draft.syncing", umbrella, "2.00")
    assert [(ln["credit_note_line_id"], ln["corrects_line_id"], ln["amount"])
            for ln in note["lines"]] == [(credit_line, umbrella_lines["flat"], "-2.00")]
    assert requested["invoice"]["invoice_id"] == umbrella
    assert requested["invoice"]["number"] == erp.integration.invoices[umbrella].number
    [supplementary_request] = [d for d in received(erp, "invoice.draft_sync_requested")
                               if d["invoice"]["invoice_id"] == supplementary]
    invoice = supplementary_request["invoice"]
    assert invoice["corrects_invoice_id"] == umbrella
    assert [(ln["line_type"], ln["corrects_invoice_id"], ln["corrects_line_id"], ln["amount"])
            for ln in invoice["lines"]] == [
        ("correction", umbrella, umbrella_lines["minimum_commitment"], "2.00")]
    view = erp.integration.client.invoice(supplementary)
    assert view["corrects_invoice_id"] == umbrella
    assert [ln["corrects_line_id"] for ln in view["lines"]] == [
        umbrella_lines["minimum_commitment"]]

    # the ERP's draft/synchronized applied: issuing, and the issuing hook asks at once
    run_sync("2026-02-01T14:20:00Z")
    erp.integration.wait_idle()
    assert [d["credit_note"]["status"] for d in
            received(erp, "credit_note.issuing_sync_requested")] == ["issuing.syncing"]
    # then issued, with the ERP's own number
    run_sync("2026-02-01T14:40:00Z")
    assert erp.integration.errors == []
    [(number, status, sent_at)] = query(erp.warehouse, """
        SELECT credit_note_number, status, sent_to_customer_at FROM billing.credit_notes
        WHERE credit_note_id = $c""", {"c": credit_note})
    assert (number, status) == (erp.integration.credit_notes[credit_note].number, "issued")
    assert number == "ERP-CN-2026-0001" and sent_at is not None
    assert credit_note_chain(erp, credit_note) == [
        ("draft", "billing_run"), ("draft.syncing", "custom_invoicing"),
        ("issuing", "api:umbrella-erp#1"), ("issuing.syncing", "custom_invoicing"),
        ("issued", "api:umbrella-erp#1")]
    # every transition announced once, as CREDIT_NOTE_EVENT_TYPES says
    from pipelines.notifications.events import CREDIT_NOTE_EVENT_TYPES

    assert query(erp.warehouse, """
        SELECT event_type FROM notify.events WHERE credit_note_id = $c
          AND starts_with(event_type, 'credit_note.') ORDER BY occurred_at""",
                 {"c": credit_note}) == [
        (CREDIT_NOTE_EVENT_TYPES[state],) for state, _ in credit_note_chain(erp, credit_note)
        if state in CREDIT_NOTE_EVENT_TYPES]
    external = dict(query(erp.warehouse, """
        SELECT object_type || ':' || internal_id, external_id FROM sync.external_ids
        WHERE provider = 'custom_invoicing'
          AND object_type IN ('credit_note', 'credit_note_line')"""))
    assert external == {f"credit_note:{credit_note}": "erp_cn_0001",
                        f"credit_note_line:{credit_line}": "erp_cn_0001_l1"}
    assert query(erp.warehouse, """
        SELECT event_type, object_id, invoice_id, outcome FROM sync.provider_events
        WHERE starts_with(event_type, 'custom_invoicing.credit_note')
        ORDER BY received_at""") == [
        ("custom_invoicing.credit_note_draft_synchronized", credit_note, umbrella, "applied"),
        ("custom_invoicing.credit_note_issuing_synchronized", credit_note, umbrella, "applied")]
    # the supplementary invoice went through the invoice hooks to payment processing
    assert query(erp.warehouse, "SELECT status, invoice_number FROM billing.invoices "
                                "WHERE invoice_id = $i", {"i": supplementary}) == [
        ("payment_processing.pending", erp.integration.invoices[supplementary].number)]

    # Hooli (no hooks): issued on our own numbering, never asking an integration
    [(hooli_note, hooli_number)] = query(erp.warehouse, """
        SELECT credit_note_id, credit_note_number FROM billing.credit_notes
        WHERE customer_id = 'hooli_005'""")
    assert hooli_number == "CN-202602-00001"
    assert credit_note_chain(erp, hooli_note) == [
        ("draft", "billing_run"), ("issuing", "custom_invoicing"),
        ("issued", "custom_invoicing")]

    # the API answers for the credit note from its store
    erp.restart_api()
    view = erp.integration.client.credit_note(credit_note)
    assert (view["status"], view["projected_state"], view["invoice_id"]) == (
        "issued", "issued", umbrella)
    assert Decimal(view["total"]) == Decimal("2.00")
    # Umbrella has no address in this catalog: no tax (no rate, a tax of 0), and the note
    assert view["lines"] == [{"credit_note_line_id": credit_line,
                              "corrects_line_id": umbrella_lines["flat"],
                              "tax_rate_key": None, "tax_rate_percent": None,
                              "tax_inclusive": False, "tax_amount": "0.00"}]
    assert (view["tax_total"], view["total_including_tax"], view["tax_note"]) == (
        "0.00", "2.00", "no address")
    with pytest.raises(ApiError) as again:
        erp.integration.client.credit_note_draft_synchronized(credit_note, external_id="x")
    assert (again.value.status_code, again.value.current_state) == (409, "issued")
    with pytest.raises(ApiError) as not_a_credit_note:
        erp.integration.client.credit_note(umbrella)
    assert (not_a_credit_note.value.status_code, not_a_credit_note.value.code) == (
        404, "credit_note_not_found")
    with pytest.raises(ApiError) as not_an_invoice:
        erp.integration.client.issuing_synchronized(
            credit_note, sent_to_customer_at="2026-02-01T15:00:00Z")
    assert (not_an_invoice.value.status_code, not_an_invoice.value.code) == (
        404, "invoice_not_found")

    # the ERP's statement lists its credit note: the custom_invoicing rows of
    # sync.provider_credit_notes, for reconciliation
    erp.integration.send_statement("2026-02-01T15:00:00Z")
    run_sync("2026-02-01T15:10:00Z")
    assert query(erp.warehouse, """
        SELECT external_id, credit_note_id, invoice_id, external_invoice_id, number, status,
               currency, total, line_count, lines->>'$[0].credit_note_line_id',
               lines->>'$[0].amount'
        FROM sync.provider_credit_notes WHERE provider = 'custom_invoicing'""") == [
        ("erp_cn_0001", credit_note, umbrella, erp.integration.invoices[umbrella].external_id,
         "ERP-CN-2026-0001", "issued", "USD", Decimal("2.00"), 1, credit_line, "2.00")]


def test_credit_note_callback_in_the_wrong_state_is_refused_without_writes(erp: Erp) -> None:
    """The API checks a call against the state it last saw; the warehouse checks it again."""
    from pipelines.api.rules import CREDIT_NOTE_ISSUING_SYNCHRONIZED
    from pipelines.custom_invoicing.callbacks import apply_callback
    from pipelines.warehouse import connect_writer, transaction

    issued_through_both_hooks(erp)
    fix_platform_fee(erp, "8.00")
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    [(credit_note,)] = query(erp.warehouse, "SELECT credit_note_id FROM billing.credit_notes "
                                            "WHERE customer_id = 'umbrella_004'")
    with connect_writer(str(erp.warehouse)) as con, transaction(con):
        result = apply_callback(con, CREDIT_NOTE_ISSUING_SYNCHRONIZED, credit_note,
                                {"invoicing": {"credit_note_number": "ERP-CN-X",
                                               "sent_to_customer_at": "2026-02-01T13:00:00Z"}},
                                actor="test", now=datetime(2026, 2, 1, 13, tzinfo=UTC))
    assert (result.outcome, result.status) == ("rejected", "draft")
    assert "issuing.syncing" in (result.reason or "")
    assert query(erp.warehouse, "SELECT status, credit_note_number, sent_to_customer_at "
                                "FROM billing.credit_notes WHERE credit_note_id = $c",
                 {"c": credit_note}) == [("draft", None, None)]


def test_credit_note_waiting_past_the_sla_raises_an_alert_that_closes_when_answered(
        silent_erp: Erp) -> None:
    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    run_sync("2026-02-01T12:00:00Z")
    erp.integration.wait_idle()
    erp.integration.synchronize_draft(umbrella, erp.integration.latest_notified[umbrella]["lines"])
    run_sync("2026-02-01T12:20:00Z")
    erp.integration.wait_idle()
    erp.integration.issue(umbrella)
    run_sync("2026-02-01T12:40:00Z")
    fix_platform_fee(erp, "8.00")
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    [(credit_note,)] = query(erp.warehouse, "SELECT credit_note_id FROM billing.credit_notes "
                                            "WHERE customer_id = 'umbrella_004'")
    run_sync("2026-02-01T14:00:00Z")                 # asked; the ERP does not answer
    erp.integration.wait_idle()
    key = f"custom_invoicing_sla:{credit_note}"

    def alert() -> list[tuple[str, str]]:
        return query(erp.warehouse, "SELECT subject, detail FROM health.alerts "
                                    "WHERE alert_key = $k", {"k": key})

    run_sync("2026-02-02T13:00:00Z")                 # 23 h: within the 24 h SLA
    assert alert() == []
    steps = run_sync("2026-02-02T15:00:00Z")         # 25 h: past it
    assert steps["sync/custom_invoicing"]["credit_notes_waiting"] == 1
    [(subject, detail)] = alert()
    assert subject == f"credit note {credit_note} (umbrella_004) waits for the integration"
    assert detail.startswith("draft.syncing since 2026-02-01T14:00:00+00:00: waiting for "
                             "draft/synchronized, past the 24 h SLA of billing profile erp_hooks")
    # the ERP catches up: the credit note moves on and the alert closes
    erp.integration.synchronize_credit_note_draft(credit_note)
    run_sync("2026-02-02T16:00:00Z")
    assert query(erp.warehouse, "SELECT status FROM billing.credit_notes "
                                "WHERE credit_note_id = $c", {"c": credit_note}) == [
        ("issuing.syncing",)]
    assert alert() == []
    assert query(erp.warehouse, "SELECT closed_at FROM health.alert_history "
                                "WHERE alert_key = $k", {"k": key}) == [
        (datetime(2026, 2, 2, 16, tzinfo=UTC),)]


def test_a_credit_note_number_of_our_own_form_is_refused(
        silent_erp: Erp) -> None:
    """CN-YYYYMM-NNNNN is the form of our own sequence, which counts only the numbers it gave:
    an integration's CN-202602-00001 could later be given to another credit note. The call is
    refused by the API naming the field, and changes nothing; the integration's own number is
    then taken."""
    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    run_sync("2026-02-01T12:00:00Z")
    erp.integration.wait_idle()
    erp.integration.synchronize_draft(umbrella, erp.integration.latest_notified[umbrella]["lines"])
    run_sync("2026-02-01T12:20:00Z")
    erp.integration.wait_idle()
    erp.integration.issue(umbrella)
    run_sync("2026-02-01T12:40:00Z")
    fix_platform_fee(erp, "8.00")
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    [(credit_note,)] = query(erp.warehouse, "SELECT credit_note_id FROM billing.credit_notes "
                                            "WHERE customer_id = 'umbrella_004'")
    run_sync("2026-02-01T14:00:00Z")                 # asked for the draft sync
    erp.integration.wait_idle()

    with pytest.raises(ApiError) as refused:
        erp.integration.client.credit_note_draft_synchronized(
            credit_note, external_id="erp_cn_ours", credit_note_number="CN-202602-00001")
    assert (refused.value.status_code, refused.value.field) == (
        422, "invoicing.credit_note_number")
    run_sync("2026-02-01T14:10:00Z")
    assert query(erp.warehouse, "SELECT status, credit_note_number FROM billing.credit_notes "
                                "WHERE credit_note_id = $c", {"c": credit_note}) == [
        ("draft.syncing", None)]
    assert query(erp.warehouse, "SELECT count(*) FROM sync.external_ids "
                                "WHERE internal_id = $c", {"c": credit_note}) == [(0,)]

    erp.integration.client.credit_note_draft_synchronized(
        credit_note, external_id="erp_cn_own", credit_note_number="ERP-CN-2026-0001")
    run_sync("2026-02-01T14:20:00Z")
    assert query(erp.warehouse, "SELECT status, credit_note_number FROM billing.credit_notes "
                                "WHERE credit_note_id = $c", {"c": credit_note}) == [
        ("issuing.syncing", "ERP-CN-2026-0001")]
