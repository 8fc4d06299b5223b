"""The Update Invoice call (contract section 9): `PATCH /api/v1/apps/custom-invoicing/invoices/
{invoice_id}` adds adjustment lines to a draft and removes them, through the durable inbox like
every call. Over real HTTP (`billing api` in its own process): 202 with the ids the lines will
get, 409 outside draft / draft.syncing, 422 naming the field, replays answered as the first;
then end to end, applied by the sync job and published back to the integration."""

from __future__ import annotations

from decimal import Decimal

import duckdb
import httpx
import pytest

from devkit.api_client import ApiError
from pipelines.api.store import PublishedInvoice, PublishedLine
from pipelines.rating.invoices import adjustment_line_id
from tests.support.api import RunningApi, assert_validation_error, error
from tests.support.dagster_runs import run_billing, run_sync
from tests.support.erp import Erp
from tests.support.warehouse import query

CUSTOM = "/api/v1/apps/custom-invoicing/invoices"
LINES = (PublishedLine("ln_usage", "usage"), PublishedLine("ln_flat", "flat"),
         PublishedLine("ln_adj", "adjustment"), PublishedLine("ln_disc", "discount"))
WORKSHOP = {"description": "Onboarding workshop", "amount": "120.00"}
CREDIT = {"description": "SLA credit", "quantity": "2", "unit_price": "-5.00"}


def publish(api: RunningApi, invoice_id: str, status: str) -> None:
    api.store.publish_invoices([PublishedInvoice(
        invoice_id=invoice_id, customer_id="umbrella_004", app="custom_invoicing",
        status=status, currency="USD", total=Decimal("50.00"), lines=LINES)])


def patch(api: RunningApi, invoice_id: str, body: object, *, token: str = "sync",
          key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.tokens[token]}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.patch(f"{api.server.url}{CUSTOM}/{invoice_id}", json=body, headers=headers,
                       timeout=30)


def items_of(api: RunningApi, invoice_id: str) -> list:
    return [i for i in api.store.pending_items() if i.invoice_id == invoice_id]


def test_accepted_with_the_line_ids_the_adjustments_will_get(api: RunningApi) -> None:
    publish(api, "inv_upd", "draft.syncing")
    response = patch(api, "inv_upd", {"add": [WORKSHOP, CREDIT], "remove": ["ln_adj"]})
    assert response.status_code == 202, response.text
    body = response.json()
    item = body["inbox_item_id"]
    assert body["kind"] == "custom_invoicing.update_invoice"
    assert (body["invoice_id"], body["projected_state"]) == ("inv_upd", "draft.syncing")
    assert body["adjustment_line_ids"] == [adjustment_line_id("inv_upd", f"inbox:{item}:0"),
                                           adjustment_line_id("inv_upd", f"inbox:{item}:1")]
    [stored] = items_of(api, "inv_upd")
    assert stored.body == {"add": [WORKSHOP, CREDIT], "remove": ["ln_adj"]}
    # the lines as the accepted call leaves them: a draft/synchronized may map the new ones,
    # and the removed one is gone
    first, _ = body["adjustment_line_ids"]
    synchronized = api.post(f"{CUSTOM}/inv_upd/draft/synchronized", {"invoicing": {
        "external_id": "erp_upd", "line_external_ids": [
            {"line_id": "ln_usage", "external_id": "e1"},
            {"line_id": first, "external_id": "e2"}]}})
    assert synchronized.status_code == 202, synchronized.text
    # ...and after it, the invoice is projected to issuing: no more adjustments
    late = patch(api, "inv_upd", {"remove": [first]})
    assert late.status_code == 409
    assert error(late)["code"] == "invalid_state"
    assert error(late)["current_state"] == "issuing"


def test_removal_names_lines_as_projected(api: RunningApi) -> None:
    publish(api, "inv_rm", "draft")
    added = patch(api, "inv_rm", {"add": [WORKSHOP]}).json()["adjustment_line_ids"][0]
    assert patch(api, "inv_rm", {"remove": [added, "ln_adj"]}).status_code == 202
    again = patch(api, "inv_rm", {"remove": ["ln_adj"]})
    assert_validation_error(again, "remove[0]", "unknown line of this invoice: 'ln_adj'")


@pytest.mark.parametrize("status", ["issuing", "issuing.syncing", "payment_processing.pending",
                                    "paid", "draft.sync_failed"])
def test_outside_draft_gets_409_with_the_current_state(api: RunningApi, status: str) -> None:
    invoice_id = f"inv_409_{status}"
    publish(api, invoice_id, status)
    response = patch(api, invoice_id, {"add": [WORKSHOP]})
    assert response.status_code == 409, response.text
    problem = error(response)
    assert (problem["code"], problem["current_state"]) == ("invalid_state", status)
    assert "adjusted only in draft or draft.syncing" in str(problem["message"])
    assert items_of(api, invoice_id) == []


@pytest.mark.parametrize(("body", "field", "words"), [
    ({}, "add", "give `add`"),
    ({"add": [], "remove": []}, "add", "give `add`"),
    ({"add": [{"amount": "5.00"}]}, "add[0].description", "required"),
    ({"add": [{"description": "x", "amount": 5}]}, "add[0].amount", "not a JSON number"),
    ({"add": [{"description": "x", "amount": "5", "quantity": "1"}]}, "add[0].quantity",
     "not both"),
    ({"add": [{"description": "x"}]}, "add[0].amount", "required"),
    ({"add": [WORKSHOP, {"description": "x", "quantity": "1"}]}, "add[1].unit_price",
     "required"),
    ({"add": [{"description": "x", "quantity": "-1", "unit_price": "5"}]}, "add[0].quantity",
     "must not be negative"),
    ({"add": [{"description": "x", "quantity": "0", "unit_price": "5"}]}, "add[0].quantity",
     "must be positive"),
    ({"add": [{"description": "x", "amount": "0.004"}]}, "add[0].amount",
     "the adjustment rounds to 0.00 USD"),
    # what the ledger cannot hold is refused here, not accepted and then failed when applied
    ({"add": [{"description": "x", "amount": "-99999999999999999999999999"}]}, "add[0].amount",
     "must be less than 10^18 in absolute value"),
    ({"add": [{"description": "x", "quantity": "1", "unit_price": "1000000000000000000"}]},
     "add[0].unit_price", "must be less than 10^18"),
    ({"add": [{"description": "x", "quantity": "99999999999999999999999999",
               "unit_price": "1"}]}, "add[0].quantity", "must be less than 10^18"),
    ({"add": [WORKSHOP, {"description": "x", "quantity": "10000000000000",
                         "unit_price": "99999999999999.99"}]}, "add[1].unit_price",
     "quantity x unit_price comes to 999999999999999900000000000.00 USD"),
    ({"add": [{"description": "x", "amount": "5", "note": "y"}]}, "add[0].note",
     "unknown field"),
    ({"remove": ["ln_usage"]}, "remove[0]", "is a usage line; only adjustment lines"),
    ({"remove": ["ln_disc"]}, "remove[0]", "is a discount line"),
    ({"remove": ["ln_elsewhere"]}, "remove[0]", "unknown line of this invoice"),
    ({"remove": ["ln_adj", "ln_adj"]}, "remove[1]", "more than once"),
    ({"remove": "ln_adj"}, "remove", "must be a list"),
    ({"add": [WORKSHOP], "lines": []}, "lines", "unknown field"),
])
def test_bad_body_gets_422_naming_the_field(api: RunningApi, body: object, field: str,
                                            words: str) -> None:
    publish(api, "inv_422", "draft")
    assert_validation_error(patch(api, "inv_422", body), field, words)
    assert items_of(api, "inv_422") == []


def test_a_replayed_call_is_answered_as_the_first(api: RunningApi) -> None:
    publish(api, "inv_replay", "draft")
    first = patch(api, "inv_replay", {"add": [WORKSHOP]}, key="erp-adjust-1")
    again = patch(api, "inv_replay", {"add": [WORKSHOP]}, key="erp-adjust-1")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    # without a key the call itself is the key: the same body is the same call
    plain = patch(api, "inv_replay", {"add": [CREDIT]})
    assert patch(api, "inv_replay", {"add": [CREDIT]}).json() == plain.json()
    assert len(items_of(api, "inv_replay")) == 2
    # a second, identical adjustment on purpose takes a new key
    other = patch(api, "inv_replay", {"add": [WORKSHOP]}, key="erp-adjust-2")
    assert other.json()["adjustment_line_ids"] != first.json()["adjustment_line_ids"]
    reused = patch(api, "inv_replay", {"add": [CREDIT]}, key="erp-adjust-1")
    assert reused.status_code == 409
    assert error(reused)["code"] == "idempotency_key_reused"


def test_needs_invoices_sync_and_a_published_custom_invoicing_invoice(api: RunningApi) -> None:
    publish(api, "inv_scope_upd", "draft")
    forbidden = patch(api, "inv_scope_upd", {"add": [WORKSHOP]}, token="pay")
    assert forbidden.status_code == 403
    assert "invoices:sync" in str(error(forbidden)["message"])
    missing = patch(api, "inv_never_published", {"add": [WORKSHOP]})
    assert missing.status_code == 404
    assert error(missing)["code"] == "invoice_not_found"


# ---------------------------------------------------------------------- end to end


def test_applied_by_the_sync_job_and_published_back(silent_erp: Erp) -> None:
    """Umbrella's draft waits in draft.syncing (its ERP does not answer the hook yet): its ERP
    adjusts it through the API, the sync job prices the adjustments in, and the ERP then maps
    the adjustment line when it synchronizes the draft."""
    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_sync("2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    assert erp.status("umbrella_004") == "draft.syncing"
    # no usage: January's top-up 40.00 and February's fee 10.00 in advance
    assert query(erp.warehouse, "SELECT total FROM billing.invoices WHERE invoice_id = $i",
                 {"i": umbrella}) == [(Decimal("50.00"),)]
    client = erp.integration.client

    accepted = client.update_invoice(umbrella, add=[WORKSHOP, CREDIT])
    workshop, credit = accepted["adjustment_line_ids"]
    assert query(erp.warehouse, "SELECT count(*) FROM billing.invoice_adjustments") == [(0,)]
    steps = run_sync("2026-02-01T12:10:00Z")
    assert steps["sync/api_inbox"]["items_applied"] == 1
    assert client.inbox_item(accepted["inbox_item_id"])["status"] == "applied"
    assert query(erp.warehouse, """
        SELECT line_id, description, quantity, unit_price, amount FROM billing.invoice_lines
        WHERE invoice_id = $i AND line_type = 'adjustment' ORDER BY position""",
                 {"i": umbrella}) == [
        (workshop, "Onboarding workshop", None, None, Decimal("120.00")),
        (credit, "SLA credit", Decimal("2"), Decimal("-5.00"), Decimal("-10.00"))]
    # 50.00 + 120.00 - 10.00; the top-up (40.00) is not changed by adjustments
    assert query(erp.warehouse, "SELECT subtotal, discount_total, total FROM billing.invoices "
                                "WHERE invoice_id = $i", {"i": umbrella}) == [
        (Decimal("160.00"), Decimal("0.00"), Decimal("160.00"))]
    assert query(erp.warehouse, "SELECT source, added_by FROM billing.invoice_adjustments "
                                "ORDER BY position") == [("api", "api:umbrella-erp#1")] * 2
    published = client.invoice(umbrella)
    assert Decimal(published["total"]) == Decimal("160.00")
    assert [line["line_id"] for line in published["lines"]
            if line["line_type"] == "adjustment"] == [workshop, credit]

    # the warehouse checks again: a credit beyond the invoice is accepted by the API (it does
    # not price) but rejected when applied, with the reason, writing nothing
    too_much = client.update_invoice(umbrella, add=[{"description": "Goodwill",
                                                      "amount": "-160.01"}])
    steps = run_sync("2026-02-01T12:20:00Z")
    assert steps["sync/api_inbox"]["items_rejected"] == 1
    rejected = client.inbox_item(too_much["inbox_item_id"])
    assert rejected["status"] == "rejected"
    assert "at most 160.00 USD can be credited" in rejected["reason"]
    assert query(erp.warehouse, "SELECT count(*) FROM billing.invoice_adjustments") == [(2,)]

    # remove the credit, then the ERP synchronizes its draft, mapping the adjustment line
    client.update_invoice(umbrella, remove=[credit])
    requested = erp.integration.received[0]["data"]["invoice"]["lines"]
    erp.integration.synchronize_draft(
        umbrella, [*requested, {"line_id": workshop, "line_type": "adjustment"}])
    run_sync("2026-02-01T12:30:00Z")
    assert erp.status("umbrella_004") == "issuing.syncing"
    assert query(erp.warehouse, "SELECT total FROM billing.invoices WHERE invoice_id = $i",
                 {"i": umbrella}) == [(Decimal("170.00"),)]
    assert query(erp.warehouse, """
        SELECT count(*) FROM sync.external_ids
        WHERE provider = 'custom_invoicing' AND internal_id = $l""", {"l": workshop}) == [(1,)]

    # past the draft: refused with the state
    with pytest.raises(ApiError) as refused:
        client.update_invoice(umbrella, add=[WORKSHOP])
    assert refused.value.status_code == 409
    assert refused.value.current_state == "issuing.syncing"


def test_an_item_that_fails_when_applied_is_rejected_alone_and_the_inbox_goes_on(
        silent_erp: Erp, monkeypatch: pytest.MonkeyPatch) -> None:
    """An accepted call the warehouse fails to apply (here an Update Invoice whose writes fail
    half way with a DuckDB error, as an amount DuckDB could not convert once did) does not hold
    up the inbox: its writes are rolled back, it is rejected with the error as its reason, and
    the call behind it (Hooli's payment) is applied in the same run."""
    from pipelines.custom_invoicing import inbox

    erp = silent_erp
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    run_sync("2026-02-01T12:00:00Z")
    umbrella, hooli = erp.invoice("umbrella_004"), erp.invoice("hooli_005")
    assert (erp.status("umbrella_004"), erp.status("hooli_005")) == (
        "draft.syncing", "payment_processing.pending")
    real_apply = inbox.apply_update_invoice

    def writes_then_fails(con, catalog, item, *, now):
        real_apply(con, catalog, item, now=now)      # the adjustment line and totals written...
        raise duckdb.ConversionException("Conversion Error: Could not cast value "
                                         "1000000000000000000000000000000 to DECIMAL(38,12)")

    monkeypatch.setattr(inbox, "apply_update_invoice", writes_then_fails)
    client = erp.integration.client
    poisoned = client.update_invoice(umbrella, add=[WORKSHOP])
    payment = client.payment_status(hooli, "paid")

    steps = run_sync("2026-02-01T12:10:00Z")
    assert (steps["sync/api_inbox"]["items_applied"],
            steps["sync/api_inbox"]["items_rejected"]) == (1, 1)
    rejected = client.inbox_item(poisoned["inbox_item_id"])
    assert rejected["status"] == "rejected"
    assert rejected["reason"] == (
        "the warehouse could not apply this call (ConversionException: Conversion Error: "
        "Could not cast value 1000000000000000000000000000000 to DECIMAL(38,12)); nothing of "
        "it was written")
    assert client.inbox_item(payment["inbox_item_id"])["status"] == "applied"
    assert erp.status("hooli_005") == "paid"
    # ...and rolled back, that item's writes only
    assert query(erp.warehouse, "SELECT count(*) FROM billing.invoice_adjustments") == [(0,)]
    assert query(erp.warehouse, "SELECT count(*) FROM billing.invoice_lines "
                                "WHERE invoice_id = $i AND line_type = 'adjustment'",
                 {"i": umbrella}) == [(0,)]
    assert query(erp.warehouse, "SELECT status, total FROM billing.invoices "
                                "WHERE invoice_id = $i", {"i": umbrella}) == [
        ("draft.syncing", Decimal("50.00"))]
    # the warehouse keeps the rejection with its reason, as any refused call
    assert query(erp.warehouse, """
        SELECT event_type, outcome, detail FROM sync.provider_events
        WHERE provider = 'custom_invoicing' ORDER BY received_at, event_id""") == [
        ("custom_invoicing.update_invoice", "rejected", rejected["reason"]),
        ("custom_invoicing.payment_status", "applied", None)]
    assert erp.store.pending_count() == 0
