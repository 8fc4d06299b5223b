"""The Stripe sync through real Dagster runs against the local Stripe emulator on 127.0.0.1:
issuing at Stripe exactly once under faults, crashes and re-runs, within rate limits, and
Stripe's events moving our invoice statuses (twice delivered, out of order)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import stripe

from devkit.stripe_emulator import StripeEmulator
from tests.support.environment import REPO
from tests.support.landing import event, write_lines
from tests.support.local_stripe import (
    SYNC_NOW,
    bill,
    client,
    sync,
    writer_taken_while_stripe_answers,
)
from tests.support.warehouse import query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT1H}
customers:
  - {id: acme_corp_001, name: Acme Corporation, email: billing@acme.com}
  - {id: globex_002, name: Globex GmbH, email: ap@globex.de}
  - {id: free_003, name: Free Ride}
  - {id: initech_004, name: Initech, billing_profile: manual}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_globex_eu, customer: globex_002, plan: business_eu, start_date: 2026-01-01,
     billing_anchor: 1, collection_method: send_invoice, days_until_due: 14,
     discounts: [{type: percentage, percent: "20", periods: 12}]}
  - {id: sub_free_pro, customer: free_003, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1, discounts: [{type: percentage, percent: "100", periods: 12}]}
  - {id: sub_initech_pro, customer: initech_004, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    for mat in result.asset_materializations_for_node(asset.replace("/", "__")):
        return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{asset} not materialized")


def stripe_invoices(emulator: StripeEmulator) -> list[stripe.Invoice]:
    return list(client(emulator).v1.invoices.list(params={"limit": 100}).auto_paging_iter())


def ledger(warehouse: Path) -> dict[str, tuple]:
    rows = query(warehouse, """
        SELECT invoice_id, status, total, currency, invoice_number, external_invoice_number,
               hosted_invoice_url, sync_error
        FROM billing.invoices WHERE app = 'stripe'""")
    return {r[0]: r[1:] for r in rows}


def assert_stripe_matches_ledger(emulator: StripeEmulator, warehouse: Path) -> None:
    """Exactly one Stripe invoice per synced invoice, one customer per customer, and the
    totals and lines equal the ledger's (lines by our line id, amounts in minor units)."""
    invoices = stripe_invoices(emulator)
    by_ours: dict[str, list] = {}
    for inv in invoices:
        by_ours.setdefault(inv.metadata["invoice_id"], []).append(inv)
    assert all(len(v) == 1 for v in by_ours.values()), \
        {k: len(v) for k, v in by_ours.items() if len(v) > 1}
    customers = list(client(emulator).v1.customers.list(params={"limit": 100})
                     .auto_paging_iter())
    ids = [c.metadata["customer_id"] for c in customers]
    assert len(ids) == len(set(ids))
    lines = query(warehouse, """
        SELECT l.invoice_id, l.line_id, l.amount FROM billing.invoice_lines l
        JOIN billing.invoices i USING (invoice_id)
        WHERE i.app = 'stripe' AND i.total <> 0""")
    expected: dict[str, dict[str, int]] = {}
    for invoice_id, line_id, amount in lines:
        expected.setdefault(invoice_id, {})[line_id] = int(amount * 100)
    assert set(by_ours) == set(expected)
    totals = dict(query(warehouse, "SELECT invoice_id, total FROM billing.invoices"))
    cl = client(emulator)
    for invoice_id, (inv,) in by_ours.items():
        assert inv.total == int(totals[invoice_id] * 100)
        got = {line.metadata["line_id"]: line.amount for line in
               cl.v1.invoices.line_items.list(inv.id, params={"limit": 100}).auto_paging_iter()}
        assert got == expected[invoice_id], invoice_id


def test_end_to_end_issue_at_stripe_then_events(stripe_env, local_stripe):
    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    write_lines(stripe_env["landing"] / "jan.jsonl",
                [event(f"a{i}", ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z") for i in range(1500)]
                + [event("g1", customer="globex_002", name="eu.compute",
                         properties={"minutes": "1234"}, ts="2026-01-05T00:00:00Z")])
    bill()
    wh = stripe_env["warehouse"]
    before = ledger(wh)
    assert {v[0] for v in before.values()} == {"issuing"}
    result = sync()
    assert result.success
    out = metadata(result, "sync/stripe_invoices")
    assert (out["invoices_synced"], out["invoices_failed"], out["invoices_zero_total"]) \
        == (2, 0, 1)
    assert out["api_calls"] == 2 * 4 + 1  # customer, invoice, add_lines, finalize; + send
    after = ledger(wh)
    invoices = {inv.metadata["invoice_id"]: inv for inv in stripe_invoices(local_stripe)}
    assert len(invoices) == 2
    for invoice_id, (status, total, currency, number, ext_number, url, error) in after.items():
        assert number and number.startswith("INV-202602-")
        if total == 0:
            assert status == "paid" and ext_number is None and invoice_id not in invoices
            continue
        inv = invoices[invoice_id]
        assert (status, ext_number, url, error) == (
            "payment_processing.pending", inv.number, inv.hosted_invoice_url, None)
        assert inv.status == "open" and inv.auto_advance is False
        assert inv.currency == currency.lower() and inv.total == int(total * 100)
        assert inv.metadata["billing_month"] == "2026-02"
    globex = next(i for i in invoices.values() if i.metadata["customer_id"] == "globex_002")
    assert globex.collection_method == "send_invoice"
    assert any(line.amount < 0 for line in globex.lines.data)  # the discount
    assert_stripe_matches_ledger(local_stripe, wh)
    history = query(wh, """SELECT from_status, to_status FROM billing.invoice_status_history h
        JOIN billing.invoices i USING (invoice_id) WHERE i.customer_id = 'acme_corp_001'""")
    assert set(history) >= set([
        ("draft", "issuing"), ("issuing", "issuing.syncing"), ("issuing.syncing", "issued"),
        ("issued", "payment_processing.pending")])
    attempts = query(wh, "SELECT count(*), count(DISTINCT idempotency_key) FROM "
                         "sync.sync_attempts WHERE operation LIKE '%create%'")
    assert attempts == [(4, 4)]
    assert not query(wh, "SELECT 1 FROM sync.sync_attempts WHERE error LIKE '%sk_test%'")

    # a re-run does nothing at Stripe
    again = sync()
    assert metadata(again, "sync/stripe_invoices")["api_calls"] == 0
    assert len(stripe_invoices(local_stripe)) == 2

    # payment events: acme pays then a late failure; globex is voided
    acme = next(i for i in invoices.values() if i.metadata["customer_id"] == "acme_corp_001")
    local_stripe.invoice_action(acme.id, "payment_failed")
    local_stripe.invoice_action(acme.id, "pay")
    local_stripe.invoice_action(globex.id, "void")
    result = sync("2026-02-04T00:00:00Z")
    assert result.success
    ev = metadata(result, "sync/stripe_events")
    assert ev["events_received"] == 3 and ev["events_applied"] == 3
    status = {k: v[0] for k, v in ledger(wh).items()}
    assert status[acme.metadata["invoice_id"]] == "paid"
    assert status[globex.metadata["invoice_id"]] == "voided"
    snap = metadata(result, "sync/stripe_invoice_snapshot")
    assert snap["snapshot_rows"] == 2
    rows = query(wh, "SELECT invoice_id, status, total, line_count FROM sync.provider_invoices "
                     "ORDER BY invoice_id")
    assert {(r[0], r[1]) for r in rows} == {(acme.metadata["invoice_id"], "paid"),
                                           (globex.metadata["invoice_id"], "void")}
    assert {r[0]: r[2] for r in rows} == {k: v[1] for k, v in after.items() if v[1] != 0}

    # partial then full refund; the cursor means nothing is polled twice
    local_stripe.invoice_action(acme.id, "refund", amount=100)
    result = sync("2026-02-05T00:00:00Z")
    assert metadata(result, "sync/stripe_events")["events_received"] == 1
    assert ledger(wh)[acme.metadata["invoice_id"]][0] == "partially_refunded"
    local_stripe.invoice_action(acme.id, "refund")
    sync("2026-02-06T00:00:00Z")
    assert ledger(wh)[acme.metadata["invoice_id"]][0] == "refunded"
    assert query(wh, "SELECT count(*) FROM sync.provider_events") == [(5,)]


def test_events_twice_and_out_of_order(stripe_env, local_stripe):
    from pipelines.providers.stripe_sync import apply_provider_events, record_provider_events
    from pipelines.warehouse import connect_writer

    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill()
    assert sync().success
    wh = stripe_env["warehouse"]
    acme = next(i for i in stripe_invoices(local_stripe)
                if i.metadata["customer_id"] == "acme_corp_001")
    ours = acme.metadata["invoice_id"]
    local_stripe.invoice_action(acme.id, "pay")
    local_stripe.invoice_action(acme.id, "refund", amount=50)
    events = [e.to_dict() for e in client(local_stripe).v1.events.list(
        params={"types": ["invoice.paid", "charge.refunded"], "limit": 10}).data]
    paid = next(e for e in events if e["type"] == "invoice.paid")
    now = __import__("datetime").datetime(2026, 2, 4, tzinfo=__import__("datetime").UTC)
    with connect_writer(str(wh)) as con:
        # a failure webhook arrives late, after the payment: recorded and ignored
        failed = json.loads(json.dumps(paid, default=str))
        failed.update(id="evt_late_failure", type="invoice.payment_failed",
                      created=paid["created"] + 5)
        assert record_provider_events(con, "stripe", [paid, failed], received_via="webhook",
                                      now=now) == 2
        assert record_provider_events(con, "stripe", [paid], received_via="webhook",
                                      now=now) == 0
        outcomes = apply_provider_events(con, now=now)
        assert outcomes == {"applied": 1, "ignored": 1}
        assert con.execute("SELECT status FROM billing.invoices WHERE invoice_id = $i",
                           {"i": ours}).fetchall() == [("paid",)]
    # the poll brings the same events again plus the refund: stored once, refund applied
    result = sync("2026-02-04T00:00:00Z")
    ev = metadata(result, "sync/stripe_events")
    assert ev["events_received"] == 1 and ev["events_applied"] == 1
    assert ledger(wh)[ours][0] == "partially_refunded"
    rows = query(wh, "SELECT event_type, received_via, outcome FROM sync.provider_events "
                     "ORDER BY created_at, event_type")
    assert ("invoice.payment_failed", "webhook", "ignored") in rows
    assert ("charge.refunded", "poll", "applied") in rows

    # out of order: a full refund's event stored before the payment event of another invoice
    globex = next(i for i in stripe_invoices(local_stripe)
                  if i.metadata["customer_id"] == "globex_002")
    local_stripe.invoice_action(globex.id, "pay")
    local_stripe.invoice_action(globex.id, "refund")
    events = [e.to_dict() for e in client(local_stripe).v1.events.list(
        params={"types": ["invoice.paid", "charge.refunded"], "limit": 2}).data]
    with connect_writer(str(wh)) as con:
        record_provider_events(con, "stripe", [e for e in events
                                               if e["type"] == "charge.refunded"],
                               received_via="webhook", now=now)
        assert con.execute("SELECT invoice_id FROM sync.provider_events "
                           "WHERE event_type = 'charge.refunded' AND outcome IS NULL"
                           ).fetchall() == [(None,)]
    assert sync("2026-02-05T00:00:00Z").success  # resolves the charge, applies both
    assert ledger(wh)[globex.metadata["invoice_id"]][0] == "refunded"
    history = query(wh, "SELECT to_status FROM billing.invoice_status_history "
                        "WHERE invoice_id = $i AND actor = 'stripe_events' ORDER BY changed_at",
                    {"i": globex.metadata["invoice_id"]})
    assert [h[0] for h in history] == ["paid", "refunded"]


def test_the_warehouse_writer_is_free_while_stripe_answers(stripe_env, local_stripe):
    """Every request of the sync (issuing, polling events, looking up a refund's invoice, the
    snapshot) is answered late, and only after another connection took the warehouse writer:
    no step holds the warehouse while it waits on Stripe, and the sync still lands once."""
    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill()
    wh = stripe_env["warehouse"]
    with writer_taken_while_stripe_answers(local_stripe, wh) as probes:
        result = sync()
    assert result.success
    assert probes and [p for p in probes if not p.writer_taken] == []
    routes = {(p.method, p.path.split("/")[2]) for p in probes}
    assert {("POST", "customers"), ("POST", "invoices"), ("GET", "events"),
            ("GET", "invoices"), ("GET", "credit_notes")} <= routes
    assert metadata(result, "sync/stripe_invoices")["invoices_synced"] == 2
    assert_stripe_matches_ledger(local_stripe, wh)

    acme = next(i for i in stripe_invoices(local_stripe)
                if i.metadata["customer_id"] == "acme_corp_001")
    local_stripe.invoice_action(acme.id, "pay")
    local_stripe.invoice_action(acme.id, "refund", amount=100)
    with writer_taken_while_stripe_answers(local_stripe, wh) as probes:
        result = sync("2026-02-04T00:00:00Z")
    assert result.success
    assert probes and [p for p in probes if not p.writer_taken] == []
    assert ("GET", "invoice_payments") in {(p.method, p.path.split("/")[2]) for p in probes}
    assert metadata(result, "sync/stripe_events")["events_applied"] == 2
    assert ledger(wh)[acme.metadata["invoice_id"]][0] == "partially_refunded"
    assert query(wh, "SELECT count(*) FROM sync.sync_attempts WHERE operation IN "
                     "('events.list', 'invoice_payments.list')") == [(3,)]


def test_a_stripe_invoice_made_by_hand_naming_ours_is_not_ours(stripe_env, local_stripe):
    """An invoice made at Stripe by hand whose metadata names one of ours, then paid: our
    invoice stays unpaid (Stripe objects are ours only through the sync's mapping), the event
    is kept as not ours, and reconciliation shows the Stripe invoice as an orphan."""
    from pipelines.jobs import RECONCILE_JOB
    from tests.support.dagster_runs import run_job

    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill()
    assert sync().success
    wh = stripe_env["warehouse"]
    acme = next(i for i in stripe_invoices(local_stripe)
                if i.metadata["customer_id"] == "acme_corp_001")
    ours = acme.metadata["invoice_id"]
    sdk = client(local_stripe)
    by_hand = sdk.v1.invoices.create(params={
        "customer": acme.customer, "auto_advance": False, "currency": "usd",
        "metadata": {"invoice_id": ours, "customer_id": "acme_corp_001"}})
    sdk.v1.invoices.add_lines(by_hand.id, params={"lines": [
        {"amount": 100, "description": "made by hand"}]})
    sdk.v1.invoices.finalize_invoice(by_hand.id)
    local_stripe.invoice_action(by_hand.id, "pay")

    result = sync("2026-02-04T00:00:00Z")
    assert result.success
    events = metadata(result, "sync/stripe_events")
    assert (events["events_applied"], events["events_not_ours"]) == (0, 1)
    assert ledger(wh)[ours][0] == "payment_processing.pending"
    assert query(wh, "SELECT event_type, object_id, invoice_id, outcome, detail "
                     "FROM sync.provider_events") == [
        ("invoice.paid", by_hand.id, None, "not_ours",
         f"stripe invoice {by_hand.id} is not mapped to an invoice of ours; its metadata "
         f"names invoice {ours}")]

    assert run_job(RECONCILE_JOB, "2026-02-04T01:00:00Z").success
    rows = {row[0]: row[1:] for row in query(wh, """
        SELECT coalesce(invoice_id, external_id), match_status, provider_status, detail
        FROM finance.invoice_reconciliation""")}
    assert rows[ours][:2] == ("matched", "open")
    assert rows[by_hand.id] == ("orphan_in_provider", "paid",
                                f"stripe invoice {by_hand.id} is not one of our invoices: none "
                                "was issued as it")
    assert query(wh, "SELECT count(*) FROM finance.payment_reconciliation "
                     "WHERE invoice_id = $i", {"i": ours}) == [(0,)]


def test_an_event_for_an_invoice_the_sync_made_but_did_not_map_waits_for_it(
        stripe_env, local_stripe):
    """Stripe made our invoice but its answer was lost, so nothing is mapped: an event about
    that Stripe invoice naming ours waits (it may be ours) until the next sync finds and maps
    it, then applies."""
    from pipelines.providers.stripe_sync import apply_provider_events, record_provider_events
    from pipelines.warehouse import connect_writer

    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill()
    wh = stripe_env["warehouse"]
    local_stripe.update_faults(match="POST /v1/invoices", drop_next=1)
    assert sync(max_attempts=1).success
    made = stripe_invoices(local_stripe)
    [lost] = [i for i in made if not query(
        wh, "SELECT 1 FROM sync.external_ids WHERE external_id = $e", {"e": i.id})]
    ours = lost.metadata["invoice_id"]
    assert ledger(wh)[ours][0] == "issuing.sync_failed"
    paid = {"id": "evt_paid_early", "type": "invoice.paid", "created": 1770000000,
            "data": {"object": {"object": "invoice", "id": lost.id,
                                "metadata": {"invoice_id": ours}}}}
    now = datetime(2026, 2, 3, 1, tzinfo=UTC)
    with connect_writer(str(wh)) as con:
        record_provider_events(con, "stripe", [paid], received_via="webhook", now=now)
        assert apply_provider_events(con, now=now) == {"waiting": 1}
    assert query(wh, "SELECT outcome, applied_at, detail FROM sync.provider_events") == [
        (None, None, f"stripe invoice {lost.id} is not mapped yet; invoice {ours} it names is "
                     "being issued at Stripe")]

    result = sync("2026-02-03T02:00:00Z")
    assert result.success
    assert metadata(result, "sync/stripe_invoices")["invoices_synced"] == 1
    assert len(stripe_invoices(local_stripe)) == len(made)  # found, completed, not remade
    assert query(wh, "SELECT invoice_id, outcome FROM sync.provider_events") == [
        (ours, "applied")]
    assert ledger(wh)[ours][0] == "paid"


def test_customer_ids_are_escaped_in_stripe_searches(stripe_env, local_stripe):
    """A customer id with quotes and a backslash: when its Stripe customer must be looked up
    (the create's answer was lost), the search finds it instead of failing to parse (or
    matching another), and no second customer is made."""
    odd = 'o\'brien "q" \\ co'
    (stripe_env["catalog"] / "customers.yaml").write_text(f"""
billing_profiles:
  - {{key: stripe_auto, default: true, app: stripe, grace_period: PT1H}}
customers:
  - {{id: {json.dumps(odd)}, name: O'Brien, email: ap@obrien.test}}
subscriptions:
  - {{id: sub_obrien, customer: {json.dumps(odd)}, plan: professional,
     start_date: 2026-01-01, billing_anchor: 1}}
""")
    bill()
    wh = stripe_env["warehouse"]
    local_stripe.update_faults(match="POST /v1/customers", drop_next=1)
    first = sync(max_attempts=1)
    assert metadata(first, "sync/stripe_invoices")["invoices_failed"] == 1
    result = sync("2026-02-03T01:00:00Z")
    assert result.success
    assert metadata(result, "sync/stripe_invoices")["invoices_synced"] == 1
    [search] = query(wh, "SELECT outcome FROM sync.sync_attempts "
                         "WHERE operation = 'customers.search'")
    assert search == ("ok",)
    customers = client(local_stripe).v1.customers.list(params={"limit": 10}).data
    assert [c.metadata["customer_id"] for c in customers] == [odd]
    assert_stripe_matches_ledger(local_stripe, wh)


def test_more_than_250_lines_is_refused_with_a_clear_error(stripe_env, local_stripe):
    from pipelines.warehouse import connect_writer

    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill()
    wh = stripe_env["warehouse"]
    with connect_writer(str(wh)) as con:
        invoice_id, = con.execute("SELECT invoice_id FROM billing.invoices "
                                  "WHERE customer_id = 'acme_corp_001'").fetchall()[0]
        con.execute("""
            INSERT INTO billing.invoice_lines (line_id, invoice_id, line_type, price_key,
                description, amount, period_start, period_end, position)
            SELECT 'extra_' || i, $inv, 'adjustment', 'adj', 'adjustment ' || i, 0.01,
                   DATE '2026-01-01', DATE '2026-02-01', 1000 + i
            FROM range(260) t(i)""", {"inv": invoice_id})
        con.execute("UPDATE billing.invoices SET total = total + 2.60 "
                    "WHERE invoice_id = $inv", {"inv": invoice_id})
    result = sync()
    assert result.success
    out = metadata(result, "sync/stripe_invoices")
    assert (out["invoices_refused"], out["invoices_failed"], out["invoices_synced"]) == (1, 1, 1)
    status, error = query(wh, "SELECT status, sync_error FROM billing.invoices "
                              "WHERE invoice_id = $i", {"i": invoice_id})[0]
    assert status == "issuing.sync_failed"
    assert "has 26" in error and "at most 250" in error
    assert query(wh, "SELECT alert_key, source FROM health.alerts") == [
        (f"stripe_sync_failed:{invoice_id}", "stripe_sync")]
    assert not [i for i in stripe_invoices(local_stripe)
                if i.metadata["invoice_id"] == invoice_id]


def test_no_stripe_profile_needs_no_key_and_stripe_profile_without_key_fails(
        stripe_env, local_stripe, monkeypatch):
    monkeypatch.delenv("STRIPE_API_KEY")
    (stripe_env["catalog"] / "customers.yaml").write_text(
        CUSTOMERS.replace("app: stripe", "app: none"))
    bill()
    result = sync()
    assert result.success
    for asset in ("sync/stripe_invoices", "sync/stripe_events", "sync/stripe_invoice_snapshot"):
        assert "nothing to do, no STRIPE_API_KEY needed" in metadata(result, asset)["skipped"]
    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    bill("2026-03", "2026-03-03T00:00:00Z")
    result = sync("2026-03-03T00:00:00Z")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "STRIPE_API_KEY is not set" in failure.step_failure_data.error.message


def many_customers(count: int) -> str:
    """A catalog of `count` Stripe customers on the professional plan (USD); every fifth pays
    by invoice, every seventh has a 10% discount (a negative line)."""
    lines = ["billing_profiles:",
             "  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}",
             "customers:"]
    subs = ["subscriptions:"]
    for i in range(count):
        lines.append(f"  - {{id: c{i:04d}, name: Customer {i}, email: c{i}@example.com}}")
        sub = (f"  - {{id: sub_c{i:04d}, customer: c{i:04d}, plan: professional, "
               "start_date: 2026-01-01, billing_anchor: 1")
        if i % 5 == 0:
            sub += ", collection_method: send_invoice, days_until_due: 30"
        if i % 7 == 0:
            sub += ', discounts: [{type: percentage, percent: "10", periods: 12}]'
        subs.append(sub + "}")
    return "\n".join(lines + subs) + "\n"


def usage(count: int) -> list[object]:
    """Some API calls and exports for every customer, so lines differ between invoices."""
    out: list[object] = []
    for i in range(count):
        out += [event(f"u{i}_{n}", customer=f"c{i:04d}", ts="2026-01-10T00:00:00Z")
                for n in range(i % 4)]
        out += [event(f"x{i}_{n}", customer=f"c{i:04d}", name="report.exported",
                      ts="2026-01-11T00:00:00Z") for n in range(i % 3)]
    return out


def test_500_invoices_under_20_percent_faults_sync_exactly_once(stripe_env, local_stripe):
    (stripe_env["catalog"] / "customers.yaml").write_text(many_customers(500))
    write_lines(stripe_env["landing"] / "jan.jsonl", usage(500))
    bill()
    wh = stripe_env["warehouse"]
    assert query(wh, "SELECT count(*) FROM billing.invoices WHERE status = 'issuing'") \
        == [(500,)]
    local_stripe.update_faults(error_rate=0.08, drop_rate=0.08, rate_limit_rate=0.04,
                           retry_after=0, seed=11)
    result = sync(requests_per_second=5000, max_concurrency=8, max_attempts=12)
    local_stripe.update_faults(error_rate=0, drop_rate=0, rate_limit_rate=0)
    assert result.success
    out = metadata(result, "sync/stripe_invoices")
    assert (out["invoices_synced"], out["invoices_failed"]) == (500, 0)
    assert out["retries"] > 100 and out["rate_limited"] > 10
    stats = local_stripe.stats()
    assert stats["faults_injected"]["dropped"] > 50
    assert stats["idempotent_replays"] > 50  # dropped writes answered from the saved response
    assert len(stripe_invoices(local_stripe)) == 500
    assert_stripe_matches_ledger(local_stripe, wh)
    assert query(wh, "SELECT status, count(*) FROM billing.invoices GROUP BY ALL") \
        == [("payment_processing.pending", 500)]
    assert query(wh, "SELECT count(*) FROM sync.sync_attempts WHERE operation NOT LIKE "
                     "'snapshot.%' AND operation <> 'events.list'") == [(out["api_calls"],)]
    assert query(wh, "SELECT count(*) FROM sync.external_ids WHERE object_type = 'invoice'") \
        == [(500,)]


SYNC_SCRIPT = """
import dagster as dg
from pipelines.run_context import NOW_TAG
from pipelines.definitions import defs
from pipelines.providers.stripe_sync import StripeResource
with dg.instance_for_test() as instance:
    defs.resolve_job_def("sync_run").execute_in_process(
        tags={NOW_TAG: "%s"}, instance=instance,
        resources={"stripe": StripeResource(requests_per_second=1000, max_concurrency=4)})
"""


def test_sync_killed_mid_run_then_rerun_leaves_no_duplicates(stripe_env, local_stripe):
    (stripe_env["catalog"] / "customers.yaml").write_text(many_customers(120))
    bill()
    local_stripe.update_faults(latency_ms=15)
    proc = subprocess.Popen([sys.executable, "-c", SYNC_SCRIPT % SYNC_NOW], cwd=REPO,
                            env=dict(os.environ), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while local_stripe.stats()["requests_total"] < 150:
            assert proc.poll() is None, "the sync finished before it could be killed"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    local_stripe.update_faults(latency_ms=0)
    wh = stripe_env["warehouse"]
    states = dict(query(wh, "SELECT status, count(*) FROM billing.invoices GROUP BY ALL"))
    assert states.get("issuing.syncing", 0) > 0  # killed mid-run
    half_built = [i for i in stripe_invoices(local_stripe) if i.status == "draft"]
    # past Stripe's 24 h idempotency window: only the mapping and search prevent duplicates
    local_stripe.advance_clock(25 * 3600)
    result = sync(requests_per_second=1000)
    assert result.success
    assert metadata(result, "sync/stripe_invoices")["invoices_synced"] == \
        120 - states.get("payment_processing.pending", 0)
    assert query(wh, "SELECT status, count(*) FROM billing.invoices GROUP BY ALL") \
        == [("payment_processing.pending", 120)]
    assert len(stripe_invoices(local_stripe)) == 120
    assert_stripe_matches_ledger(local_stripe, wh)
    by_id = {i.id: i for i in stripe_invoices(local_stripe)}
    assert all(by_id[i.id].status == "open" for i in half_built)  # completed, not replaced


def test_rate_limits_retried_honouring_retry_after_and_limiter_paces(stripe_env, local_stripe):
    (stripe_env["catalog"] / "customers.yaml").write_text(many_customers(10))
    bill()
    wh = stripe_env["warehouse"]
    local_stripe.update_faults(rate_limit_next=3, retry_after=1)
    result = sync(requests_per_second=1000, max_concurrency=1)
    assert metadata(result, "sync/stripe_invoices")["rate_limited"] == 3
    rows = query(wh, """SELECT operation, http_status, outcome, error, "at", attempt
                        FROM sync.sync_attempts ORDER BY "at" LIMIT 4""")
    assert [r[1:3] for r in rows] == [(429, "retried")] * 3 + [(200, "ok")]
    assert [r[5] for r in rows] == [1, 2, 3, 4]
    assert len({r[0] for r in rows}) == 1
    for before, after in itertools.pairwise(rows):
        assert before[3].startswith("429 ") and "retrying in 1.0" in before[3]
        assert (after[4] - before[4]).total_seconds() >= 1.0  # waited Retry-After
    assert query(wh, "SELECT count(*) FROM billing.invoices "
                     "WHERE status = 'payment_processing.pending'") == [(10,)]

    # the client-side limiter keeps under the account's limit: no 429 at all. Four unpaced
    # workers against a local server send hundreds a second; the limiter keeps them at half the
    # account's rate, with slack for a thread that is late to send the slot it was given.
    (stripe_env["catalog"] / "customers.yaml").write_text(many_customers(20))
    bill()
    local_stripe.update_faults(rps=20, burst=4)
    before = local_stripe.stats()["faults_injected"].get("rate_limit_bucket", 0)
    result = sync(requests_per_second=10, max_concurrency=4)
    local_stripe.update_faults(rps=0)
    out = metadata(result, "sync/stripe_invoices")
    assert out["invoices_synced"] == 10 and out["rate_limited"] == 0
    assert local_stripe.stats()["faults_injected"].get("rate_limit_bucket", 0) == before
