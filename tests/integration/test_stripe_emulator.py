"""The local Stripe emulator, driven by the official stripe SDK over real HTTP (no mocks)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import stripe

from devkit.stripe_emulator import Faults, StripeEmulator
from tests.support.environment import REPO, STRIPE_FIXTURES

API_KEY = "sk_test_emulator_tests"
FIXTURES = STRIPE_FIXTURES


@pytest.fixture(scope="module")
def emulator():
    with StripeEmulator(webhook_retry_delays=(0.05, 0.05)) as emu:
        yield emu


@pytest.fixture(autouse=True)
def fresh(emulator):
    emulator.reset()
    yield


def make_client(emulator: StripeEmulator, key: str = API_KEY, retries: int = 0):
    return stripe.StripeClient(
        key, base_addresses={"api": emulator.base_url}, max_network_retries=retries
    )


@pytest.fixture
def client(emulator):
    return make_client(emulator)


def event_types(client, **params) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": 100, **params}).data]


def open_invoice(client, amount: int = 5000, **invoice_params) -> stripe.Invoice:
    customer = client.v1.customers.create(params={"name": "Acme"})
    invoice = client.v1.invoices.create(params={"customer": customer.id, **invoice_params})
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": amount, "currency": "usd"}
    )
    return client.v1.invoices.finalize_invoice(invoice.id)


# ----------------------------------------------------------------------------- lifecycle


def test_invoice_lines_finalize_and_totals(client):
    customer = client.v1.customers.create(
        params={"name": "Acme Corp", "email": "billing@acme.com", "metadata": {"billing_id": "a1"}}
    )
    invoice = client.v1.invoices.create(
        params={
            "customer": customer.id,
            "collection_method": "send_invoice",
            "days_until_due": 30,
            "auto_advance": False,
            "currency": "usd",
            "description": "January usage",
            "metadata": {"invoice_id": "inv_internal_1"},
        }
    )
    assert (invoice.status, invoice.total, invoice.number) == ("draft", 0, None)

    fee = client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": invoice.id,
            "amount": 1000,
            "currency": "usd",
            "description": "Platform fee",
        }
    )
    usage = client.v1.invoice_items.create(
        params={
            "customer": customer.id,
            "invoice": invoice.id,
            "unit_amount_decimal": "0.8",
            "quantity": 1001,
            "description": "API calls",
            "metadata": {"line_id": "l2"},
        }
    )
    assert (fee.amount, usage.amount) == (1000, 801)  # 800.8 rounded half away from zero
    pending = client.v1.invoice_items.create(
        params={"customer": customer.id, "amount": 250, "currency": "usd"}
    )
    assert pending.invoice is None

    invoice = client.v1.invoices.add_lines(
        invoice.id,
        params={
            "lines": [
                {
                    "price_data": {
                        "currency": "usd",
                        "product_data": {"name": "Storage"},
                        "unit_amount_decimal": "25",
                    },
                    "quantity": 3,
                    "description": "Storage GB",
                },
                {"invoice_item": pending.id},
            ]
        },
    )
    assert invoice.subtotal == invoice.total == 1000 + 801 + 75 + 250
    assert [line.amount for line in invoice.lines.data] == [1000, 801, 75, 250]
    assert invoice.lines.data[1].parent.invoice_item_details.invoice_item == usage.id

    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    assert invoice.status == "open"
    assert invoice.number == f"{customer.invoice_prefix}-0001"
    assert invoice.amount_due == invoice.amount_remaining == 2126
    assert invoice.amount_paid == 0
    assert invoice.hosted_invoice_url.startswith(client_base(client))
    assert invoice.due_date == invoice.status_transitions.finalized_at + 30 * 86400

    page = httpx.get(invoice.hosted_invoice_url)
    assert page.status_code == 200 and "$21.26" in page.text

    second = open_invoice_for(client, customer.id, 100)
    assert second.number == f"{customer.invoice_prefix}-0002"
    assert client.v1.customers.retrieve(customer.id).next_invoice_sequence == 3


def client_base(client) -> str:
    return client._requestor._options.base_addresses["api"]


def open_invoice_for(client, customer_id: str, amount: int) -> stripe.Invoice:
    invoice = client.v1.invoices.create(params={"customer": customer_id})
    client.v1.invoice_items.create(
        params={"customer": customer_id, "invoice": invoice.id, "amount": amount}
    )
    return client.v1.invoices.finalize_invoice(invoice.id)


def test_a_failed_request_changes_nothing(emulator, client):
    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    before = emulator.stats()["objects"]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.add_lines(
            invoice.id,
            params={
                "lines": [
                    {"amount": 500, "description": "fine"},
                    {"pricing": {"price": "price_missing"}, "quantity": 2},
                ]
            },
        )
    assert (err.value.http_status, err.value.param) == (404, "lines[1][pricing][price]")
    assert client.v1.invoices.retrieve(invoice.id).lines.data == []
    assert client.v1.invoice_items.list().data == []
    assert emulator.stats()["objects"] == before


def test_zero_total_invoice_is_paid_on_finalize(client):
    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    assert (invoice.status, invoice.amount_due) == ("paid", 0)
    assert event_types(client)[:2] == ["invoice.paid", "invoice.finalized"]


def test_below_minimum_charge_is_paid_and_carried_to_the_balance(client):
    customer = client.v1.customers.create()
    small = open_invoice_for(client, customer.id, 30)  # USD minimum charge is 50 cents
    assert (small.status, small.amount_due, small.amount_paid, small.amount_remaining) == (
        "paid",
        30,
        0,
        0,
    )
    assert small.ending_balance == 30
    assert client.v1.customers.retrieve(customer.id).balance == 30
    following = open_invoice_for(client, customer.id, 1000)
    assert (following.starting_balance, following.amount_due) == (30, 1030)
    assert client.v1.customers.retrieve(customer.id).balance == 0


def test_illegal_transitions_answer_stripe_400s(client):
    customer = client.v1.customers.create()
    draft = client.v1.invoices.create(params={"customer": customer.id})
    for action in (client.v1.invoices.void_invoice, client.v1.invoices.mark_uncollectible):
        with pytest.raises(stripe.InvalidRequestError) as err:
            action(draft.id)
        assert err.value.http_status == 400

    invoice = open_invoice(client, 700)
    with pytest.raises(stripe.InvalidRequestError, match="re-finalize a non-draft invoice"):
        client.v1.invoices.finalize_invoice(invoice.id)
    line = invoice.lines.data[0]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoice_items.update(
            line.parent.invoice_item_details.invoice_item, params={"amount": 1}
        )
    assert err.value.code == "invoice_not_editable"

    invoice = client.v1.invoices.mark_uncollectible(invoice.id)
    assert invoice.status == "uncollectible"
    invoice = client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 700, 0)
    for action in (client.v1.invoices.void_invoice, client.v1.invoices.mark_uncollectible):
        with pytest.raises(stripe.InvalidRequestError):
            action(invoice.id)
    with pytest.raises(stripe.InvalidRequestError, match="Invoice is already paid"):
        client.v1.invoices.pay(invoice.id, params={"paid_out_of_band": True})

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.retrieve("in_missing")
    assert (err.value.http_status, err.value.code) == (404, "resource_missing")
    assert str(err.value.user_message) == "No such invoice: 'in_missing'"


# ----------------------------------------------------------------------------- idempotency


def test_idempotent_replay_and_mismatch(emulator, client):
    params = {"name": "Acme", "metadata": {"billing_id": "acme_001"}}
    first = client.v1.customers.create(params=params, options={"idempotency_key": "cus-acme"})
    again = client.v1.customers.create(params=params, options={"idempotency_key": "cus-acme"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.customers.list().data) == 1

    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(
            params={"name": "Other"}, options={"idempotency_key": "cus-acme"}
        )
    assert err.value.http_status == 400
    assert err.value.error.type == "idempotency_error"
    assert "same parameters they were first used with" in err.value.user_message

    with pytest.raises(stripe.IdempotencyError, match="same endpoint"):
        client.v1.invoices.create(
            params={"customer": first.id}, options={"idempotency_key": "cus-acme"}
        )

    other_key = make_client(emulator, "sk_test_other_account_key")
    other = other_key.v1.customers.create(
        params={"name": "Other"}, options={"idempotency_key": "cus-acme"}
    )
    assert other.id != first.id  # keys are scoped per API key
    assert emulator.stats()["idempotent_replays"] == 1


def test_concurrent_request_with_same_key_gets_409(emulator, client):
    emulator.update_faults(latency_ms=400)
    results: list[object] = []

    def create():
        try:
            results.append(client.v1.customers.create(options={"idempotency_key": "race"}))
        except stripe.StripeError as exc:
            results.append(exc)

    first = threading.Thread(target=create)
    first.start()
    time.sleep(0.15)
    create()
    first.join()
    errors = [r for r in results if isinstance(r, stripe.StripeError)]
    assert len(errors) == 1 and errors[0].http_status == 409
    assert errors[0].error.code == "idempotency_key_in_use"


# ----------------------------------------------------------------------------- parameters


def test_unknown_parameters_are_rejected_like_stripe(client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create(params={"name": "Acme", "colour": "blue"})
    assert err.value.user_message == "Received unknown parameter: colour"
    assert (err.value.code, err.value.param, err.value.http_status) == (
        "parameter_unknown",
        "colour",
        400,
    )
    assert client.v1.customers.list().data == []

    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.add_lines(
            invoice.id, params={"lines": [{"amount": 5, "price": "price_123"}]}
        )
    assert err.value.user_message == "Received unknown parameter: lines[0][price]"

    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "cash"})
    assert err.value.user_message == (
        "Invalid collection_method: must be one of charge_automatically or send_invoice"
    )


# ----------------------------------------------------------------------------- search, lists


def test_search_by_metadata(emulator, client):
    acme = client.v1.customers.create(params={"name": "Acme", "metadata": {"billing_id": "acme"}})
    client.v1.customers.create(params={"name": "Globex", "metadata": {"billing_id": "globex"}})
    found = client.v1.customers.search(params={"query": "metadata['billing_id']:'acme'"})
    assert [c.id for c in found.data] == [acme.id]

    invoice = client.v1.invoices.create(
        params={"customer": acme.id, "metadata": {"invoice_id": "inv_1"}}
    )
    query = "metadata['invoice_id']:'inv_1' AND status:'draft'"
    assert [i.id for i in client.v1.invoices.search(params={"query": query}).data] == [invoice.id]
    query = "metadata['invoice_id']:'inv_1' AND status:'open'"
    assert client.v1.invoices.search(params={"query": query}).data == []

    with pytest.raises(stripe.InvalidRequestError, match="unsupported search field"):
        client.v1.invoices.search(params={"query": "colour:'red'"})

    emulator.update_faults(search_lag_seconds=60)  # Stripe's search is eventually consistent
    client.v1.customers.create(params={"metadata": {"billing_id": "late"}})
    assert client.v1.customers.search(params={"query": "metadata['billing_id']:'late'"}).data == []


def test_list_pagination_newest_first(client):
    created = [client.v1.customers.create(params={"name": f"c{i}"}).id for i in range(25)]
    newest_first = list(reversed(created))

    page1 = client.v1.customers.list(params={"limit": 10})
    assert [c.id for c in page1.data] == newest_first[:10] and page1.has_more
    page2 = client.v1.customers.list(params={"limit": 10, "starting_after": page1.data[-1].id})
    assert [c.id for c in page2.data] == newest_first[10:20] and page2.has_more
    page3 = client.v1.customers.list(params={"limit": 10, "starting_after": page2.data[-1].id})
    assert [c.id for c in page3.data] == newest_first[20:] and not page3.has_more
    back = client.v1.customers.list(params={"limit": 5, "ending_before": page2.data[0].id})
    assert [c.id for c in back.data] == newest_first[5:10] and back.has_more

    every = [c.id for c in client.v1.customers.list(params={"limit": 7}).auto_paging_iter()]
    assert every == newest_first

    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.list(params={"limit": 101})


def test_list_filters_and_expand(client):
    acme = client.v1.customers.create(params={"email": "a@acme.com"})
    other = client.v1.customers.create()
    draft = client.v1.invoices.create(params={"customer": acme.id})
    paid = open_invoice_for(client, acme.id, 100)
    client.v1.invoices.pay(paid.id, params={"paid_out_of_band": True})
    client.v1.invoices.create(params={"customer": other.id})

    drafts = client.v1.invoices.list(params={"customer": acme.id, "status": "draft"})
    assert [i.id for i in drafts.data] == [draft.id]
    listed = client.v1.invoices.list(params={"customer": acme.id, "expand": ["data.customer"]})
    assert {i.customer.email for i in listed.data} == {"a@acme.com"}
    assert client.v1.customers.list(params={"email": "a@acme.com"}).data[0].id == acme.id
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.invoices.retrieve(draft.id, params={"expand": ["colour"]})


# ----------------------------------------------------------------------------- payments, events


def test_events_after_pay_void_refund(emulator, client):
    customer = client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    invoice = open_invoice_for(client, customer.id, 5000)
    invoice = client.v1.invoices.pay(invoice.id)
    assert (invoice.status, invoice.amount_paid) == ("paid", 5000)
    since = client.v1.events.list(params={"limit": 1}).data[0].created
    emulator.advance_clock(5)  # later events get later `created` seconds

    payment = client.v1.invoice_payments.list(params={"invoice": invoice.id}).data[0]
    assert payment.status == "paid"
    refund = client.v1.refunds.create(
        params={"payment_intent": payment.payment.payment_intent, "amount": 1500}
    )
    assert (refund.status, refund.amount) == ("succeeded", 1500)
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (1500, False)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge.id, "amount": 4000})
    assert err.value.code == "amount_too_large"

    voided = client.v1.invoices.void_invoice(open_invoice_for(client, customer.id, 100).id)
    assert voided.status == "void"

    wanted = ["invoice.paid", "invoice.voided", "charge.refunded", "invoice.finalized"]
    types = event_types(client, types=wanted)
    assert types == [
        "invoice.voided",
        "invoice.finalized",
        "charge.refunded",
        "invoice.paid",
        "invoice.finalized",
    ]
    refunded = client.v1.events.list(params={"type": "charge.refunded"}).data[0]
    assert refunded.data.object.amount_refunded == 1500
    assert refunded.data.previous_attributes.amount_refunded == 0
    assert set(event_types(client, type="invoice.*")) >= {"invoice.paid", "invoice.voided"}
    later = event_types(client, created={"gt": since})
    assert "charge.refunded" in later and "invoice.paid" not in later


def test_declines_action_required_and_overdue(emulator, client):
    customer = client.v1.customers.create()
    invoice = open_invoice_for(client, customer.id, 900)
    with pytest.raises(stripe.CardError) as err:
        client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert (err.value.http_status, err.value.code) == (402, "card_declined")
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.status, invoice.attempt_count, invoice.attempted) == ("open", 1, True)
    assert event_types(client)[0] == "invoice.payment_failed"

    result = emulator.invoice_action(invoice.id, "payment_action_required")
    assert result["error"]["code"] == "invoice_payment_intent_requires_action"
    assert event_types(client)[0] == "invoice.payment_action_required"

    late = client.v1.invoices.create(
        params={"customer": customer.id, "collection_method": "send_invoice", "days_until_due": 1}
    )
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": late.id, "amount": 300}
    )
    client.v1.invoices.send_invoice(late.id)
    assert "invoice.overdue" not in event_types(client)
    httpx.post(f"{emulator.base_url}/_emulator/clock", json={"advance_seconds": 2 * 86400})
    assert event_types(client)[0] == "invoice.overdue"

    paid = httpx.post(f"{emulator.base_url}/_emulator/invoices/{late.id}/pay").json()
    assert paid["invoice"]["status"] == "paid"
    refund = httpx.post(f"{emulator.base_url}/_emulator/invoices/{late.id}/refund", json={})
    assert refund.json()["refund"]["amount"] == 300
    assert event_types(client)[:2] == ["charge.refunded", "refund.created"]


def test_credit_notes(client):
    invoice = open_invoice(client, 1000)
    note = client.v1.credit_notes.create(
        params={"invoice": invoice.id, "amount": 400, "memo": "goodwill"}
    )
    assert (note.type, note.amount, note.number) == ("pre_payment", 400, f"{invoice.number}-CN-01")
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.amount_due, invoice.amount_remaining) == (600, 600)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 601})
    client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 600})
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert event_types(client)[:2] == ["invoice.paid", "credit_note.created"]


# ----------------------------------------------------------------------------- faults


def test_rate_limit_burst_surfaces_as_rate_limit_error(emulator, client):
    response = httpx.post(
        f"{emulator.base_url}/_emulator/faults", json={"rate_limit_next": 2, "retry_after": 3}
    )
    assert response.json()["rate_limit_next"] == 2
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError) as err:
            client.v1.customers.create()
        assert err.value.http_status == 429
        assert err.value.headers["Retry-After"] == "3"
        assert err.value.error.code == "rate_limit"
    client.v1.customers.create()
    assert len(client.v1.customers.list().data) == 1
    assert emulator.stats()["faults_injected"]["rate_limit"] == 2


def test_token_bucket_rate_limit(emulator, client):
    emulator.faults = Faults(rps=2, burst=3)
    outcomes = []
    for _ in range(6):
        try:
            client.v1.customers.list()
            outcomes.append("ok")
        except stripe.RateLimitError as exc:
            outcomes.append(exc.headers["Retry-After"])
    assert outcomes[:3] == ["ok", "ok", "ok"]
    assert "1" in outcomes[3:]
    time.sleep(0.6)
    client.v1.customers.list()  # a token came back


def test_server_errors_are_not_saved_under_the_idempotency_key(emulator, client):
    emulator.update_faults(fail_next=1)
    with pytest.raises(stripe.APIError) as err:
        client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "k500"})
    assert err.value.http_status == 500 and err.value.error.type == "api_error"
    assert client.v1.customers.list().data == []
    created = client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "k500"})
    assert created.name == "x"


def test_dropped_response_leaves_the_object_and_retry_replays_it(emulator, client):
    customer = client.v1.customers.create()
    emulator.update_faults(drop_next=1, match="POST /v1/invoices")
    params = {"customer": customer.id, "metadata": {"invoice_id": "inv_9"}}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.invoices.create(params=params, options={"idempotency_key": "create-inv_9"})
    committed = client.v1.invoices.list(params={"customer": customer.id}).data
    assert len(committed) == 1  # the write happened although no answer came back

    retried = client.v1.invoices.create(params=params, options={"idempotency_key": "create-inv_9"})
    assert retried.id == committed[0].id
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1
    assert emulator.stats()["faults_injected"]["dropped"] == 1


def test_sdk_retries_recover_a_dropped_response(emulator):
    client = make_client(emulator, retries=2)
    emulator.update_faults(drop_next=1)
    customer = client.v1.customers.create(params={"name": "once"})
    assert [c.id for c in client.v1.customers.list().data] == [customer.id]
    assert emulator.stats()["idempotent_replays"] == 1


def test_latency(emulator, client):
    emulator.update_faults(latency_ms=250)
    started = time.monotonic()
    client.v1.customers.list()
    assert time.monotonic() - started >= 0.25


# ----------------------------------------------------------------------------- auth, control


def test_requests_without_a_valid_key_get_401(emulator):
    response = httpx.post(f"{emulator.base_url}/v1/customers", data={"name": "x"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("You did not provide an API key.")

    with pytest.raises(stripe.AuthenticationError, match=r"Invalid API Key provided: sk_live_\*+"):
        make_client(emulator, "sk_live_0123456789abcdef").v1.customers.list()

    basic = httpx.get(f"{emulator.base_url}/v1/customers", auth=(API_KEY, ""))
    assert basic.status_code == 200 and basic.json()["object"] == "list"
    assert emulator.stats()["by_status"]["401"] == 2


def test_unknown_url_and_stats_and_reset(emulator, client):
    response = httpx.get(
        f"{emulator.base_url}/v1/widgets", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message.startswith("Unrecognized request URL (GET: /v1/widgets)")

    invoice = open_invoice(client)
    stats = httpx.get(f"{emulator.base_url}/_emulator/stats").json()
    assert stats["by_route"]["POST /v1/invoices/{id}/finalize"] == 1
    assert stats["by_path"][f"POST /v1/invoices/{invoice.id}/finalize"] == 1
    assert stats["objects"]["invoice"] == 1 and stats["objects"]["customer"] == 1
    assert httpx.post(f"{emulator.base_url}/_emulator/reset").json() == {"reset": True}
    assert httpx.get(f"{emulator.base_url}/_emulator/stats").json()["objects"] == {}
    assert httpx.post(f"{emulator.base_url}/_emulator/faults", json={"nope": 1}).status_code == 400


def test_requests_execute_under_the_state_lock(emulator, client):
    done = threading.Event()

    def create() -> None:
        client.v1.customers.create()
        done.set()

    with emulator.state.lock:
        worker = threading.Thread(target=create)
        worker.start()
        assert not done.wait(0.3)  # waits for the lock the test holds
    assert done.wait(5)
    worker.join()


def test_concurrent_finalizes_number_invoices_without_gaps(client):
    customer = client.v1.customers.create()
    drafts = [client.v1.invoices.create(params={"customer": customer.id}) for _ in range(12)]
    for draft in drafts:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": draft.id, "amount": 100}
        )
    numbers: list[str] = []
    lock = threading.Lock()

    def finalize(invoice_id: str) -> None:
        number = client.v1.invoices.finalize_invoice(invoice_id).number
        with lock:
            numbers.append(number)

    threads = [threading.Thread(target=finalize, args=(d.id,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    prefix = customer.invoice_prefix
    assert sorted(numbers) == [f"{prefix}-{n:04d}" for n in range(1, 13)]


# ----------------------------------------------------------------------------- fidelity


def test_object_shapes_follow_stripe_fixtures(client):
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    customer = client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    invoice = client.v1.invoices.pay(open_invoice_for(client, customer.id, 2000).id)
    payment = client.v1.invoice_payments.list(params={"invoice": invoice.id}).data[0]
    intent = client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 1})
    note = client.v1.credit_notes.create(
        params={
            "invoice": invoice.id,
            "lines": [
                {"type": "custom_line_item", "unit_amount": 100, "quantity": 1, "description": "x"}
            ],
        }
    )
    objects = {
        "customer": customer,
        "invoice": invoice,
        "line_item": invoice.lines.data[0],
        "invoiceitem": client.v1.invoice_items.list().data[0],
        "invoice_payment": payment,
        "payment_intent": intent,
        "charge": client.v1.charges.retrieve(intent.latest_charge),
        "refund": refund,
        "credit_note": note,
        "event": client.v1.events.list().data[0],
    }
    sdk_classes = {"customer": stripe.Customer, "invoice": stripe.Invoice, "refund": stripe.Refund}
    for name, obj in objects.items():
        keys = set(obj.to_dict())
        assert not set(fixtures[name]) - keys, (name, set(fixtures[name]) - keys)
        extra = keys - set(fixtures[name])
        allowed = set(getattr(sdk_classes.get(name), "__annotations__", {}))
        assert extra <= allowed, (name, extra)


# ----------------------------------------------------------------------------- webhooks, cli


def test_webhooks_are_signed_and_delivered(emulator, client):
    received: list[tuple[bytes, str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers["Stripe-Signature"]))
            self.send_response(200 if len(received) > 1 else 500)  # first attempt fails
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        endpoint = client.v1.webhook_endpoints.create(
            params={
                "url": f"http://127.0.0.1:{receiver.server_address[1]}/hooks",
                "enabled_events": ["customer.created"],
            }
        )
        customer = client.v1.customers.create()
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(received) == 2  # delivered again after the 500
        body, signature = received[1]
        event = stripe.Webhook.construct_event(body, signature, endpoint.secret)
        assert event.type == "customer.created" and event.data.object.id == customer.id
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, signature, "whsec_wrong")
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_module_entry_point_serves_until_stopped():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devkit.stripe_emulator",
            "--port",
            "0",
            "--rate-limit-next",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        base = line.split("listening on ")[1].split()[0]
        headers = {"Authorization": f"Bearer {API_KEY}"}
        # a generous timeout: a loaded CI machine may be slow to answer the first request
        assert httpx.get(f"{base}/v1/customers", headers=headers,
                         timeout=60).status_code == 429
        assert httpx.get(f"{base}/v1/customers", headers=headers,
                         timeout=60).status_code == 200
    finally:
        proc.terminate()
        try:     # it stops on SIGTERM; a loaded machine may take a while to get there
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_a_request_cut_off_mid_body_is_not_acted_on(emulator, client):
    """A client killed after sending its headers and part of the body: Stripe never sees a
    complete request, so nothing is created (a truncated form would lose the metadata)."""
    import socket
    from urllib.parse import urlsplit

    base = urlsplit(emulator.base_url)
    body = b"name=Cut+Off&metadata[customer_id]=cut_001"
    head = (f"POST /v1/customers HTTP/1.1\r\nHost: {base.hostname}\r\n"
            f"Authorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection((base.hostname, base.port)) as sock:
        sock.sendall(head + body[:12])
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1024) == b""        # no answer: the connection is just closed
    assert list(client.v1.customers.list().data) == []
    complete = client.v1.customers.create(params={"name": "Whole",
                                                  "metadata": {"customer_id": "whole_001"}})
    assert complete.metadata["customer_id"] == "whole_001"
