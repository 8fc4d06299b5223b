"""The booking-system test plan of the integration checklist, end to end: the real billing run
and sync job (Dagster), real signed webhooks over 127.0.0.1 to a local booking system that keeps
bookings, and a finance receiver. The customers' invoices belong to a custom invoicing profile
without hooks, so payments are reported the way an ERP reports them: through the integration
API (`billing api` in its own process, a bearer token), applied by the next sync run.

create invoice -> webhook received, booking tagged invoiced; mark paid -> status updated and
customer notified; mark refunded -> booking flagged and finance alerted; mark failed (another
invoice) -> finance alerted.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from devkit.api_client import CustomInvoicingClient
from devkit.booking_system import (
    BOOKING_PATH,
    FINANCE_PATH,
    Booking,
    BookingSystem,
)
from pipelines.api.store import ApiStore
from pipelines.notifications.signing import sign_headers
from tests.support.api import start_api, stop_api
from tests.support.dagster_runs import run_billing, run_sync
from tests.support.receivers import BOOKING_SECRET, FINANCE_SECRET, write_catalog
from tests.support.warehouse import invoice_of, query

CUSTOMERS = """
billing_profiles:
  - {key: erp, default: true, app: custom_invoicing, grace_period: PT1H}
customers:
  - {id: initech_003, name: Initech KK, email: keiri@initech.jp}
  - {id: hooli_005, name: Hooli, email: invoices@hooli.example}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
  - {id: sub_hooli_pro, customer: hooli_005, plan: professional, start_date: 2026-01-01}
"""

SEEDED = [
    Booking("bk_jan_10", "initech_003", "2026-01-10"),
    Booking("bk_jan_25", "initech_003", "2026-01-25"),
    Booking("bk_feb_10", "initech_003", "2026-02-10"),     # next period: not on this invoice
    Booking("bk_hooli_15", "hooli_005", "2026-01-15"),     # another customer
]


@pytest.fixture
def booking_system(billing_env, monkeypatch):
    monkeypatch.setenv("BOOKING_WEBHOOK_SECRET", BOOKING_SECRET)
    monkeypatch.setenv("FINANCE_WEBHOOK_SECRET", FINANCE_SECRET)
    seeded = [Booking(b.booking_id, b.customer_id, b.day) for b in SEEDED]
    with BookingSystem(booking_secret=BOOKING_SECRET, finance_secret=FINANCE_SECRET,
                       bookings=seeded) as system:
        write_catalog(billing_env, system.url(BOOKING_PATH), system.url(FINANCE_PATH),
                      CUSTOMERS)
        yield system


@pytest.fixture
def erp_client(billing_env, monkeypatch):
    """The customers' ERP reporting payments through the integration API."""
    folder: Path = billing_env["warehouse"].parent
    monkeypatch.setenv("BILLING_API_STORE", str(folder / "api_store.sqlite"))
    token = ApiStore(str(folder / "api_store.sqlite")).create_token("erp", ["payments:write"])
    api = start_api(folder / "api_store.sqlite", folder / "api.log")
    try:
        with CustomInvoicingClient(api.url, token) as client:
            yield client
    finally:
        stop_api(api)


def state(system: BookingSystem) -> dict:
    """The booking system's state as its API serves it."""
    response = httpx.get(system.url("/state"), timeout=5)
    assert response.status_code == 200
    return response.json()


def mark(erp: CustomInvoicingClient, invoice_id: str, trigger: str, now: str) -> None:
    """The ERP reports a payment status; the next sync run applies it."""
    assert erp.payment_status(invoice_id, trigger)["status"] == "accepted"
    run_sync(now)


def test_booking_system_test_plan(billing_env, booking_system, erp_client):
    warehouse: Path = billing_env["warehouse"]

    # 1. create invoice -> webhook received, booking tagged invoiced
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_sync("2026-02-01T12:00:00Z")
    initech, hooli = invoice_of(warehouse, "initech_003"), invoice_of(warehouse, "hooli_005")
    seen = state(booking_system)
    assert seen["received"][BOOKING_PATH] == ["invoice.created", "invoice.issued"]
    bookings = seen["bookings"]
    for booking_id in ("bk_jan_10", "bk_jan_25"):
        assert bookings[booking_id]["status"] == "invoiced"
        assert bookings[booking_id]["invoice_id"] == initech
        assert bookings[booking_id]["tags"] == ["invoiced"]
    assert bookings["bk_feb_10"]["status"] == "confirmed"
    assert bookings["bk_hooli_15"] == {"booking_id": "bk_hooli_15", "customer_id": "hooli_005",
                                       "day": "2026-01-15", "status": "confirmed",
                                       "invoice_id": None, "tags": [], "flags": []}
    assert seen["finance_alerts"] == [] and seen["customer_notifications"] == []

    # 2. mark paid -> status updated and customer notified
    mark(erp_client, initech, "paid", "2026-02-03T09:00:00Z")
    seen = state(booking_system)
    assert [seen["bookings"][b]["status"] for b in ("bk_jan_10", "bk_jan_25", "bk_feb_10")] == [
        "paid", "paid", "confirmed"]
    [(number, total)] = query(warehouse, """SELECT invoice_number, CAST(total AS DECIMAL(18, 2))
        FROM billing.invoices WHERE invoice_id = $i""", {"i": initech})
    assert seen["customer_notifications"] == [{
        "customer_id": "initech_003", "invoice_id": initech, "number": number,
        "booking_ids": ["bk_jan_10", "bk_jan_25"],
        "message": f"payment of {total} USD received, thank you"}]
    assert seen["finance_alerts"] == []

    # 3. mark refunded -> booking flagged and finance alerted
    mark(erp_client, initech, "refunded", "2026-02-05T09:00:00Z")
    seen = state(booking_system)
    assert seen["bookings"]["bk_jan_10"]["flags"] == ["refunded:full"]
    assert seen["bookings"]["bk_jan_25"]["flags"] == ["refunded:full"]
    assert seen["bookings"]["bk_feb_10"]["flags"] == []
    assert [(a["type"], a["invoice_id"], a["customer_id"], a["total"])
            for a in seen["finance_alerts"]] == [
        ("invoice.refunded", initech, "initech_003", str(total))]

    # 4. mark failed (another customer's invoice) -> finance alerted, booking system untouched
    mark(erp_client, hooli, "payment_failed", "2026-02-06T09:00:00Z")
    seen = state(booking_system)
    assert [(a["type"], a["invoice_id"]) for a in seen["finance_alerts"]] == [
        ("invoice.refunded", initech), ("invoice.payment_failed", hooli)]
    assert seen["received"][BOOKING_PATH] == [
        "invoice.created", "invoice.issued", "invoice.paid", "invoice.refunded"]
    assert seen["bookings"]["bk_hooli_15"]["status"] == "confirmed"

    # every notification verifies with the reference library, none was refused or repeated
    assert seen["refused"] == [] and seen["duplicates"] == 0
    secrets = {BOOKING_PATH: BOOKING_SECRET, FINANCE_PATH: FINANCE_SECRET}
    for request in booking_system.requests:
        Webhook(secrets[request.path]).verify(request.body, request.headers)
    assert query(warehouse, """SELECT status, count(*) FROM notify.deliveries
        GROUP BY ALL""") == [("delivered", 6)]
    assert query(warehouse, "SELECT count(*) FROM notify.delivery_attempts")[0][0] == 6


def test_booking_system_refuses_tampered_and_stale_and_takes_a_message_once(booking_system):
    body = (b'{"type":"invoice.paid","data":{"invoice":{"invoice_id":"inv_x",'
            b'"customer":{"id":"initech_003"},"total":"50.00","currency":"USD"}}}')

    def post(payload: bytes, headers: dict[str, str]) -> int:
        return httpx.post(booking_system.url(BOOKING_PATH), content=payload, headers=headers,
                          timeout=5).status_code

    now = int(time.time())
    good = sign_headers(BOOKING_SECRET, "msg_once", now, body)
    assert post(body.replace(b"50.00", b"0.01"), good) == 401          # tampered body
    assert post(body, sign_headers(FINANCE_SECRET, "msg_once", now, body)) == 401  # wrong key
    assert post(body, sign_headers(BOOKING_SECRET, "msg_once", now - 600, body)) == 400  # stale
    assert post(body, {k: v for k, v in good.items() if k != "webhook-signature"}) == 400
    assert post(body, good) == 204
    assert post(body, good) == 204                                      # a retry: taken once
    seen = state(booking_system)
    assert seen["received"][BOOKING_PATH] == ["invoice.paid"]
    assert seen["duplicates"] == 1
    assert [r["status"] for r in seen["refused"]] == [401, 401, 400, 400]
