"""Reconciliation against the local Stripe, through real Dagster runs: every discrepancy type
made at Stripe (an invoice deleted, an amount changed, paid outside, refunded outside, an orphan
and a duplicate created with the SDK) and a late event after issue lands in its row; what
matches stays matched; alerts open, are announced (signed) to the ops channel, and close when
the sync catches up."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from devkit.booking_system import FINANCE_PATH, BookingSystem
from pipelines.jobs import INGEST_JOB, RECONCILE_JOB
from tests.support.dagster_runs import run_billing, run_job, run_sync, succeeded
from tests.support.erp import start_erp
from tests.support.landing import event, write_lines
from tests.support.local_stripe import API_KEY, SYNC_NOW, bill, client, sync
from tests.support.receivers import BOOKING_SECRET, FINANCE_SECRET
from tests.support.warehouse import query

SHOPS = ["s1_paid_outside", "s2_deleted", "s3_amount", "s4_refunded", "s5_duplicated",
         "s6_orphan_owner", "s7_untouched"]


def customers_yaml(ops_url: str) -> str:
    customers = "\n".join(f"  - {{id: {c}, name: Shop {c}, email: {c}@shops.example}}"
                          for c in SHOPS)
    subscriptions = "\n".join(
        f"  - {{id: sub_{c}, customer: {c}, plan: professional, start_date: 2026-01-01, "
        f"billing_anchor: 1}}" for c in SHOPS)
    return f"""
billing_profiles:
  - {{key: stripe_auto, default: true, app: stripe, grace_period: PT1H}}
customers:
{customers}
subscriptions:
{subscriptions}
notification_channels:
  - key: ops
    url: {ops_url}
    secret_env: FINANCE_WEBHOOK_SECRET
    event_types: [alert.opened, alert.resolved]
"""


@pytest.fixture
def shops(stripe_env, monkeypatch):
    """Seven Stripe customers on the Professional plan, their January usage ingested on
    February 1st, billed and synced to the local Stripe on February 3rd; an ops receiver."""
    monkeypatch.setenv("FINANCE_WEBHOOK_SECRET", FINANCE_SECRET)
    with BookingSystem(booking_secret=BOOKING_SECRET, finance_secret=FINANCE_SECRET) as ops:
        (stripe_env["catalog"] / "customers.yaml").write_text(
            customers_yaml(ops.url(FINANCE_PATH)))
        write_lines(stripe_env["landing"] / "jan.jsonl",
                    [event(f"s1-{i}", customer="s1_paid_outside",
                           ts=f"2026-01-{10 + i:02d}T10:00:00Z") for i in range(3)])
        bill()
        assert sync().success
        yield ops


def reconcile(now: str):
    return succeeded(run_job(RECONCILE_JOB, now))


def invoice_ids(warehouse: Path) -> dict[str, str]:
    return dict(query(warehouse, "SELECT customer_id, invoice_id FROM billing.invoices"))


def stripe_id(warehouse: Path, invoice_id: str) -> str:
    return query(warehouse, "SELECT external_id FROM sync.external_ids WHERE provider = "
                            "'stripe' AND object_type = 'invoice' AND internal_id = $id",
                 {"id": invoice_id})[0][0]


def invoice_rows(warehouse: Path) -> dict[str, tuple]:
    rows = query(warehouse, """
        SELECT coalesce(invoice_id, external_id), match_status, findings, sla_breached, detail
        FROM finance.invoice_reconciliation""")
    return {r[0]: r[1:] for r in rows}


def payment_rows(warehouse: Path) -> dict[tuple[str, str], tuple]:
    rows = query(warehouse, """
        SELECT invoice_id, kind, match_status, amount, ledger_amount, ledger_status,
               provider_status
        FROM finance.payment_reconciliation""")
    return {(r[0], r[1]): r[2:] for r in rows}


def test_every_stripe_discrepancy_lands_in_its_row_and_alerts_follow(billing_env, shops,
                                                                     local_stripe, monkeypatch):
    wh: Path = billing_env["warehouse"]
    ids = invoice_ids(wh)
    totals = dict(query(wh, "SELECT invoice_id, total FROM billing.invoices"))
    # Professional: February's 10.00 platform fee and January's usage (10.03 at most) are
    # topped up to the plan's 50.00 minimum commitment
    assert {totals[ids[c]] for c in SHOPS} == {Decimal("50.00")}

    # 1. right after the sync everything matches and nothing is alerted
    reconcile(SYNC_NOW)
    assert {k: v[0] for k, v in invoice_rows(wh).items()} == {ids[c]: "matched" for c in SHOPS}
    assert payment_rows(wh) == {}
    usage = query(wh, "SELECT DISTINCT match_status FROM finance.usage_reconciliation")
    assert usage == [("matched",)]
    assert query(wh, """SELECT events_accepted, events_rated, quantity_billed
                        FROM finance.usage_reconciliation
                        WHERE customer_id = 's1_paid_outside' AND meter_key = 'api_requests'
                     """) == [(3, 3, Decimal(3))]
    assert query(wh, "SELECT count(*) FROM health.alerts WHERE source = 'reconciliation'") \
        == [(0,)]
    aging = query(wh, "SELECT count(*), sum(amount_due), min(aging_bucket) "
                      "FROM finance.receivables_aging")
    assert aging == [(7, Decimal("350.00"), "0-30")]

    # 2. things happen at Stripe that the pipeline has not seen (no sync run in between)
    cl = client(local_stripe)
    local_stripe.invoice_action(stripe_id(wh, ids["s2_deleted"]), "delete")
    s3_line = query(wh, "SELECT line_id FROM billing.invoice_lines WHERE invoice_id = $id "
                        "AND price_key = 'platform_fee'", {"id": ids["s3_amount"]})[0][0]
    local_stripe.invoice_action(stripe_id(wh, ids["s3_amount"]), "set_line_amount",
                            line_id=s3_line, amount=1500)
    s4 = stripe_id(wh, ids["s4_refunded"])
    local_stripe.invoice_action(s4, "pay")
    assert sync("2026-02-03T12:00:00Z").success          # the ledger learns s4 was paid
    local_stripe.invoice_action(s4, "refund")                  # ... but not yet of its refund
    local_stripe.invoice_action(stripe_id(wh, ids["s1_paid_outside"]), "pay")
    customer_of = {row[0]: row[1] for row in query(wh, """
        SELECT internal_id, external_id FROM sync.external_ids
        WHERE provider = 'stripe' AND object_type = 'customer'""")}
    for claimed, owner in ((ids["s5_duplicated"], "s5_duplicated"),
                           ("inv_made_by_hand", "s6_orphan_owner")):
        made = cl.v1.invoices.create(params={
            "customer": customer_of[owner], "auto_advance": False, "currency": "usd",
            "metadata": {"invoice_id": claimed}})
        cl.v1.invoices.add_lines(made.id, params={"lines": [
            {"amount": 6000, "description": "made by hand"}]})
        cl.v1.invoices.finalize_invoice(made.id)
    # a late event for s1's January, ingested after its invoice was issued
    monkeypatch.setenv("BILLING_NOW", "2026-02-04T08:00:00Z")
    write_lines(billing_env["landing"] / "late.jsonl",
                [event("s1-late", customer="s1_paid_outside", ts="2026-01-30T23:00:00Z")])
    assert run_job(INGEST_JOB, "2026-02-04T08:00:00Z").success

    reconcile("2026-02-05T00:00:00Z")
    rows = invoice_rows(wh)
    at_stripe = list(cl.v1.invoices.list(params={"limit": 100}).auto_paging_iter())
    s5_copies = [inv.id for inv in at_stripe
                 if inv.metadata.to_dict().get("invoice_id") == ids["s5_duplicated"]]
    orphan = next(inv.id for inv in at_stripe
                  if inv.metadata.to_dict().get("invoice_id") == "inv_made_by_hand")
    mapped = stripe_id(wh, ids["s5_duplicated"])
    by_hand = next(i for i in s5_copies if i != mapped)
    # the copy made by hand names s5 but is not the one the sync issued: an orphan, not s5's
    assert {k: v[:3] for k, v in rows.items()} == {
        ids["s1_paid_outside"]: ("status_mismatch", ["status_mismatch"], True),
        ids["s2_deleted"]: ("missing_in_provider", ["missing_in_provider"], True),
        ids["s3_amount"]: ("amount_mismatch", ["amount_mismatch", "line_mismatch"], True),
        ids["s4_refunded"]: ("matched", [], False),
        ids["s5_duplicated"]: ("matched", [], False),
        by_hand: ("orphan_in_provider", ["orphan_in_provider"], True),
        ids["s6_orphan_owner"]: ("matched", [], False),
        ids["s7_untouched"]: ("matched", [], False),
        "inv_made_by_hand": ("orphan_in_provider", ["orphan_in_provider"], True),
    }
    assert rows[ids["s3_amount"]][3] == (
        f"total 50.00 in the ledger, 55.00 at stripe; lines: {s3_line}: ledger 10.00, "
        f"provider 15.00")
    assert rows[ids["s1_paid_outside"]][3] == (
        "status paid at stripe, open expected for ledger payment_processing.pending")
    assert rows[by_hand][3] == (f"stripe invoice {by_hand} is not one of our invoices: none "
                                "was issued as it")
    assert sorted(query(wh, "SELECT external_id, provider_total FROM "
                            "finance.invoice_reconciliation WHERE match_status = "
                            "'orphan_in_provider'")) == sorted([(orphan, Decimal("60")),
                                                                (by_hand, Decimal("60"))])

    assert payment_rows(wh) == {
        (ids["s1_paid_outside"], "payment"): ("paid_at_provider_open_in_ledger",
                                              Decimal("50"), Decimal("50"),
                                              "payment_processing.pending", "paid"),
        (ids["s4_refunded"], "payment"): ("matched", Decimal("50"), Decimal("50"), "paid",
                                          "paid"),
        (ids["s4_refunded"], "refund"): ("refunded_not_flagged", Decimal("50"), None, "paid",
                                         "paid"),
    }
    late = query(wh, """
        SELECT match_status, events_accepted, events_rated, unbilled_events,
               quantity_aggregated, quantity_billed
        FROM finance.usage_reconciliation WHERE match_status <> 'matched'""")
    assert late == [("unbilled_late_events", 4, 3, 1, Decimal(4), Decimal(3))]
    assert query(wh, "SELECT late_events FROM health.pipeline_health WHERE day = '2026-02-04'") \
        == [(1,)]
    [(calls, retried)] = query(wh, "SELECT count(*), count(*) FILTER (WHERE outcome = 'retried') "
                                   "FROM sync.sync_attempts WHERE provider = 'stripe'")
    assert calls > 0 and query(wh, """
        SELECT sum(attempts), sum(succeeded), sum(retried), sum(failed), sum(rate_limited)
        FROM health.sync_health WHERE provider = 'stripe'""") == [
        (calls, calls - retried, retried, 0, 0)]
    # open receivables: s2 (gone at Stripe), s3, s5, s6, s7; s1 shows paid at Stripe
    assert query(wh, "SELECT count(*), sum(amount_due) FROM finance.receivables_aging") \
        == [(5, Decimal("250.00"))]

    alerts = dict(query(wh, "SELECT alert_key, severity FROM health.alerts "
                            "WHERE source = 'reconciliation'"))
    assert alerts == {
        f"reconciliation:invoice:stripe:{ids['s1_paid_outside']}": "warning",
        f"reconciliation:invoice:stripe:{ids['s2_deleted']}": "critical",
        f"reconciliation:invoice:stripe:{ids['s3_amount']}": "critical",
        f"reconciliation:invoice:stripe:{by_hand}": "critical",
        f"reconciliation:invoice:stripe:{orphan}": "critical",
        f"reconciliation:payment:stripe:payment:{ids['s1_paid_outside']}": "warning",
        f"reconciliation:payment:stripe:refund:{ids['s4_refunded']}": "warning",
        "reconciliation:usage:sub_s1_paid_outside:api_requests:2026-01-01": "warning",
    }
    announced = {m["data"]["alert"]["key"] for m in shops.events[FINANCE_PATH]
                 if m["type"] == "alert.opened"}
    assert announced == set(alerts)

    # 3. the sync catches up (s1 paid, s4 refunded): their discrepancies and alerts close
    assert sync("2026-02-05T06:00:00Z").success
    reconcile("2026-02-05T07:00:00Z")
    rows = invoice_rows(wh)
    assert rows[ids["s1_paid_outside"]][0] == "matched"
    assert payment_rows(wh)[(ids["s4_refunded"], "refund")][0] == "matched"
    assert payment_rows(wh)[(ids["s1_paid_outside"], "payment")][0] == "matched"
    closed = {row[0] for row in query(wh, "SELECT alert_key FROM health.alert_history "
                                          "WHERE source = 'reconciliation'")}
    assert closed == {f"reconciliation:invoice:stripe:{ids['s1_paid_outside']}",
                      f"reconciliation:payment:stripe:payment:{ids['s1_paid_outside']}",
                      f"reconciliation:payment:stripe:refund:{ids['s4_refunded']}"}
    resolved = {m["data"]["alert"]["key"] for m in shops.events[FINANCE_PATH]
                if m["type"] == "alert.resolved"}
    assert resolved == closed
    # a re-run changes nothing and announces nothing twice
    before = len(shops.events[FINANCE_PATH])
    reconcile("2026-02-05T07:30:00Z")
    assert len(shops.events[FINANCE_PATH]) == before
    assert json.loads(query(wh, "SELECT payload FROM notify.events WHERE event_type = "
                                "'alert.opened' LIMIT 1")[0][0])["data"]["alert"]["source"] \
        == "reconciliation"


def test_billing_reconcile_prints_a_summary_by_match_status(billing_env, shops, capsys):
    from pipelines.cli import main

    wh: Path = billing_env["warehouse"]
    emulator_ids = invoice_ids(wh)
    assert len(emulator_ids) == len(SHOPS)
    main(["reconcile"])
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines()]
    assert ["invoices", "stripe", "matched", "7", "0"] in lines
    assert ["usage", "matched", "21"] in lines
    assert "0 open alert(s)" in out


# --------------------------------------------------------------------------- custom invoicing

ERP_SHOPS = ["u1_deleted", "u2_amount", "u3_paid_outside", "u4_refunded", "u5_duplicated",
             "u6_untouched", "u7_line", "u8_currency", "u9_unpaid", "u10_partly_paid",
             "u11_refund_missing", "u12_partly_refunded"]


def erp_catalog(url: str) -> str:
    customers = "\n".join(f"  - {{id: {c}, name: Shop {c}}}" for c in ERP_SHOPS)
    subscriptions = "\n".join(
        f"  - {{id: sub_{c}, customer: {c}, plan: professional, start_date: 2026-01-01}}"
        for c in ERP_SHOPS)
    return f"""
billing_profiles:
  - {{key: erp_hooks, default: true, app: custom_invoicing, grace_period: PT1H, sync_sla: PT24H,
     draft_sync_hook: true, issuing_sync_hook: true}}
customers:
{customers}
subscriptions:
{subscriptions}
notification_channels:
  - key: erp
    url: {url}
    secret_env: ERP_WEBHOOK_SECRET
    event_types: [invoice.draft_sync_requested, invoice.issuing_sync_requested]
"""


@pytest.fixture
def erp_shops(billing_env, monkeypatch):
    """Twelve customers of a custom invoicing profile with both hooks, invoiced through the local
    ERP (which answers the hooks through `billing api`)."""
    for erp in start_erp(billing_env, monkeypatch, catalog=erp_catalog):
        run_billing("2026-02", "2026-02-01T12:00:00Z")
        for now in ("2026-02-01T12:00:00Z", "2026-02-01T12:20:00Z", "2026-02-01T12:40:00Z"):
            run_sync(now)
            erp.integration.wait_idle()
        assert erp.integration.errors == []
        yield erp.integration


def test_every_custom_invoicing_discrepancy_lands_in_its_row(billing_env, erp_shops):
    wh: Path = billing_env["warehouse"]
    ids = invoice_ids(wh)
    assert set(query(wh, "SELECT status FROM billing.invoices")) == {
        ("payment_processing.pending",)}

    # before any statement the integration has not been heard from: pending, not missing;
    # past the SLA one alert says so (not one per invoice)
    def no_snapshot_alerts() -> list[tuple[str, str]]:
        return query(wh, "SELECT alert_key, detail FROM health.alerts "
                         "WHERE starts_with(alert_key, 'reconciliation:')")

    reconcile("2026-02-01T13:00:00Z")
    assert {v[0] for v in invoice_rows(wh).values()} == {"pending_sync"}
    assert no_snapshot_alerts() == []
    reconcile("2026-02-02T13:00:00Z")
    assert no_snapshot_alerts() == [(
        "reconciliation:no_snapshot:custom_invoicing",
        f"{len(ERP_SHOPS)} invoice(s) past their SLA cannot be reconciled with custom_invoicing: "
        "send invoice statements (POST /api/v1/apps/custom-invoicing/statement)")]

    erp_shops.send_statement("2026-02-02T13:10:00Z")
    reconcile("2026-02-02T13:30:00Z")
    assert {k: v[0] for k, v in invoice_rows(wh).items()} == {
        ids[c]: "matched" for c in ERP_SHOPS}
    assert no_snapshot_alerts() == []

    # things happen in the ERP only; then it reports a paid invoice and sends its statement
    erp_shops.delete(ids["u1_deleted"])
    erp_shops.change_total(ids["u2_amount"], "75.50")
    erp_shops.mark_paid_outside(ids["u3_paid_outside"])
    erp_shops.report_payment(ids["u4_refunded"], "paid")
    erp_shops.refund_outside(ids["u4_refunded"])
    duplicate = erp_shops.duplicate(ids["u5_duplicated"])
    orphan = erp_shops.create_orphan("inv_erp_only", "USD", "12.00")
    fee_line = dict(query(wh, "SELECT invoice_id, line_id FROM billing.invoice_lines "
                              "WHERE price_key = 'platform_fee'"))
    erp_shops.change_line_amount(ids["u7_line"], fee_line[ids["u7_line"]], "12.00")
    erp_shops.invoices[ids["u8_currency"]].currency = "EUR"     # re-keyed in the ERP
    for shop in ("u9_unpaid", "u10_partly_paid", "u11_refund_missing", "u12_partly_refunded"):
        erp_shops.report_payment(ids[shop], "paid")
    erp_shops.report_payment(ids["u11_refund_missing"], "refunded")
    erp_shops.report_payment(ids["u12_partly_refunded"], "refunded")
    unpaid = erp_shops.invoices[ids["u9_unpaid"]]                # payment reversed in the ERP
    unpaid.status, unpaid.amount_paid = "open", Decimal(0)
    erp_shops.invoices[ids["u10_partly_paid"]].amount_paid = Decimal("20.00")
    erp_shops.invoices[ids["u11_refund_missing"]].amount_refunded = Decimal(0)
    erp_shops.invoices[ids["u12_partly_refunded"]].amount_refunded = Decimal("5.00")
    erp_shops.send_statement("2026-02-03T08:00:00Z")
    reconcile("2026-02-04T00:00:00Z")

    rows = invoice_rows(wh)
    assert {k: v[:2] for k, v in rows.items()} == {
        ids["u1_deleted"]: ("missing_in_provider", ["missing_in_provider"]),
        ids["u2_amount"]: ("amount_mismatch", ["amount_mismatch"]),
        ids["u3_paid_outside"]: ("status_mismatch", ["status_mismatch"]),
        ids["u4_refunded"]: ("matched", []),
        ids["u5_duplicated"]: ("duplicate_in_provider", ["duplicate_in_provider"]),
        ids["u6_untouched"]: ("matched", []),
        ids["u7_line"]: ("line_mismatch", ["line_mismatch"]),
        ids["u8_currency"]: ("currency_mismatch", ["currency_mismatch"]),
        ids["u9_unpaid"]: ("status_mismatch", ["status_mismatch"]),
        ids["u10_partly_paid"]: ("matched", []),
        ids["u11_refund_missing"]: ("matched", []),
        ids["u12_partly_refunded"]: ("matched", []),
        "inv_erp_only": ("orphan_in_provider", ["orphan_in_provider"]),
    }
    assert rows[ids["u7_line"]][3] == (
        f"lines: {fee_line[ids['u7_line']]}: ledger 10.00, provider 12.00")
    assert rows[ids["u8_currency"]][3] == "currency USD in the ledger, EUR at custom_invoicing"
    assert rows[ids["u2_amount"]][3] == "total 50.00 in the ledger, 75.50 at custom_invoicing"
    primary = erp_shops.invoices[ids["u5_duplicated"]].external_id
    assert rows[ids["u5_duplicated"]][3] == f"2 copies at custom_invoicing: {primary},{duplicate}"
    assert query(wh, "SELECT external_id FROM finance.invoice_reconciliation "
                     "WHERE invoice_id = 'inv_erp_only'") == [(orphan,)]
    # the pipeline learned u4 was paid through the API; the refund it was never told of
    assert payment_rows(wh) == {
        (ids["u3_paid_outside"], "payment"): ("paid_at_provider_open_in_ledger",
                                              Decimal("50"), Decimal("50"),
                                              "payment_processing.pending", "paid"),
        (ids["u4_refunded"], "payment"): ("matched", Decimal("50"), Decimal("50"), "paid",
                                          "paid"),
        (ids["u4_refunded"], "refund"): ("refunded_not_flagged", Decimal("50"), None, "paid",
                                         "paid"),
        (ids["u9_unpaid"], "payment"): ("paid_in_ledger_not_at_provider", Decimal("0"),
                                        Decimal("50"), "paid", "open"),
        (ids["u10_partly_paid"], "payment"): ("amount_paid_mismatch", Decimal("20"),
                                              Decimal("50"), "paid", "paid"),
        (ids["u11_refund_missing"], "payment"): ("matched", Decimal("50"), Decimal("50"),
                                                 "refunded", "paid"),
        (ids["u11_refund_missing"], "refund"): ("refund_not_at_provider", Decimal("0"),
                                                Decimal("50"), "refunded", "paid"),
        (ids["u12_partly_refunded"], "payment"): ("matched", Decimal("50"), Decimal("50"),
                                                  "refunded", "paid"),
        (ids["u12_partly_refunded"], "refund"): ("refund_amount_mismatch", Decimal("5"),
                                                 Decimal("50"), "refunded", "paid"),
    }
    assert query(wh, "SELECT detail FROM finance.payment_reconciliation WHERE invoice_id = $i "
                     "AND kind = 'refund'", {"i": ids["u12_partly_refunded"]}) == [
        ("5.00 of 50.00 USD refunded at custom_invoicing, ledger refunded",)]
    # u1 has been missing since it was issued 59 h ago, past its 24 h SLA
    breached = {k for k, v in rows.items() if v[2]}
    assert ids["u1_deleted"] in breached and ids["u6_untouched"] not in breached


def test_a_failed_sync_run_is_alerted_until_a_run_succeeds(billing_env, shops, monkeypatch):
    """Failed sync jobs are on the monitoring list: the reconciliation run reads Dagster's run
    history (the same instance the schedules launch into)."""
    from pipelines.definitions import defs
    from pipelines.run_context import NOW_TAG

    wh: Path = billing_env["warehouse"]

    def run(instance, job: str, now: str):
        return defs.resolve_job_def(job).execute_in_process(
            tags={NOW_TAG: now}, instance=instance, raise_on_error=False)

    def job_alerts() -> list[tuple[str, str]]:
        return query(wh, "SELECT alert_key, detail FROM health.alerts "
                         "WHERE starts_with(alert_key, 'health:job_failed:')")

    with dg.instance_for_test() as instance:
        monkeypatch.delenv("STRIPE_API_KEY")     # Stripe work waits, and no key: the run fails
        failed = run(instance, "sync_run", "2026-02-04T00:00:00Z")
        assert not failed.success
        assert run(instance, "reconcile_run", "2026-02-04T00:10:00Z").success is False
        # the reconciliation itself refreshes Stripe's snapshot, which needs the key too
        monkeypatch.setenv("STRIPE_API_KEY", API_KEY)
        assert run(instance, "reconcile_run", "2026-02-04T00:20:00Z").success
        [(key, detail)] = job_alerts()
        assert key == "health:job_failed:sync_run"
        assert detail.startswith(f"run {failed.run_id} failed at ")
        assert detail.endswith("steps failed: sync__stripe_invoices")

        assert run(instance, "sync_run", "2026-02-04T01:00:00Z").success
        assert run(instance, "reconcile_run", "2026-02-04T01:10:00Z").success
        assert job_alerts() == []
        assert query(wh, "SELECT count(*) FROM health.alert_history "
                         "WHERE alert_key = 'health:job_failed:sync_run'") == [(1,)]


# --------------------------------------------------------------------------- usage

USAGE_CATALOG = """
billing_profiles:
  - {key: manual, default: true, app: none, grace_period: PT1H}
  - {key: slow, app: none, grace_period: PT240H}
customers:
  - {id: a1_late, name: Late events after issue}
  - {id: a2_draft, name: Late events while draft, billing_profile: slow}
  - {id: a3_meter, name: Meter changed after issue}
subscriptions:
  - {id: sub_a1, customer: a1_late, plan: professional, start_date: 2026-01-01}
  - {id: sub_a2, customer: a2_draft, plan: professional, start_date: 2026-01-01}
  - {id: sub_a3, customer: a3_meter, plan: professional, start_date: 2026-01-01}
"""


def usage_rows(warehouse: Path) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in query(warehouse, """
        SELECT customer_id, match_status, events_accepted, events_rated, unbilled_events,
               quantity_aggregated, quantity_rated, quantity_billed
        FROM finance.usage_reconciliation WHERE meter_key = 'api_requests'""")}


def test_usage_reconciliation_tells_late_events_from_drafts_and_meter_changes(
        billing_env, monkeypatch):
    wh: Path = billing_env["warehouse"]
    (billing_env["catalog"] / "customers.yaml").write_text(USAGE_CATALOG)

    def ingest(name: str, now: str, lines: list[object]) -> None:
        monkeypatch.setenv("BILLING_NOW", now)
        write_lines(billing_env["landing"] / name, lines)
        assert run_job(INGEST_JOB, now).success

    ingest("jan.jsonl", "2026-02-01T12:00:00Z",
           [event(f"{c}-{i}", customer=c, ts=f"2026-01-{10 + i:02d}T10:00:00Z")
            for c in ("a1_late", "a2_draft", "a3_meter") for i in range(5)])
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    statuses = dict(query(wh, "SELECT customer_id, status FROM billing.invoices"))
    assert statuses["a2_draft"] == "draft" and statuses["a1_late"] != "draft"
    reconcile("2026-02-02T00:30:00Z")
    matched = ("matched", 5, 5, 0, Decimal(5), Decimal(5), Decimal(5))
    assert usage_rows(wh) == {c: matched for c in ("a1_late", "a2_draft", "a3_meter")}

    # two more January events each for a1 (issued) and a2 (still a draft)
    ingest("late.jsonl", "2026-02-03T00:00:00Z",
           [event(f"{c}-late-{i}", customer=c, ts="2026-01-31T22:00:00Z")
            for c in ("a1_late", "a2_draft") for i in range(2)])
    reconcile("2026-02-03T01:00:00Z")
    rows = usage_rows(wh)
    assert rows["a1_late"] == ("unbilled_late_events", 7, 5, 2, Decimal(7), Decimal(5),
                               Decimal(5))
    assert rows["a2_draft"] == ("awaiting_rerating", 7, 5, 0, Decimal(7), Decimal(5),
                                Decimal(5))
    assert rows["a3_meter"] == matched

    # the next billing run re-rates the draft; the issued invoice stays as it was and the
    # correction that would bill the two late calls waits for approval (threshold 0)
    run_billing("2026-02", "2026-02-03T02:00:00Z")
    reconcile("2026-02-03T03:00:00Z")
    rows = usage_rows(wh)
    assert rows["a2_draft"] == ("matched", 7, 7, 0, Decimal(7), Decimal(7), Decimal(7))
    assert rows["a1_late"] == ("awaiting_approval", 7, 7, 2, Decimal(7), Decimal(7),
                               Decimal(5))

    # the meter is redefined after issue: a3's quantity now differs without any late event
    meters = billing_env["catalog"] / "meters.yaml"
    meters.write_text(meters.read_text().replace(
        "    event_name: api.request\n    aggregation: count\n",
        "    event_name: api.request\n    aggregation: count\n"
        "    filters: {endpoint: /v1/orders}\n", 1))
    assert run_job(INGEST_JOB, "2026-02-03T04:00:00Z").success   # the catalog reloaded
    a3_detail = ("SELECT detail FROM finance.usage_reconciliation WHERE customer_id = "
                 "'a3_meter' AND meter_key = 'api_requests'")
    reconcile("2026-02-03T04:00:00Z")
    assert usage_rows(wh)["a3_meter"] == ("quantity_mismatch", 0, 5, 0, Decimal(0), Decimal(5),
                                          Decimal(5))
    assert query(wh, a3_detail) == [("quantity 0 now, 5 rated, 5 billed",)]
    # re-rated, the credit of the five calls no longer counted waits for approval
    run_billing("2026-02", "2026-02-03T04:00:00Z")
    reconcile("2026-02-03T05:00:00Z")
    assert usage_rows(wh)["a3_meter"] == ("awaiting_approval", 0, 0, 0, Decimal(0), Decimal(0),
                                          Decimal(5))
    [(correction_id, invoice_id)] = query(wh, """
        SELECT c.correction_id, c.invoice_id FROM billing.corrections c
        JOIN billing.invoice_lines l USING (line_id)
        WHERE c.customer_id = 'a3_meter' AND l.line_type = 'usage'""")
    assert query(wh, a3_detail) == [(f"quantity 0 now, 5 billed: correction {correction_id} of "
                                     f"invoice {invoice_id} waits for approval",)]


# --------------------------------------------------------------------- usage billed by corrections

METERED_PLAN = """
  - key: metered_usd
    name: Metered (USD)
    currency: USD
    billing_period: monthly
    prices:
      - {key: api_calls, meter: api_requests, type: per_unit, unit_price: "0.10"}
"""
METERED_CUSTOMERS = """
billing_profiles:
  - {key: manual, default: true, app: none, grace_period: PT2H}
customers:
  - {id: metered_007, name: Metered Co}
subscriptions:
  - {id: sub_metered, customer: metered_007, plan: metered_usd, start_date: 2026-01-01}
"""
USAGE_ROW = """
    SELECT match_status, events_accepted, events_rated, unbilled_events,
           events_billed_by_corrections, quantity_aggregated, quantity_billed
    FROM finance.usage_reconciliation WHERE subscription_id = 'sub_metered'"""
USAGE_ALERT = "reconciliation:usage:sub_metered:api_requests:2026-01-01"


@pytest.fixture
def metered(billing_env):
    """A customer of app none (2 h grace) billed 0.10 per API call, three calls in January
    ingested on the 31st; February's run at 03:00 rates and issues the invoice (0.30)."""
    catalog = billing_env["catalog"]
    (catalog / "plans.yaml").write_text((catalog / "plans.yaml").read_text() + METERED_PLAN)
    (catalog / "customers.yaml").write_text(METERED_CUSTOMERS)
    late_event(billing_env, "2026-01-31T12:00:00Z",
               *(event(f"m-{i}", customer="metered_007", ts=f"2026-01-{10 + i:02d}T10:00:00Z")
                 for i in range(3)))
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    assert query(billing_env["warehouse"], "SELECT status, total FROM billing.invoices") == [
        ("issued", Decimal("0.30"))]
    return billing_env


def late_event(env, ingested: str, *events: dict[str, object]) -> None:
    """Land and ingest `events` (default: one call of January 31st) as ingested at `ingested`
    (ingestion stamps BILLING_NOW)."""
    lines = list(events) or [event(f"m-late-{ingested}", customer="metered_007",
                                   ts="2026-01-31T23:00:00Z")]
    write_lines(env["landing"] / f"{ingested.replace(':', '')}.jsonl", lines)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BILLING_NOW", ingested)
        succeeded(run_job(INGEST_JOB, ingested))


def open_alerts(warehouse: Path) -> set[str]:
    return {row[0] for row in query(warehouse, "SELECT alert_key FROM health.alerts "
                                               "WHERE starts_with(alert_key, 'reconciliation:')")}


def test_usage_billed_by_an_issued_correction_is_no_longer_unbilled(metered, capsys,
                                                                     monkeypatch):
    from pipelines.cli import main

    wh: Path = metered["warehouse"]
    reconcile("2026-02-01T04:00:00Z")
    assert query(wh, USAGE_ROW) == [("matched", 3, 3, 0, 0, Decimal(3), Decimal(3))]

    # a late call, ingested after the invoice was issued: unbilled, and alerted
    late_event(metered, "2026-02-01T10:00:00Z")
    reconcile("2026-02-01T11:00:00Z")
    assert query(wh, USAGE_ROW) == [
        ("unbilled_late_events", 4, 3, 1, 0, Decimal(4), Decimal(3))]
    assert USAGE_ALERT in open_alerts(wh)

    # the month re-run: a correction of +0.10 on the API line waits for approval (threshold 0)
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    [(correction_id, delta, status)] = query(
        wh, "SELECT correction_id, delta, status FROM billing.corrections")
    assert (delta, status) == (Decimal("0.10"), "pending_approval")
    reconcile("2026-02-02T00:30:00Z")
    assert query(wh, USAGE_ROW) == [("awaiting_approval", 4, 4, 1, 0, Decimal(4), Decimal(3))]
    assert query(wh, "SELECT detail FROM finance.usage_reconciliation") == [(
        f"1 event(s) unbilled: correction {correction_id} of invoice "
        f"{query(wh, 'SELECT invoice_id FROM billing.invoices')[0][0]} waits for approval",)]
    assert USAGE_ALERT in open_alerts(wh)

    # approved: the supplementary invoice is a draft for its 2 h grace period; not alerted
    monkeypatch.setenv("BILLING_NOW", "2026-02-02T00:45:00Z")
    main(["corrections", "approve", correction_id, "--actor", "finance:ana"])
    capsys.readouterr()
    reconcile("2026-02-02T01:00:00Z")
    assert query(wh, USAGE_ROW) == [
        ("awaiting_correction", 4, 4, 1, 0, Decimal(4), Decimal(3))]
    assert USAGE_ALERT not in open_alerts(wh)

    # issued: the late call is billed by the correction; unbilled_events back to 0
    run_billing("2026-02", "2026-02-02T03:00:00Z")
    assert query(wh, "SELECT status, total FROM billing.invoices WHERE corrects_invoice_id "
                     "IS NOT NULL") == [("issued", Decimal("0.10"))]
    reconcile("2026-02-02T04:00:00Z")
    assert query(wh, USAGE_ROW) == [("matched", 4, 4, 0, 1, Decimal(4), Decimal(4))]
    assert query(wh, "SELECT detail FROM finance.usage_reconciliation") == [
        ("4 events, quantity 4 (1 late event(s) billed by corrections)",)]
    assert open_alerts(wh) == set()

    # another late call after the correction: only that one is unbilled
    late_event(metered, "2026-02-03T10:00:00Z")
    reconcile("2026-02-03T11:00:00Z")
    assert query(wh, USAGE_ROW) == [
        ("unbilled_late_events", 5, 4, 1, 1, Decimal(5), Decimal(4))]
    # ... and while its correction waits, the first one stays billed
    run_billing("2026-02", "2026-02-04T00:00:00Z")
    reconcile("2026-02-04T00:30:00Z")
    assert query(wh, USAGE_ROW) == [("awaiting_approval", 5, 5, 1, 1, Decimal(5), None)]


def test_usage_left_unbilled_by_a_rejected_correction_says_so(metered, capsys, monkeypatch):
    from pipelines.cli import main

    wh: Path = metered["warehouse"]
    late_event(metered, "2026-02-01T10:00:00Z")
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    [(correction_id,)] = query(wh, "SELECT correction_id FROM billing.corrections")
    monkeypatch.setenv("BILLING_NOW", "2026-02-02T00:30:00Z")
    main(["corrections", "reject", correction_id, "--reason", "goodwill", "--actor",
          "finance:ana"])
    capsys.readouterr()
    run_billing("2026-02", "2026-02-02T01:00:00Z")
    reconcile("2026-02-02T01:30:00Z")
    assert query(wh, USAGE_ROW) == [
        ("correction_rejected", 4, 4, 1, 0, Decimal(4), Decimal(3))]
    assert query(wh, "SELECT detail FROM finance.usage_reconciliation") == [(
        f"1 event(s) unbilled: finance:ana rejected correction {correction_id} (goodwill)",)]
    assert open_alerts(wh) == set()   # a person decided; nothing for anyone to do


# ----------------------------------------------------------------- credit notes at Stripe

CREDITED_CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H,
     auto_approve_corrections_up_to: "100"}
customers:
  - {id: acme_corp_001, name: Acme Corporation, email: billing@acme.com}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""


def credit_note_rows(warehouse: Path) -> dict[str, tuple]:
    rows = query(warehouse, """
        SELECT coalesce(credit_note_id, external_id), match_status, ledger_total,
               provider_total, ledger_status, provider_status, detail
        FROM finance.credit_note_reconciliation""")
    return {r[0]: r[1:] for r in rows}


def test_credit_notes_at_stripe_reconcile_and_alerts_follow(stripe_env, local_stripe):
    """Acme's 6,000 January calls are billed at Stripe (API 60.00 + fee 10.00 = 70.00); a price
    fix credits 5.00 (tier 2 at 0.007), approved within the profile's 100 and issued at Stripe
    as a credit note of its API line item."""
    wh: Path = stripe_env["warehouse"]
    (stripe_env["catalog"] / "customers.yaml").write_text(CREDITED_CUSTOMERS)
    write_lines(stripe_env["landing"] / "jan.jsonl",
                [event(f"acme_{i}", customer="acme_corp_001",
                       ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z") for i in range(6000)])
    bill()
    assert sync().success
    plans = stripe_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '- {up_to: 10000, unit_price: "0.008"}', '- {up_to: 10000, unit_price: "0.007"}', 1))
    run_billing("2026-02", "2026-02-04T00:00:00Z")
    assert sync("2026-02-04T02:00:00Z").success
    [(credit_note_id, invoice_id, status)] = query(
        wh, "SELECT credit_note_id, invoice_id, status FROM billing.credit_notes")
    assert status == "issued"

    reconcile("2026-02-04T03:00:00Z")
    assert credit_note_rows(wh) == {credit_note_id: (
        "matched", Decimal("5.00"), Decimal("5.00"), "issued", "issued", "as in the ledger")}
    assert invoice_rows(wh)[invoice_id][0] == "matched"
    # Stripe's amount due is 70.00 - 5.00 = 65.00; so is what the ledger says is owed
    assert query(wh, "SELECT amount_remaining FROM sync.provider_invoices") == [
        (Decimal("65.00"),)]
    assert query(wh, "SELECT amount_due FROM finance.receivables_aging") == [(Decimal("65.00"),)]
    assert query(wh, "SELECT count(*) FROM health.alerts WHERE starts_with(alert_key, "
                     "'reconciliation:')") == [(0,)]

    # at Stripe, unseen by the ledger: the credit note voided in the Dashboard, and a credit of
    # 1.00 made by hand on the same invoice
    sdk = client(local_stripe)
    [note] = sdk.v1.credit_notes.list(params={"limit": 10}).data
    sdk.v1.credit_notes.void_credit_note(note.id)
    by_hand = sdk.v1.credit_notes.create(params={"invoice": note.invoice, "lines": [
        {"type": "custom_line_item", "description": "goodwill", "quantity": 1,
         "unit_amount": 100}]})
    reconcile("2026-02-04T04:00:00Z")
    rows = credit_note_rows(wh)
    assert rows[credit_note_id] == ("status_mismatch", Decimal("5.00"), Decimal("5.00"),
                                    "issued", "void", "status void at stripe, ledger issued")
    assert rows[by_hand.id] == (
        "orphan_in_provider", None, Decimal("1.00"), None, "issued",
        f"stripe credit note {by_hand.id} of invoice {invoice_id} is not one of our credit "
        "notes: none was issued as it")
    alerts = dict(query(wh, "SELECT alert_key, severity FROM health.alerts "
                            "WHERE starts_with(alert_key, 'reconciliation:credit_note:')"))
    assert alerts == {f"reconciliation:credit_note:stripe:{credit_note_id}": "warning",
                      f"reconciliation:credit_note:stripe:{by_hand.id}": "critical"}

    # the sync applies Stripe's credit_note.voided: ours is voided too, its alert closes
    assert sync("2026-02-04T05:00:00Z").success
    reconcile("2026-02-04T05:30:00Z")
    rows = credit_note_rows(wh)
    assert rows[credit_note_id][0] == "matched"
    assert rows[credit_note_id][3:5] == ("voided", "void")
    assert rows[by_hand.id][0] == "orphan_in_provider"
    assert {r[0] for r in query(wh, "SELECT alert_key FROM health.alert_history")} == {
        f"reconciliation:credit_note:stripe:{credit_note_id}"}


# ------------------------------------------------------ credit notes of custom invoicing


def test_custom_invoicing_credit_notes_reconcile_with_the_statement(billing_env, erp):
    """Umbrella's February invoice is issued through both hooks; the platform fee fixed from
    10.00 to 8.00 after issue credits 2.00 on a credit note that takes the hooks too and is
    issued with the ERP's number; the ERP's statements list it."""
    wh: Path = billing_env["warehouse"]

    def sync_and_wait(now: str) -> None:
        run_sync(now)
        erp.integration.wait_idle()

    run_billing("2026-02", "2026-02-01T12:00:00Z")
    for now in ("2026-02-01T12:00:00Z", "2026-02-01T12:20:00Z", "2026-02-01T12:40:00Z"):
        sync_and_wait(now)
    catalog = billing_env["catalog"]
    plans = catalog / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '{key: platform_fee, type: flat, amount: "10.00", cadence: in_advance}',
        '{key: platform_fee, type: flat, amount: "8.00", cadence: in_advance}', 1))
    customers = catalog / "customers.yaml"
    customers.write_text(customers.read_text().replace(
        "grace_period: PT1H", 'grace_period: PT1H, auto_approve_corrections_up_to: "100.00"'))
    run_billing("2026-02", "2026-02-01T13:00:00Z")
    reconcile("2026-02-01T13:10:00Z")      # drafts within their grace period: not expected yet
    assert credit_note_rows(wh) == {}
    run_billing("2026-02", "2026-02-01T14:00:00Z")
    for now in ("2026-02-01T14:00:00Z", "2026-02-01T14:20:00Z", "2026-02-01T14:40:00Z"):
        sync_and_wait(now)
    notes = dict(query(wh, "SELECT customer_id, credit_note_id FROM billing.credit_notes "
                           "WHERE status = 'issued'"))
    umbrella, hooli = notes["umbrella_004"], notes["hooli_005"]

    # issued, but the ERP has sent no statement yet: pending, not missing
    reconcile("2026-02-01T14:45:00Z")
    assert {k: v[0] for k, v in credit_note_rows(wh).items()} == {
        umbrella: "pending_sync", hooli: "pending_sync"}

    erp.integration.send_statement("2026-02-01T15:00:00Z")
    run_sync("2026-02-01T15:10:00Z")
    reconcile("2026-02-01T15:20:00Z")
    rows = credit_note_rows(wh)
    assert rows[umbrella] == ("matched", Decimal("2.00"), Decimal("2.00"), "issued", "issued",
                              "as in the ledger")
    # Hooli's profile has no hooks: its ERP never heard of the credit note
    assert rows[hooli][0] == "missing_in_provider"
    # the supplementary invoice (the minimum commitment's +2.00) reconciles like any invoice
    [(supplementary,)] = query(wh, "SELECT invoice_id FROM billing.invoices WHERE "
                                   "customer_id = 'umbrella_004' AND corrects_invoice_id IS NOT "
                                   "NULL")
    assert invoice_rows(wh)[supplementary][:2] == ("matched", [])

    # edited in the ERP, then deleted there: what the next statements say
    erp.integration.change_credit_note_total(umbrella, "1.50")
    erp.integration.send_statement("2026-02-01T16:00:00Z")
    run_sync("2026-02-01T16:10:00Z")
    reconcile("2026-02-01T16:20:00Z")
    assert credit_note_rows(wh)[umbrella][0::5] == (
        "amount_mismatch", "credited 2.00 USD in the ledger, 1.50 USD at custom_invoicing")
    erp.integration.delete_credit_note(umbrella)
    erp.integration.send_statement("2026-02-01T17:00:00Z")
    run_sync("2026-02-01T17:10:00Z")
    reconcile("2026-02-01T17:20:00Z")
    [(credited,)] = query(wh, "SELECT invoice_id FROM billing.credit_notes "
                              "WHERE credit_note_id = $c", {"c": umbrella})
    assert credit_note_rows(wh)[umbrella][0::5] == (
        "missing_in_provider",
        f"custom_invoicing does not have this issued credit note of invoice {credited}")
