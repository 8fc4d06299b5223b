"""Hostile input gets a clear 4xx from every route of the integration API, never a 5xx: bodies
hand-picked from the security review (200k-deep nesting, lone surrogates, an unhashable trigger,
instants in year 1, inbox item ids beyond SQLite's integers), then whatever hypothesis makes of
JSON, sent over real HTTP to `billing api` on 127.0.0.1. A 422 always names its field."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, cast
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from devkit.stripe_emulator.webhooks import signature_header
from pipelines.api import rules
from pipelines.api.app import create_app
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine
from tests.support.api import WEBHOOK_SECRETS, RunningApi, error

STRIPE_WEBHOOK = "/api/v1/webhooks/stripe"
# every route of the app, as (method, path template): the app is built only to list them
ROUTES = sorted((method, route.path)
                for route in create_app(cast(ApiStore, object())).routes
                if isinstance(route, Route) for method in route.methods or ()
                if method != "HEAD")
BODY_ROUTES = [(method, path) for method, path in ROUTES if method in ("POST", "PATCH", "PUT")]
LINES = (PublishedLine("ln_usage", "usage"), PublishedLine("ln_disc", "discount"),
         PublishedLine("ln_adj", "adjustment"))
# a published document in the state each call needs, so bodies reach validation
DOCUMENTS = {"inv_fz_draft": "draft", "inv_fz_dsync": "draft.syncing",
             "inv_fz_isync": "issuing.syncing", "inv_fz_pay": "payment_processing.pending"}
CREDIT_NOTES = {"cn_fz_dsync": "draft.syncing", "cn_fz_isync": "issuing.syncing"}
FIELD_NAMES = ("invoicing", "payment", "trigger", "invoice_number", "external_id",
               "line_external_ids", "line_discount_external_ids", "line_id", "line_discount_id",
               "sent_to_customer_at", "credit_note_number", "credit_note_line_id", "add",
               "remove", "description", "amount", "quantity", "unit_price", "as_of", "invoices",
               "credit_notes", "invoice_id", "external_customer_id", "currency", "total",
               "status", "amount_paid", "amount_refunded", "lines", "credit_note_id",
               "external_invoice_id", "id", "type",
               # customers and subscriptions (docs/crm.md)
               "name", "email", "billing_profile", "metadata", "customer", "plan",
               "start_date", "end_date", "billing_anchor", "collection_method",
               "days_until_due", "discounts", "percent", "periods")
YEAR_ONE = "0001-01-01T00:00:00+01:00"


@pytest.fixture(scope="module")
def fuzzed(api: RunningApi) -> RunningApi:
    """The module's API with its documents published and a token of every scope."""
    api.store.publish_invoices(
        [PublishedInvoice(i, "c1", "custom_invoicing", s, "EUR", Decimal("10"), LINES)
         for i, s in DOCUMENTS.items()]
        + [PublishedInvoice(i, "c1", "custom_invoicing", s, "EUR", Decimal("2"),
                            (PublishedLine("cnl_1", "credit", "ln_usage"),),
                            document_type=rules.CREDIT_NOTE_DOCUMENT,
                            corrects_invoice_id="inv_fz_pay")
           for i, s in CREDIT_NOTES.items()])
    api.tokens.setdefault("all", api.store.create_token("fuzz-all", rules.SCOPES))
    return api


def _send(api: RunningApi, method: str, path: str, content: bytes | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.tokens['all']}",
               "Content-Type": "application/json"}
    if path == STRIPE_WEBHOOK and content is not None:
        headers["Stripe-Signature"] = signature_header(content.decode(), WEBHOOK_SECRETS[1])
    return httpx.request(method, api.server.url + path, content=content, headers=headers,
                         timeout=60)


def _fill(path: str, *, invoice_id: str = "inv_fz_pay", credit_note_id: str = "cn_fz_dsync",
          item_id: int = 1, entry_id: str = "crm_fz") -> str:
    return (path.replace("{invoice_id}", quote(invoice_id, safe=""))
            .replace("{credit_note_id}", quote(credit_note_id, safe=""))
            .replace("{item_id:int}", str(item_id))
            .replace("{entry_id}", quote(entry_id, safe="")))


def _assert_clear_refusal(response: httpx.Response, field: str | None = None) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code == 422:
        named = error(response)["field"]
        assert named, response.text[:500]
        if field is not None:
            assert named == field, response.text[:500]


HOSTILE_BODIES = [
    pytest.param(b"[" * 200_000 + b"]" * 200_000, "body", id="array-200k-deep"),
    pytest.param(b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "body", id="object-100k-deep"),
    pytest.param(b'{"trigger": "\\ud800"}', "trigger", id="lone-surrogate"),
    pytest.param(b'{"invoicing": {"external_id": "a\\udfffb"}}', "invoicing.external_id",
                 id="lone-surrogate-deeper"),
    pytest.param(b'{"\\ud800": 1}', "\\ud800", id="lone-surrogate-key"),
    pytest.param(b'{"id": 1e999, "type": "x"}', "id", id="infinite-number"),
]


@pytest.mark.parametrize(("raw", "field"), HOSTILE_BODIES)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_hostile_bodies_get_422_naming_the_field_on_every_route(
        fuzzed: RunningApi, method: str, path: str, raw: bytes, field: str) -> None:
    response = _send(fuzzed, method, _fill(path, invoice_id="inv_fz_dsync"), raw)
    assert response.status_code == 422, response.text[:500]
    _assert_clear_refusal(response, field)


@pytest.mark.parametrize("trigger", [[], {}, ["paid"]])
def test_an_unhashable_trigger_gets_422(fuzzed: RunningApi, trigger: object) -> None:
    path = "/api/v1/apps/custom-invoicing/invoices/inv_fz_pay/payment/status"
    response = _send(fuzzed, "POST", path, json.dumps({"trigger": trigger}).encode())
    assert response.status_code == 422, response.text
    _assert_clear_refusal(response, "trigger")


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/apps/custom-invoicing/invoices/inv_fz_isync/issuing/synchronized",
     {"invoicing": {"sent_to_customer_at": YEAR_ONE}}, "invoicing.sent_to_customer_at"),
    ("/api/v1/apps/custom-invoicing/credit-notes/cn_fz_isync/issuing/synchronized",
     {"invoicing": {"sent_to_customer_at": YEAR_ONE}}, "invoicing.sent_to_customer_at"),
    ("/api/v1/apps/custom-invoicing/statement", {"as_of": YEAR_ONE, "invoices": []}, "as_of"),
])
def test_an_instant_in_year_one_gets_422(fuzzed: RunningApi, path: str, body: object,
                                         field: str) -> None:
    response = _send(fuzzed, "POST", path, json.dumps(body).encode())
    assert response.status_code == 422, response.text
    _assert_clear_refusal(response, field)


@pytest.mark.parametrize("item_id", [2 ** 63, 2 ** 64, 10 ** 30, 0])
def test_an_inbox_item_id_beyond_sqlite_is_not_found(fuzzed: RunningApi, item_id: int) -> None:
    response = _send(fuzzed, "GET", f"/api/v1/inbox-items/{item_id}", None)
    assert response.status_code == 404, response.text
    assert error(response)["code"] == "inbox_item_not_found"


# ---------------------------------------------------------------------- hypothesis

_texts = st.text(max_size=12) | st.sampled_from([
    "\ud800", "a\udfffb", "paid", "void", "refunded", "ln_usage", "ln_disc", "ln_adj", "cnl_1",
    "EUR", "12.50", "-3.00", "1e3", "2026-02-01T10:00:00Z", YEAR_ONE,
    "9999-12-31T23:59:59-01:00", "INV-202601-00001", "", " "])
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(10 ** 40), max_value=10 ** 40)
            | st.floats() | _texts)
_keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=6) | st.just("\udc80")
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_keys, inner, max_size=5), max_leaves=25)
_bodies = st.dictionaries(_keys, _json, max_size=6) | _json
_document_ids = st.sampled_from([*DOCUMENTS, *CREDIT_NOTES, "inv_unknown"]) | st.text(max_size=8)


@pytest.mark.parametrize(("method", "path"), ROUTES)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=_bodies, document_id=_document_ids,
       item_id=st.integers(min_value=0, max_value=10 ** 30))
def test_no_json_gets_a_5xx_from_any_route(fuzzed: RunningApi, method: str, path: str,
                                           body: Any, document_id: str, item_id: int) -> None:
    content = json.dumps(body).encode() if method in ("POST", "PATCH", "PUT") else None
    filled = _fill(path, invoice_id=document_id, credit_note_id=document_id, item_id=item_id,
                   entry_id=document_id)
    _assert_clear_refusal(_send(fuzzed, method, filled, content))


def test_every_route_is_fuzzed_with_its_path_filled() -> None:
    """The routes fuzzed are the app's own, each with every path parameter given a value (a
    route with a new kind of parameter would otherwise only ever answer 404)."""
    assert ("POST", STRIPE_WEBHOOK) in BODY_ROUTES and ("GET", "/api/v1/health") in ROUTES
    assert [path for _, path in ROUTES if "{" in _fill(path)] == []
