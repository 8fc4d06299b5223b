"""The integration API over real HTTP: `python -m pipelines.cli api` run by uvicorn on
127.0.0.1, called with httpx. Invoices are published into the API's store the way the pipeline
does (ApiStore.publish_invoices); the pipeline's side of the inbox is played with mark_item."""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from devkit.api_client import ApiError
from devkit.stripe_emulator.webhooks import signature_header
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine
from tests.support.api import (
    WEBHOOK_SECRETS,
    RunningApi,
    assert_validation_error,
    error,
    start_api,
    stop_api,
)

CUSTOM = "/api/v1/apps/custom-invoicing/invoices"
LINES = (PublishedLine("ln_usage", "usage"), PublishedLine("ln_flat", "flat"),
         PublishedLine("ln_min", "minimum_commitment"), PublishedLine("ln_disc", "discount"))


def invoice(invoice_id: str, status: str, *, app: str = "custom_invoicing") -> PublishedInvoice:
    return PublishedInvoice(invoice_id=invoice_id, customer_id="acme_corp_001", app=app,
                            status=status, currency="USD", total=Decimal("1234.50"),
                            lines=LINES)


DRAFT_BODY = {"invoicing": {"invoice_number": "ERP-1", "external_id": "erp_1",
                            "line_external_ids": [{"line_id": "ln_usage", "external_id": "e1"},
                                                  {"line_id": "ln_flat", "external_id": "e2"}],
                            "line_discount_external_ids": [
                                {"line_discount_id": "ln_disc", "external_id": "e3"}]}}
ISSUING_BODY = {"invoicing": {"invoice_number": "ERP-1",
                              "sent_to_customer_at": "2026-02-01T10:00:00+01:00"},
                "payment": {"external_id": "pay_1"}}


# ---------------------------------------------------------------------- auth


def test_health_needs_no_token(api: RunningApi) -> None:
    response = api.get("/api/v1/health", token=None)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_missing_malformed_and_unknown_tokens_get_401(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_auth", "draft.syncing")])
    path = f"{CUSTOM}/inv_auth/draft/synchronized"
    missing = api.post(path, DRAFT_BODY, token=None)
    assert missing.status_code == 401
    assert error(missing)["code"] == "missing_token"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    basic = api.post(path, DRAFT_BODY, token=None, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and error(basic)["code"] == "invalid_token"
    unknown = api.post(path, DRAFT_BODY, token=None,
                       headers={"Authorization": "Bearer bpk_not_a_token"})
    assert unknown.status_code == 401 and error(unknown)["code"] == "invalid_token"
    assert not [i for i in api.store.pending_items() if i.invoice_id == "inv_auth"]


def test_revoked_token_is_refused(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_revoke", "payment_processing.pending")])
    api.tokens["temp"] = api.store.create_token("temp", ["payments:write"])
    path = f"{CUSTOM}/inv_revoke/payment/status"
    assert api.post(path, {"trigger": "payment_failed"}, token="temp").status_code == 202
    assert api.store.revoke_token("temp") is True
    refused = api.post(path, {"trigger": "paid"}, token="temp")
    assert refused.status_code == 401
    assert error(refused)["code"] == "invalid_token"
    assert api.store.revoke_token("temp") is False   # nothing active left by that name


def test_wrong_scope_gets_403(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_scope", "payment_processing.pending")])
    payment = api.post(f"{CUSTOM}/inv_scope/payment/status", {"trigger": "paid"}, token="sync")
    assert payment.status_code == 403
    assert error(payment)["code"] == "insufficient_scope"
    assert "payments:write" in str(error(payment)["message"])
    draft = api.post(f"{CUSTOM}/inv_scope/draft/synchronized", DRAFT_BODY, token="pay")
    assert draft.status_code == 403
    stripe_token = api.post(f"{CUSTOM}/inv_scope/payment/status", {"trigger": "paid"},
                            token="stripe")
    assert stripe_token.status_code == 403
    webhook = api.post("/api/v1/webhooks/stripe", {"id": "evt_x", "type": "x"}, token="both")
    assert webhook.status_code == 403
    # the right scope passes on the same invoice
    assert api.post(f"{CUSTOM}/inv_scope/payment/status", {"trigger": "paid"},
                    token="pay").status_code == 202


# ---------------------------------------------------------------------- 404


def test_unknown_invoice_and_other_apps_get_404(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_on_stripe", "draft.syncing", app="stripe")])
    for invoice_id in ("inv_never_published", "inv_on_stripe"):
        response = api.post(f"{CUSTOM}/{invoice_id}/draft/synchronized", DRAFT_BODY)
        assert response.status_code == 404, response.text
        assert error(response)["code"] == "invoice_not_found"
        assert api.get(f"{CUSTOM}/{invoice_id}").status_code == 404
    route = api.post("/api/v1/nowhere", {})
    assert route.status_code == 404 and error(route)["code"] == "not_found"
    method = api.get(f"{CUSTOM}/inv_on_stripe/draft/synchronized")
    assert method.status_code == 405 and error(method)["code"] == "method_not_allowed"


# ---------------------------------------------------------------------- 422


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"invoicing": {**DRAFT_BODY["invoicing"], "line_external_ids": [
        {"line_id": "ln_usage", "external_id": "e1"}, {"line_id": "ln_flat", "external_id": "e2"},
        {"line_id": "ln_elsewhere", "external_id": "e3"}]}},
     "invoicing.line_external_ids[2].line_id", "unknown line of this invoice"),
    ({"invoicing": {**DRAFT_BODY["invoicing"], "line_external_ids": [
        {"line_id": "ln_disc", "external_id": "e1"}]}},
     "invoicing.line_external_ids[0].line_id", "discount"),
    ({"invoicing": {**DRAFT_BODY["invoicing"], "line_discount_external_ids": [
        {"line_discount_id": "ln_usage", "external_id": "e1"}]}},
     "invoicing.line_discount_external_ids[0].line_discount_id", "not a discount line"),
    ({"invoicing": {**DRAFT_BODY["invoicing"], "line_external_ids": [
        {"line_id": "ln_usage", "external_id": "e1"},
        {"line_id": "ln_usage", "external_id": "e9"}]}},
     "invoicing.line_external_ids[1].line_id", "more than once"),
    ({"invoicing": {"invoice_number": "ERP-1"}}, "invoicing.external_id", "required"),
    ({"invoicing": {"external_id": ""}}, "invoicing.external_id", "non-empty"),
    ({"invoicing": {"external_id": "x", "colour": "red"}}, "invoicing.colour", "unknown field"),
    ({"invoicing": {"external_id": "x"}, "extra": 1}, "extra", "unknown field"),
    ([1, 2], "body", "object"),
])
def test_bad_draft_body_gets_422_naming_the_field(api: RunningApi, body: object, field: str,
                                                  words: str) -> None:
    api.store.publish_invoices([invoice("inv_422", "draft.syncing")])
    before = api.store.pending_count()
    assert_validation_error(api.post(f"{CUSTOM}/inv_422/draft/synchronized", body), field,
                            words)
    assert api.store.pending_count() == before


def test_bad_issuing_payment_and_json_bodies_get_422(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_422b", "issuing.syncing")])
    naive = api.post(f"{CUSTOM}/inv_422b/issuing/synchronized",
                     {"invoicing": {"sent_to_customer_at": "2026-02-01T10:00:00"}})
    assert naive.status_code == 422
    assert error(naive)["field"] == "invoicing.sent_to_customer_at"
    missing = api.post(f"{CUSTOM}/inv_422b/issuing/synchronized", {"payment": {}})
    assert error(missing)["field"] == "invoicing"
    trigger = api.post(f"{CUSTOM}/inv_422b/payment/status", {"trigger": "settled"},
                       token="pay")
    assert trigger.status_code == 422 and error(trigger)["field"] == "trigger"
    assert "payment_failed" in str(error(trigger)["message"])
    broken = api.post(f"{CUSTOM}/inv_422b/payment/status", content=b"{not json", token="pay")
    assert broken.status_code == 422 and error(broken)["field"] == "body"


# ---------------------------------------------------------------------- 409 and projection


def test_call_in_the_wrong_state_gets_409_with_the_current_state(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_409", "draft.syncing")])
    issuing = api.post(f"{CUSTOM}/inv_409/issuing/synchronized", ISSUING_BODY)
    assert issuing.status_code == 409
    assert error(issuing)["code"] == "invalid_state"
    assert error(issuing)["current_state"] == "draft.syncing"
    payment = api.post(f"{CUSTOM}/inv_409/payment/status", {"trigger": "paid"}, token="pay")
    assert payment.status_code == 409
    assert error(payment)["current_state"] == "draft.syncing"


def test_accepted_calls_project_the_state_until_the_pipeline_decides(api: RunningApi) -> None:
    store = api.store
    store.publish_invoices([invoice("inv_flow", "draft.syncing")])
    first = api.post(f"{CUSTOM}/inv_flow/draft/synchronized", DRAFT_BODY)
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert accepted["status"] == "accepted" and accepted["projected_state"] == "issuing"
    item_id = accepted["inbox_item_id"]
    # a different draft callback cannot also pass: the invoice is projected to `issuing`
    other = {"invoicing": {**DRAFT_BODY["invoicing"], "external_id": "erp_other"}}
    second = api.post(f"{CUSTOM}/inv_flow/draft/synchronized", other)
    assert second.status_code == 409
    assert error(second)["current_state"] == "issuing"
    view = api.get(f"{CUSTOM}/inv_flow").json()
    assert (view["status"], view["projected_state"], view["pending_calls"]) == (
        "draft.syncing", "issuing", 1)
    assert view["total"] == "1234.50"
    # the pipeline applied it but has not published since: still projected
    store.mark_item(item_id, "applied", None, datetime(2026, 2, 1, 12, 5, tzinfo=UTC))
    assert api.post(f"{CUSTOM}/inv_flow/draft/synchronized", other).status_code == 409
    # the pipeline publishes the real state: issuing.syncing now takes the issuing callback
    store.publish_invoices([invoice("inv_flow", "issuing.syncing")])
    issued = api.post(f"{CUSTOM}/inv_flow/issuing/synchronized", ISSUING_BODY)
    assert issued.status_code == 202
    assert issued.json()["projected_state"] == "payment_processing.pending"
    assert api.post(f"{CUSTOM}/inv_flow/payment/status", {"trigger": "paid"},
                    token="pay").status_code == 202
    refund = api.post(f"{CUSTOM}/inv_flow/payment/status", {"trigger": "refunded"},
                      token="pay")
    assert refund.status_code == 202 and refund.json()["projected_state"] == "refunded"
    late = api.post(f"{CUSTOM}/inv_flow/payment/status", {"trigger": "payment_failed"},
                    token="pay")
    assert late.status_code == 409 and error(late)["current_state"] == "refunded"


def test_a_rejected_call_frees_the_state_for_a_corrected_one(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_retry", "draft.syncing")])
    first = api.post(f"{CUSTOM}/inv_retry/draft/synchronized", DRAFT_BODY).json()
    api.store.mark_item(first["inbox_item_id"], "rejected",
                        "invoicing.invoice_number: ERP-1 is another invoice's number",
                        datetime(2026, 2, 1, 12, 5, tzinfo=UTC))
    outcome = api.get(f"/api/v1/inbox-items/{first['inbox_item_id']}").json()
    assert outcome["status"] == "rejected" and "another invoice" in outcome["reason"]
    fixed = {"invoicing": {**DRAFT_BODY["invoicing"], "invoice_number": "ERP-2"}}
    response = api.post(f"{CUSTOM}/inv_retry/draft/synchronized", fixed)
    assert response.status_code == 202
    assert response.json()["inbox_item_id"] > first["inbox_item_id"]


def test_a_payment_trigger_for_the_current_state_is_a_conflict(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_paid", "paid")])
    again = api.post(f"{CUSTOM}/inv_paid/payment/status", {"trigger": "paid"}, token="pay",
                     headers={"Idempotency-Key": "erp-pay-2"})
    assert again.status_code == 409
    assert error(again)["code"] == "already_in_state"
    assert error(again)["current_state"] == "paid"


def test_concurrent_calls_are_each_checked_against_the_ones_before(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_race", "payment_processing.pending")])
    triggers = ["paid", "void", "payment_uncollectible", "payment_overdue"] * 4

    def call(index: int) -> int:
        target = triggers[index]
        return api.post(f"{CUSTOM}/inv_race/payment/status", {"trigger": target}, token="pay",
                        headers={"Idempotency-Key": f"race-{index}"}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(call, range(len(triggers))))
    # several may pass (overdue -> uncollectible -> paid is a valid chain), but each accepted
    # call must be valid from the state the calls accepted before it projected
    accepted = [i for i in api.store.pending_items() if i.invoice_id == "inv_race"]
    assert codes.count(202) == len(accepted)
    assert set(codes) <= {202, 409}
    from pipelines.rating.lifecycle import PAYMENT_TRIGGERS, payment_path

    state = "payment_processing.pending"
    for item in accepted:
        target = PAYMENT_TRIGGERS[item.body["trigger"]]
        assert payment_path(state, target), (state, target)
        state = target
    assert state in ("paid", "voided")   # both are terminal for these triggers


# ---------------------------------------------------------------------- replays


def test_a_replayed_call_is_answered_as_the_first(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_replay", "issuing.syncing")])
    path = f"{CUSTOM}/inv_replay/issuing/synchronized"
    first = api.post(path, ISSUING_BODY)
    before = api.store.pending_count()
    replay = api.post(path, ISSUING_BODY)
    assert replay.status_code == first.status_code == 202
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert api.store.pending_count() == before
    # the same answer once the pipeline has moved the invoice on, even with keys reordered
    api.store.publish_invoices([invoice("inv_replay", "payment_processing.pending")])
    reordered = json.dumps({"payment": {"external_id": "pay_1"},
                            "invoicing": {"sent_to_customer_at": "2026-02-01T10:00:00+01:00",
                                          "invoice_number": "ERP-1"}}).encode()
    later = api.post(path, content=reordered)
    assert later.status_code == 202 and later.json() == first.json()


def test_an_idempotency_key_reused_for_another_body_gets_409(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_key", "payment_processing.pending")])
    path = f"{CUSTOM}/inv_key/payment/status"
    key = {"Idempotency-Key": "erp-call-77"}
    first = api.post(path, {"trigger": "payment_failed"}, token="pay", headers=key)
    assert first.status_code == 202
    assert api.post(path, {"trigger": "payment_failed"}, token="pay",
                    headers=key).json() == first.json()
    reused = api.post(path, {"trigger": "paid"}, token="pay", headers=key)
    assert reused.status_code == 409
    assert error(reused)["code"] == "idempotency_key_reused"
    other_path = api.post(f"{CUSTOM}/inv_paid/payment/status", {"trigger": "payment_failed"},
                          token="pay", headers=key)
    assert error(other_path)["code"] == "idempotency_key_reused"


def test_an_idempotency_key_belongs_to_the_token_that_sent_it(api: RunningApi) -> None:
    """Two integrations (two tokens of one scope) choosing the same key make two calls: one's
    call is never answered with the other's stored answer."""
    api.store.publish_invoices([invoice("inv_key_tokens", "payment_processing.pending")])
    path = f"{CUSTOM}/inv_key_tokens/payment/status"
    key = {"Idempotency-Key": "erp-shared-1"}
    first = api.post(path, {"trigger": "payment_failed"}, token="pay", headers=key)
    assert first.status_code == 202
    other = api.post(path, {"trigger": "payment_failed"}, token="both", headers=key)
    assert "idempotent-replayed" not in other.headers
    assert other.status_code == 409 and error(other)["code"] == "already_in_state"
    paid = api.post(path, {"trigger": "paid"}, token="both", headers=key)
    assert paid.status_code == 202 and "idempotent-replayed" not in paid.headers
    replay = api.post(path, {"trigger": "payment_failed"}, token="pay", headers=key)
    assert replay.headers["idempotent-replayed"] == "true" and replay.json() == first.json()
    # without a key, the same body from another token is another call too
    unkeyed = api.post(path, {"trigger": "refunded"}, token="pay")
    assert unkeyed.status_code == 202
    again = api.post(path, {"trigger": "refunded"}, token="both")
    assert "idempotent-replayed" not in again.headers and again.status_code == 409


def test_client_helper_raises_with_status_and_body(api: RunningApi) -> None:
    api.store.publish_invoices([invoice("inv_client", "draft.syncing")])
    with api.client() as client:
        answer = client.draft_synchronized(
            "inv_client", external_id="erp_c", invoice_number="ERP-C",
            line_external_ids=[{"line_id": "ln_usage", "external_id": "c1"}],
            line_discount_external_ids=[{"line_discount_id": "ln_disc", "external_id": "c2"}])
        assert answer["projected_state"] == "issuing"
        assert client.invoice("inv_client")["projected_state"] == "issuing"
        with pytest.raises(ApiError) as refused:
            client.issuing_synchronized("inv_client", sent_to_customer_at=datetime.now(UTC))
        assert refused.value.status_code == 409
        assert refused.value.code == "invalid_state"
        assert refused.value.current_state == "issuing"
        with pytest.raises(ApiError) as unknown:
            client.payment_status("inv_nobody", "paid")
        assert unknown.value.status_code == 404
    item = api.store.inbox_item(answer["inbox_item_id"])
    assert item is not None and item.token_name == "erp"
    assert item.body["invoicing"]["line_discount_external_ids"] == [
        {"line_discount_id": "ln_disc", "external_id": "c2"}]


# ---------------------------------------------------------------------- Stripe webhooks


def stripe_event(event_id: str) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": "invoice.paid",
                       "created": 1769947200, "livemode": False,
                       "data": {"object": {"id": "in_123", "object": "invoice",
                                           "status": "paid"}}})


def test_stripe_webhook_signed_event_is_stored_once(api: RunningApi) -> None:
    payload = stripe_event("evt_signed_1")
    signed = {"Stripe-Signature": signature_header(payload, WEBHOOK_SECRETS[1])}
    first = api.post("/api/v1/webhooks/stripe", content=payload.encode(), token=None,
                     params={"token": api.tokens["stripe"]}, headers=signed)
    assert first.status_code == 202, first.text
    assert first.json()["event_id"] == "evt_signed_1"
    item = api.store.inbox_item(first.json()["inbox_item_id"])
    assert item is not None and item.kind == "stripe.event" and item.status == "pending"
    assert item.body == json.loads(payload)
    # Stripe retries with a new signature: same answer, no second item
    resigned = {"Stripe-Signature": signature_header(payload, WEBHOOK_SECRETS[0],
                                                     int(time.time()) - 5)}
    retry = api.post("/api/v1/webhooks/stripe", content=payload.encode(), token="stripe",
                     headers=resigned)
    assert retry.status_code == 202 and retry.json() == first.json()


def test_stripe_webhook_tampered_or_stale_signature_gets_400(api: RunningApi) -> None:
    payload = stripe_event("evt_bad_1")
    header = signature_header(payload, WEBHOOK_SECRETS[1])
    tampered = api.post("/api/v1/webhooks/stripe", token="stripe",
                        content=payload.replace("invoice.paid", "invoice.voided").encode(),
                        headers={"Stripe-Signature": header})
    assert tampered.status_code == 400
    assert error(tampered)["code"] == "invalid_signature"
    stale = api.post("/api/v1/webhooks/stripe", token="stripe", content=payload.encode(),
                     headers={"Stripe-Signature": signature_header(
                         payload, WEBHOOK_SECRETS[1], int(time.time()) - 301)})
    assert stale.status_code == 400
    assert "tolerance" in str(error(stale)["message"]).lower()
    wrong_secret = api.post("/api/v1/webhooks/stripe", token="stripe", content=payload.encode(),
                            headers={"Stripe-Signature": signature_header(payload, "whsec_x")})
    assert wrong_secret.status_code == 400
    unsigned = api.post("/api/v1/webhooks/stripe", token="stripe", content=payload.encode())
    assert unsigned.status_code == 400
    no_token = api.post("/api/v1/webhooks/stripe", token=None, content=payload.encode(),
                        headers={"Stripe-Signature": header})
    assert no_token.status_code == 401
    assert not any(i.body.get("id") == "evt_bad_1" for i in api.store.pending_items())


def test_stripe_webhook_signed_beyond_the_tolerance_ahead_gets_400(api: RunningApi) -> None:
    """A signature dated in the future would stay valid until then plus the tolerance."""
    payload = stripe_event("evt_future_1")
    ahead = api.post("/api/v1/webhooks/stripe", token="stripe", content=payload.encode(),
                     headers={"Stripe-Signature": signature_header(
                         payload, WEBHOOK_SECRETS[1], int(time.time()) + 360)})
    assert ahead.status_code == 400
    assert error(ahead)["code"] == "invalid_signature"
    assert "tolerance" in str(error(ahead)["message"]).lower()
    assert not any(i.body.get("id") == "evt_future_1" for i in api.store.pending_items())
    skewed = api.post("/api/v1/webhooks/stripe", token="stripe", content=payload.encode(),
                      headers={"Stripe-Signature": signature_header(
                          payload, WEBHOOK_SECRETS[1], int(time.time()) + 60)})
    assert skewed.status_code == 202, skewed.text   # a clock a minute ahead is within it


def test_no_plaintext_token_in_the_store_or_the_log(api: RunningApi) -> None:
    # a query-string token was used above; make sure of it here too
    payload = stripe_event("evt_log_1")
    api.post("/api/v1/webhooks/stripe", content=payload.encode(), token=None,
             params={"token": api.tokens["stripe"]},
             headers={"Stripe-Signature": signature_header(payload, WEBHOOK_SECRETS[1])})
    files = [Path(api.store.path + suffix) for suffix in ("", "-wal")]
    stored = b"".join(f.read_bytes() for f in files if f.exists())
    log = api.server.output()
    assert "POST /api/v1/webhooks/stripe 202" in log
    for token in api.tokens.values():
        assert token.encode() not in stored
        assert token not in log
    assert {t.name for t in api.store.list_tokens()} >= {"erp", "stripe"}


# ---------------------------------------------------------------------- durability


def test_a_call_answered_202_survives_sigkill_of_the_api(tmp_path: Path) -> None:
    store_path = tmp_path / "api_store.sqlite"
    store = ApiStore(str(store_path))
    token = store.create_token("erp", ["payments:write"])
    store.publish_invoices([invoice("inv_kill", "payment_processing.pending")])
    api = start_api(store_path, tmp_path / "api.log")
    try:
        response = httpx.post(f"{api.url}{CUSTOM}/inv_kill/payment/status",
                              json={"trigger": "paid"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=30)
        api.process.send_signal(signal.SIGKILL)
        api.process.wait(timeout=30)
    finally:
        stop_api(api)
    assert response.status_code == 202
    assert api.process.returncode == -signal.SIGKILL
    [item] = ApiStore(str(store_path)).pending_items()
    assert (item.item_id, item.invoice_id, item.body, item.status) == (
        response.json()["inbox_item_id"], "inv_kill", {"trigger": "paid"}, "pending")
    # a new API process answers the replay as the first call was answered
    again = start_api(store_path, tmp_path / "api2.log")
    try:
        replay = httpx.post(f"{again.url}{CUSTOM}/inv_kill/payment/status",
                            json={"trigger": "paid"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    finally:
        stop_api(again)
    assert replay.status_code == 202 and replay.json() == response.json()
    assert ApiStore(str(store_path)).pending_count() == 1
