"""Outbound notifications delivered over 127.0.0.1 to a booking system and a finance receiver:
events built once from the status history with the invoice frozen in the payload, routing by
event type and customer, retries with growing backoff, 410 Gone, missing secrets and
`billing notify test`. Signatures and the backoff rule alone:
tests/unit/test_notification_signing.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from standardwebhooks.webhooks import Webhook

from devkit.booking_system import BOOKING_PATH, FINANCE_PATH, BookingSystem
from pipelines.notifications.sending import RETRY_DELAYS
from tests.support.dagster_runs import materialized_metadata, run_billing, succeeded
from tests.support.receivers import BOOKING_SECRET, FINANCE_SECRET, write_catalog
from tests.support.warehouse import invoice_of, query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT1H}
customers:
  - {id: initech_003, name: Initech KK, email: keiri@initech.jp, billing_profile: manual}
  - {id: hooli_005, name: Hooli, email: invoices@hooli.example, billing_profile: manual}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
  - {id: sub_hooli_pro, customer: hooli_005, plan: professional, start_date: 2026-01-01}
"""


def run_notifications(now: str) -> dict[str, dict[str, object]]:
    """Materialize notifications/events and notifications/deliveries at `now`; their metadata."""
    from assets import notifications
    from pipelines.definitions import defs
    from pipelines.run_context import NOW_TAG

    resources = {key: defs.resources[key] for key in ("warehouse", "catalog")}
    with dg.instance_for_test() as instance:
        result = dg.materialize([notifications.events, notifications.deliveries],
                                resources=resources, instance=instance, tags={NOW_TAG: now})
    return materialized_metadata(succeeded(result))


def move(warehouse: Path, invoice_id: str, to_status: str, now: str) -> None:
    """A payment-side status change, as a provider event or a payment callback makes it."""
    from pipelines.invoicing.status import StatusChange, apply_status_changes
    from pipelines.warehouse import connect_writer, transaction

    with connect_writer(str(warehouse)) as con, transaction(con):
        [outcome] = apply_status_changes(
            con, [StatusChange(invoice_id, to_status, "test: payment", "test",
                               payment_side=True)],
            now=datetime.fromisoformat(now.replace("Z", "+00:00")))
    assert outcome.outcome == "applied", outcome


@pytest.fixture
def receivers(billing_env, monkeypatch):
    """A booking system and a finance receiver on 127.0.0.1, wired into the catalog."""
    monkeypatch.setenv("BOOKING_WEBHOOK_SECRET", BOOKING_SECRET)
    monkeypatch.setenv("FINANCE_WEBHOOK_SECRET", FINANCE_SECRET)
    with BookingSystem(booking_secret=BOOKING_SECRET, finance_secret=FINANCE_SECRET) as system:
        write_catalog(billing_env, system.url(BOOKING_PATH), system.url(FINANCE_PATH),
                      CUSTOMERS)
        yield system


# --------------------------------------------------------------------------- events and routing

def test_events_are_built_once_with_the_invoice_and_routed_by_type_and_customer(
        billing_env, receivers):
    warehouse = billing_env["warehouse"]
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    first = run_notifications("2026-02-01T12:00:00Z")
    initech, hooli = invoice_of(warehouse, "initech_003"), invoice_of(warehouse, "hooli_005")
    # created + issued for each of the two February invoices (January's cut as well)
    events = query(warehouse, """
        SELECT invoice_id, event_type FROM notify.events ORDER BY invoice_id, occurred_at,
        event_type""")
    by_invoice = {inv: sorted(t for i, t in events if i == inv) for inv in (initech, hooli)}
    assert by_invoice == {initech: ["invoice.created", "invoice.issued"],
                          hooli: ["invoice.created", "invoice.issued"]}
    assert first["notifications/events"]["events_created"] == len(events)

    # routing: only Initech's events reach the booking channel; finance gets none of these
    routed = query(warehouse, """
        SELECT d.channel, e.invoice_id, e.event_type FROM notify.deliveries d
        JOIN notify.events e USING (message_id) ORDER BY ALL""")
    assert {(c, i) for c, i, _ in routed} <= {("booking", inv) for inv in
                                              _invoices_of(warehouse, "initech_003")}
    assert ("booking", initech, "invoice.issued") in routed
    assert first["notifications/deliveries"]["delivered"] == len(routed)

    # the payload: the invoice as issued, amounts as decimal strings, its lines
    [(payload,)] = query(warehouse, """
        SELECT payload FROM notify.events WHERE invoice_id = $i AND event_type =
        'invoice.issued'""", {"i": initech})
    message = json.loads(payload)
    invoice = message["data"]["invoice"]
    assert message["type"] == "invoice.issued"
    assert invoice["status"] == "issued"
    assert invoice["number"].startswith("INV-202602-")
    assert invoice["customer"] == {"id": "initech_003", "name": "Initech KK",
                                   "email": "keiri@initech.jp"}
    assert invoice["currency"] == "USD"
    assert invoice["period"] == {"start": "2026-01-01", "end": "2026-02-01"}
    [(total,)] = query(warehouse, "SELECT total FROM billing.invoices WHERE invoice_id = $i",
                       {"i": initech})
    assert invoice["total"] == str(total.quantize(Decimal("0.01")))
    assert Decimal(invoice["total"]) == sum(Decimal(line["amount"])
                                            for line in invoice["lines"])
    assert all(isinstance(line["amount"], str) and line["amount"].count(".") == 1
               and len(line["amount"].split(".")[1]) == 2 for line in invoice["lines"])
    [(line_count,)] = query(warehouse, "SELECT count(*) FROM billing.invoice_lines "
                                       "WHERE invoice_id = $i", {"i": initech})
    assert len(invoice["lines"]) == line_count > 0

    # a re-run (and another notification run) never makes a second event or delivery
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    again = run_notifications("2026-02-01T13:00:00Z")
    assert again["notifications/events"]["events_created"] == 0
    assert again["notifications/deliveries"]["attempted"] == 0
    assert query(warehouse, "SELECT count(*) FROM notify.events")[0][0] == len(events)
    assert receivers.state()["duplicates"] == 0

    # a payment failure of Hooli's invoice goes to finance only
    move(warehouse, hooli, "payment_processing.failed", "2026-02-02T09:00:00Z")
    run_notifications("2026-02-02T09:00:00Z")
    failed = query(warehouse, """
        SELECT d.channel, d.status FROM notify.deliveries d JOIN notify.events e USING
        (message_id) WHERE e.event_type = 'invoice.payment_failed'""")
    assert failed == [("finance", "delivered")]


def _invoices_of(warehouse: Path, customer: str) -> set[str]:
    rows = query(warehouse, "SELECT invoice_id FROM billing.invoices WHERE customer_id = $c",
                 {"c": customer})
    return {row[0] for row in rows}


# --------------------------------------------------------------------------- delivery

def test_retries_back_off_with_the_same_webhook_id_and_every_attempt_recorded(
        billing_env, receivers):
    warehouse = billing_env["warehouse"]
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_notifications("2026-02-01T12:00:00Z")   # created and issued go out
    initech = invoice_of(warehouse, "initech_003")
    move(warehouse, initech, "paid", "2026-02-02T10:00:00Z")
    # the booking system fails twice, then takes the message
    receivers.script(BOOKING_PATH, [500, 503])
    runs = ["2026-02-02T10:00:00Z",   # attempt 1: 500, next in 5 s
            "2026-02-02T10:00:01Z",   # not due yet: nothing sent
            "2026-02-02T10:00:30Z",   # attempt 2: 503, next in 5 min
            "2026-02-02T10:05:00Z",   # not due yet
            "2026-02-02T10:06:00Z"]   # attempt 3: 204
    metas = [run_notifications(now)["notifications/deliveries"] for now in runs]
    assert [(m["attempted"], m["retries_scheduled"], m["delivered"]) for m in metas] == [
        (1, 1, 0), (0, 0, 0), (1, 1, 0), (0, 0, 0), (1, 0, 1)]
    [(paid_id,)] = query(warehouse, """SELECT message_id FROM notify.events
        WHERE invoice_id = $i AND event_type = 'invoice.paid'""", {"i": initech})
    attempts = query(warehouse, """
        SELECT attempt, "at", http_status, outcome, next_attempt_at, error
        FROM notify.delivery_attempts WHERE message_id = $m AND channel = 'booking'
        ORDER BY attempt""", {"m": paid_id})
    at = [datetime.fromisoformat(r.replace("Z", "+00:00")) for r in runs]
    assert [row[:5] for row in attempts] == [
        (1, at[0], 500, "retrying", at[0] + timedelta(seconds=5)),
        (2, at[2], 503, "retrying", at[2] + timedelta(minutes=5)),
        (3, at[4], 204, "delivered", None)]
    assert attempts[0][5].startswith("HTTP 500") and attempts[2][5] is None
    assert query(warehouse, """SELECT status, attempts, last_http_status FROM notify.deliveries
        WHERE message_id = $m""", {"m": paid_id}) == [("delivered", 3, 204)]
    # the three requests carried the same webhook-id and body, each signed afresh
    sent = [r for r in receivers.requests
            if r.path == BOOKING_PATH and r.headers["webhook-id"] == paid_id]
    assert [r.status for r in sent] == [500, 503, 204]
    assert len({r.body for r in sent}) == 1
    Webhook(BOOKING_SECRET).verify(sent[-1].body, sent[-1].headers)
    assert receivers.state()["received"][BOOKING_PATH] == [
        "invoice.created", "invoice.issued", "invoice.paid"]


def test_a_failing_channel_is_retried_over_hours_then_given_up_with_an_alert(
        billing_env, receivers):
    warehouse = billing_env["warehouse"]
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    hooli = invoice_of(warehouse, "hooli_005")
    move(warehouse, hooli, "payment_processing.failed", "2026-02-02T10:00:00Z")
    receivers.script(FINANCE_PATH, [500] * 20)
    now = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
    for delay in (timedelta(0), *RETRY_DELAYS):
        now += delay
        run_notifications(now.isoformat())
    rows = query(warehouse, """
        SELECT attempt, outcome, http_status FROM notify.delivery_attempts
        WHERE channel = 'finance' ORDER BY attempt""")
    assert rows == [(n, "retrying", 500) for n in range(1, 8)] + [(8, "failed", 500)]
    [(message_id, status, attempts)] = query(warehouse, """
        SELECT message_id, status, attempts FROM notify.deliveries WHERE channel = 'finance'""")
    assert (status, attempts) == ("failed", 8)
    [(key, source)] = query(warehouse, """SELECT alert_key, source FROM health.alerts
        WHERE starts_with(alert_key, 'notification_failed:')""")
    assert (key, source) == (f"notification_failed:finance:{message_id}", "notifications")
    # nothing is sent any more
    run_notifications((now + timedelta(days=2)).isoformat())
    assert query(warehouse, "SELECT count(*) FROM notify.delivery_attempts "
                            "WHERE channel = 'finance'")[0][0] == 8


def test_410_gone_disables_the_channel_and_later_deliveries_are_skipped(
        billing_env, receivers):
    warehouse = billing_env["warehouse"]
    receivers.gone(BOOKING_PATH)
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    meta = run_notifications("2026-02-01T12:00:00Z")["notifications/deliveries"]
    assert meta["channels_disabled"] == 1
    # the first delivery got the 410; the channel's other deliveries of the run were skipped
    outcomes = query(warehouse, """SELECT outcome, count(*) FROM notify.delivery_attempts
        WHERE channel = 'booking' GROUP BY ALL ORDER BY ALL""")
    assert outcomes[0] == ("disabled", 1)
    assert dict(outcomes).get("skipped", 0) == meta["skipped"]
    assert len([r for r in receivers.requests if r.path == BOOKING_PATH]) == 1
    [(disabled_at,)] = query(warehouse, "SELECT disabled_at FROM notify.channel_state "
                                        "WHERE channel = 'booking'")
    assert disabled_at is not None
    assert query(warehouse, "SELECT count(*) FROM health.alerts WHERE alert_key = "
                            "'notification_channel_disabled:booking'")[0][0] == 1
    # a later event for the channel is recorded as skipped, not sent
    initech = invoice_of(warehouse, "initech_003")
    move(warehouse, initech, "paid", "2026-02-03T10:00:00Z")
    run_notifications("2026-02-03T10:00:00Z")
    assert query(warehouse, """SELECT d.status, a.outcome, a.http_status FROM notify.deliveries d
        JOIN notify.events e USING (message_id) JOIN notify.delivery_attempts a
        USING (message_id, channel) WHERE e.event_type = 'invoice.paid'""") == [
        ("skipped", "skipped", None)]
    assert len([r for r in receivers.requests if r.path == BOOKING_PATH]) == 1

    # the receiver is fixed and the channel enabled again: new events go out
    from pipelines.cli import main

    receivers.restore(BOOKING_PATH)
    main(["notify", "enable", "--channel", "booking"])
    assert query(warehouse, "SELECT count(*) FROM health.alerts WHERE alert_key = "
                            "'notification_channel_disabled:booking'")[0][0] == 0
    move(warehouse, initech, "refunded", "2026-02-04T10:00:00Z")
    run_notifications("2026-02-04T10:00:00Z")
    assert receivers.state()["received"][BOOKING_PATH] == ["invoice.refunded"]


def test_a_missing_secret_sends_nothing_and_names_the_variable(billing_env, receivers,
                                                                monkeypatch):
    warehouse = billing_env["warehouse"]
    monkeypatch.delenv("BOOKING_WEBHOOK_SECRET")
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_notifications("2026-02-01T12:00:00Z")
    rows = query(warehouse, """SELECT DISTINCT outcome, http_status, sent_at, error
        FROM notify.delivery_attempts WHERE channel = 'booking'""")
    assert rows == [("retrying", None, None,
                     "environment variable BOOKING_WEBHOOK_SECRET is not set")]
    assert not [r for r in receivers.requests if r.path == BOOKING_PATH]
    # once the variable is set, the retry goes out
    monkeypatch.setenv("BOOKING_WEBHOOK_SECRET", BOOKING_SECRET)
    run_notifications("2026-02-01T12:01:00Z")
    assert {r.status for r in receivers.requests if r.path == BOOKING_PATH} == {204}
    assert query(warehouse, """SELECT DISTINCT status FROM notify.deliveries
        WHERE channel = 'booking'""") == [("delivered",)]


def test_no_secret_value_is_ever_stored(billing_env, receivers):
    warehouse = billing_env["warehouse"]
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_notifications("2026-02-01T12:00:00Z")
    from pipelines.warehouse import connect_reader

    secrets = (BOOKING_SECRET, FINANCE_SECRET, BOOKING_SECRET[6:], FINANCE_SECRET[6:])
    with connect_reader(str(warehouse)) as con:
        for table in ("channels", "events", "deliveries", "delivery_attempts"):
            text = json.dumps(con.execute(f"SELECT * FROM notify.{table}").fetchall(),
                              default=str)
            assert not any(s in text for s in secrets), table


# --------------------------------------------------------------------------- CLI

def test_billing_notify_test_prints_the_delivery_status(billing_env, receivers, capsys):
    from pipelines.cli import main

    main(["notify", "test", "--channel", "finance"])
    out = capsys.readouterr().out
    assert "HTTP 204, delivered, message msg_test_" in out
    message_id = out.split("message ")[1].split()[0]
    [request] = [r for r in receivers.requests if r.path == FINANCE_PATH]
    assert request.headers["webhook-id"] == message_id
    assert Webhook(FINANCE_SECRET).verify(request.body, request.headers)["type"] == "webhook.test"
    assert query(billing_env["warehouse"], """SELECT outcome, http_status FROM
        notify.delivery_attempts WHERE message_id = $m""", {"m": message_id}) == [
        ("delivered", 204)]
    # a failing receiver: the status is printed and the command fails
    receivers.script(FINANCE_PATH, [503])
    with pytest.raises(SystemExit):
        main(["notify", "test", "--channel", "finance"])
    assert "HTTP 503, failed" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a notification channel"):
        main(["notify", "test", "--channel", "nope"])


# --------------------------------------------------------------------------- corrections

CORRECTED_CUSTOMERS = CUSTOMERS.replace(
    "{key: manual, app: none, grace_period: PT1H}",
    '{key: manual, app: none, grace_period: PT1H, auto_approve_corrections_up_to: "10.00"}')


def test_corrections_are_announced_to_signed_receivers(billing_env, receivers):
    """A price fixed after issue: credit_note.created when the credit note is made,
    credit_note.issued and invoice.corrected (with every correcting document) when it and the
    supplementary invoice are issued, invoice.voided for a void; each verified by the
    receivers with their own secret."""
    warehouse = billing_env["warehouse"]
    write_catalog(billing_env, receivers.url(BOOKING_PATH), receivers.url(FINANCE_PATH),
                  CORRECTED_CUSTOMERS)
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_notifications("2026-02-01T12:00:00Z")
    initech, hooli = invoice_of(warehouse, "initech_003"), invoice_of(warehouse, "hooli_005")
    lines = dict(query(warehouse, "SELECT line_type, line_id FROM billing.invoice_lines "
                                  "WHERE invoice_id = $i", {"i": initech}))
    # the platform fee 10.00 -> 8.00: the fee line credited 2.00, the minimum commitment top-up
    # 40.00 -> 42.00 on a supplementary invoice (both within the 10.00 auto-approval)
    plans = billing_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '{key: platform_fee, type: flat, amount: "10.00"',
        '{key: platform_fee, type: flat, amount: "8.00"', 1))
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    run_notifications("2026-02-01T13:00:00Z")
    [(credit_note,)] = query(warehouse, "SELECT credit_note_id FROM billing.credit_notes "
                                        "WHERE invoice_id = $i", {"i": initech})
    [(supplementary,)] = query(warehouse, "SELECT invoice_id FROM billing.invoices "
                                          "WHERE corrects_invoice_id = $i", {"i": initech})
    # the grace period over: both documents issued
    run_billing("2026-02", "2026-02-01T14:00:00Z")
    run_notifications("2026-02-01T14:00:00Z")
    move(warehouse, hooli, "voided", "2026-02-02T09:00:00Z")
    run_notifications("2026-02-02T09:00:00Z")

    def verified(path: str, secret: str, kind: str) -> list[dict]:
        """The messages of this type delivered to `path`, each checked with the reference
        Standard Webhooks library."""
        return [Webhook(secret).verify(r.body, r.headers) for r in receivers.requests
                if r.path == path and r.status == 204 and json.loads(r.body)["type"] == kind]

    # credit_note.created: finance is told of both credit notes while they are drafts
    created = verified(FINANCE_PATH, FINANCE_SECRET, "credit_note.created")
    assert sorted((m["data"]["invoice"]["invoice_id"], m["data"]["credit_note"]["status"],
                   m["data"]["credit_note"]["number"]) for m in created) == sorted(
        [(initech, "draft", None), (hooli, "draft", None)])
    # credit_note.issued: the credit note, its lines (each with the line it corrects), the
    # invoice it credits; Initech's booking system gets Initech's only
    [issued] = verified(BOOKING_PATH, BOOKING_SECRET, "credit_note.issued")
    note = issued["data"]["credit_note"]
    assert issued["data"]["document_type"] == "credit_note"
    assert (note["credit_note_id"], note["number"], note["status"], note["invoice_id"],
            note["total"], note["currency"], note["kind"], note["app"]) == (
        credit_note, "CN-202602-00001", "issued", initech, "2.00", "USD", "correction", "none")
    assert [(ln["corrects_line_id"], ln["amount"]) for ln in note["lines"]] == [
        (lines["flat"], "-2.00")]
    assert issued["data"]["invoice"]["invoice_id"] == initech
    assert issued["data"]["invoice"]["total"] == "50.00"       # the issued invoice never changes
    assert len(verified(FINANCE_PATH, FINANCE_SECRET, "credit_note.issued")) == 2
    # invoice.corrected: one per correcting document issued, with every document so far
    corrected = verified(BOOKING_PATH, BOOKING_SECRET, "invoice.corrected")
    assert sorted(m["data"]["correcting_document"]["id"] for m in corrected) == sorted(
        [credit_note, supplementary])
    for message in corrected:
        data = message["data"]
        assert data["invoice"]["invoice_id"] == initech
        assert [(d["document_type"], d["id"], d["total"], d["amount"],
                 [(ln["corrects_line_id"], ln["amount"]) for ln in d["lines"]])
                for d in data["correcting_documents"]] == [
            ("credit_note", credit_note, "2.00", "-2.00", [(lines["flat"], "-2.00")]),
            ("supplementary_invoice", supplementary, "2.00", "2.00",
             [(lines["minimum_commitment"], "2.00")])]
        assert data["corrected_total"] == "50.00"            # 50.00 - 2.00 + 2.00
    # invoice.voided: finance is told (Hooli has no booking channel)
    [voided] = verified(FINANCE_PATH, FINANCE_SECRET, "invoice.voided")
    assert (voided["data"]["invoice"]["invoice_id"], voided["data"]["invoice"]["status"]) == (
        hooli, "voided")
    assert not verified(BOOKING_PATH, BOOKING_SECRET, "invoice.voided")

    # what the receivers made of them
    state = receivers.state()
    assert [(c["type"], c["invoice_id"]) for c in state["finance_corrections"]
            if c["type"] == "invoice.voided"] == [("invoice.voided", hooli)]
    assert [n["message"] for n in state["customer_notifications"]] == [
        "credit note CN-202602-00001 of 2.00 USD against invoice "
        + issued["data"]["invoice"]["number"]]
    assert {c["corrected_total"] for c in state["invoice_corrections"]} == {"50.00"}
    # the events are in notify.events once, with the credit note they are about
    assert query(warehouse, """
        SELECT event_type, count(*), count(DISTINCT message_id) FROM notify.events
        WHERE invoice_id = $i AND event_type IN ('credit_note.created', 'credit_note.issued',
                                                 'invoice.corrected')
        GROUP BY ALL ORDER BY ALL""", {"i": initech}) == [
        ("credit_note.created", 1, 1), ("credit_note.issued", 1, 1),
        ("invoice.corrected", 2, 2)]
    assert query(warehouse, "SELECT DISTINCT credit_note_id FROM notify.events "
                            "WHERE starts_with(event_type, 'credit_note.') AND invoice_id = $i",
                 {"i": initech}) == [(credit_note,)]
    # another notification run (and a re-run of the month) announces nothing again
    run_billing("2026-02", "2026-02-02T10:00:00Z")
    again = run_notifications("2026-02-02T10:00:00Z")
    assert again["notifications/events"]["events_created"] == 0
    assert receivers.state()["duplicates"] == 0


MIXED_CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: custom_erp, app: custom_invoicing, grace_period: PT1H, draft_sync_hook: true,
     issuing_sync_hook: true}
customers:
  - {id: acme_corp_001, name: Acme Corporation}
  - {id: umbrella_004, name: Umbrella Health, billing_profile: custom_erp}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01}
  - {id: sub_umbrella_pro, customer: umbrella_004, plan: professional, start_date: 2026-01-01}
notification_channels:
  - key: everything
    url: http://127.0.0.1:9/never-called
    secret_env: NOT_SET_IN_THIS_TEST
    event_types: [invoice.created]
"""


def test_every_transition_maps_to_its_event_type(billing_env):
    """Custom invoicing's sync hooks announce, Stripe's internal issuing.syncing does not, sync
    failures and the payment-side states each have their event; the SQL agrees with
    EVENT_TYPES for every history row."""
    from pipelines.catalog import load_catalog
    from pipelines.invoicing.status import StatusChange, apply_status_changes
    from pipelines.notifications.events import EVENT_TYPES, enqueue_events
    from pipelines.warehouse import connect_writer, transaction

    warehouse = billing_env["warehouse"]
    (billing_env["catalog"] / "customers.yaml").write_text(MIXED_CUSTOMERS)
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    acme, umbrella = invoice_of(warehouse, "acme_corp_001"), invoice_of(warehouse, "umbrella_004")
    steps = [  # (invoice, target, payment side)
        (umbrella, "draft.sync_failed", False), (umbrella, "draft.syncing", False),
        (umbrella, "issuing.syncing", False), (umbrella, "issued", False),
        (umbrella, "overdue", True), (umbrella, "voided", True),
        (acme, "issuing.syncing", False), (acme, "issuing.sync_failed", False),
        (acme, "issuing.syncing", False), (acme, "issued", False),
        (acme, "payment_processing.action_required", True), (acme, "uncollectible", True),
        (acme, "paid", True), (acme, "partially_refunded", True)]
    catalog = load_catalog(billing_env["catalog"])
    with connect_writer(str(warehouse)) as con:
        for minute, (invoice, target, payment) in enumerate(steps, 1):
            now = datetime(2026, 2, 1, 13, minute, tzinfo=UTC)
            with transaction(con):
                [done] = apply_status_changes(
                    con, [StatusChange(invoice, target, "test", "test", payment_side=payment)],
                    now=now)
            assert done.outcome == "applied", (invoice, target, done)
        with transaction(con):
            done = enqueue_events(con, catalog, now=datetime(2026, 2, 2, tzinfo=UTC))
        with transaction(con):
            assert enqueue_events(con, catalog, now=datetime(2026, 2, 3, tzinfo=UTC)).events == 0
        history = con.execute("""SELECT h.invoice_id, h.from_status, h.to_status, i.app
            FROM billing.invoice_status_history h JOIN billing.invoices i USING (invoice_id)
            ORDER BY h.changed_at, h.invoice_id, h.from_status IS NOT NULL""").fetchall()
        # a draft created and sent to its draft sync in one step share their instant
        events = con.execute("""SELECT invoice_id, event_type, to_status FROM notify.events
            ORDER BY occurred_at, invoice_id, from_status IS NOT NULL""").fetchall()
        [(refund,)] = con.execute("""SELECT payload FROM notify.events
            WHERE event_type = 'invoice.refunded'""").fetchall()

    expected = []
    for invoice, from_status, to_status, app in history:
        kind = EVENT_TYPES.get(to_status)
        if to_status == "draft" and from_status is not None:
            kind = None
        if to_status == "issuing.syncing" and app != "custom_invoicing":
            kind = None
        if kind:
            expected.append((invoice, kind, to_status))
    assert events == expected
    assert done.events == len(expected)
    assert done.deliveries == 2     # the two invoice.created, to the one channel
    by_invoice = {inv: [k for i, k, _ in events if i == inv] for inv in (acme, umbrella)}
    assert by_invoice[umbrella] == [
        "invoice.created", "invoice.draft_sync_requested", "sync.failed",
        "invoice.draft_sync_requested", "invoice.issuing_sync_requested", "invoice.issued",
        "invoice.overdue", "invoice.voided"]
    # Stripe's issuing.syncing emits nothing; its sync failure does
    assert by_invoice[acme] == [
        "invoice.created", "sync.failed", "invoice.issued", "invoice.payment_action_required",
        "invoice.marked_uncollectible", "invoice.paid", "invoice.refunded"]
    assert json.loads(refund)["data"]["refund"] == {"kind": "partial"}
    assert json.loads(refund)["data"]["transition"]["from_status"] == "paid"
