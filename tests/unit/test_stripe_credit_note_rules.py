"""Rules of the Stripe credit note sync that need no Stripe: which Stripe line type each of our
lines becomes, how the credit acts on the Stripe invoice (less due, balance credit, refund),
the refusals, the idempotency key, and which credit_note.* events void our credit note."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from pipelines.providers.stripe_sync.credit_note_plan import (
    StripeInvoiceState,
    SyncCreditNote,
    SyncCreditNoteLine,
    check_credit_note,
    credit_note_key,
    credit_note_params,
    line_params,
)
from pipelines.providers.stripe_sync.inbound import credit_note_decision
from pipelines.providers.stripe_sync.issue_plan import SyncRefused

API = SyncCreditNoteLine("cnl_api", "line_api", Decimal("-5.00"), "API calls", "il_api",
                         Decimal("60.00"))
NOTE = SyncCreditNote(
    credit_note_id="cn_1", invoice_id="inv_1", customer_id="acme", billing_month="2026-02",
    currency="USD", total=Decimal("5.00"), kind="correction", reason="correction",
    invoice_number="INV-202602-00001", invoice_status="payment_processing.pending",
    stripe_invoice="in_1", external_id=None, needs_search=False, refunds=False, lines=(API,))
OPEN = StripeInvoiceState("open", amount_remaining=7000, amount_paid=0,
                          amount_paid_off_stripe=0, post_payment_credit_notes_amount=0)
PAID = StripeInvoiceState("paid", amount_remaining=0, amount_paid=7000,
                          amount_paid_off_stripe=0, post_payment_credit_notes_amount=0)


def test_lines_credit_stripe_line_items_while_they_have_room():
    assert line_params(NOTE) == [{
        "type": "invoice_line_item", "invoice_line_item": "il_api", "amount": 500,
        "metadata": {"credit_note_line_id": "cnl_api", "corrects_line_id": "line_api"}}]
    # 57.00 already credited on the 60.00 line: 5.00 more does not fit -> a custom line
    full = replace(API, credited_before=Decimal("57.00"))
    # a discount line (negative at Stripe), a line Stripe never had, a manual credit
    discount = replace(API, credit_note_line_id="cnl_d", line_amount=Decimal("-6.00"))
    unknown = replace(API, credit_note_line_id="cnl_u", stripe_line_item=None,
                      line_amount=None)
    manual = SyncCreditNoteLine("cnl_m", None, Decimal("-2.50"), "Credit: goodwill")
    # a second line on the same Stripe line item in one note
    twice = replace(API, credit_note_line_id="cnl_2", amount=Decimal("-1.00"))
    note = replace(NOTE, total=Decimal("19.50"), lines=(API, full, discount, unknown, manual,
                                                        twice))
    lines = line_params(note)
    assert [(p["type"], p.get("invoice_line_item"), p.get("amount", p.get("unit_amount")))
            for p in lines] == [
        ("invoice_line_item", "il_api", 500), ("custom_line_item", None, 500),
        ("custom_line_item", None, 500), ("custom_line_item", None, 500),
        ("custom_line_item", None, 250), ("custom_line_item", None, 100)]
    assert lines[4] == {"type": "custom_line_item", "unit_amount": 250, "quantity": 1,
                        "description": "Credit: goodwill",
                        "metadata": {"credit_note_line_id": "cnl_m"}}


def test_settlement_per_stripe_invoice_status_and_profile():
    kind, params = credit_note_params(NOTE, OPEN)
    assert kind == "pre_payment"
    assert params == {"invoice": "in_1", "memo": "Correction of invoice INV-202602-00001",
                      "metadata": {"credit_note_id": "cn_1", "invoice_id": "inv_1",
                                   "customer_id": "acme", "billing_month": "2026-02",
                                   "kind": "correction"},
                      "lines": line_params(NOTE)}
    assert credit_note_params(NOTE, PAID)[0] == "credit"
    assert credit_note_params(NOTE, PAID)[1]["credit_amount"] == 500
    refunds = replace(NOTE, refunds=True)
    assert credit_note_params(refunds, PAID)[1]["refund_amount"] == 500
    off_stripe = replace(PAID, amount_paid_off_stripe=7000)
    assert credit_note_params(refunds, off_stripe)[1]["out_of_band_amount"] == 500
    assert credit_note_key(NOTE, "refund") == "bp:cn_1:credit_note.create:refund:v1"
    # a manual note without lines credits an amount; its memo is the person's reason
    manual = replace(NOTE, kind="manual", reason="goodwill: outage", lines=())
    params = credit_note_params(manual, OPEN)[1]
    assert (params["amount"], params["memo"], "lines" in params) == (500, "goodwill: outage",
                                                                      False)


def test_refusals_name_what_stripe_cannot_take():
    with pytest.raises(SyncRefused, match=r"only 4\.99 USD left to pay"):
        credit_note_params(NOTE, replace(OPEN, amount_remaining=499))
    with pytest.raises(SyncRefused, match=r"only 2\.00 USD of the paid Stripe invoice"):
        credit_note_params(NOTE, replace(PAID, post_payment_credit_notes_amount=6800))
    with pytest.raises(SyncRefused, match="is void; Stripe credits only open or paid"):
        credit_note_params(NOTE, replace(OPEN, status="void"))
    with pytest.raises(SyncRefused, match="is voided; a voided invoice cannot be credited"):
        check_credit_note(replace(NOTE, invoice_status="voided"))
    with pytest.raises(SyncRefused, match="never issued at Stripe"):
        check_credit_note(replace(NOTE, stripe_invoice=None))
    with pytest.raises(SyncRefused, match="lines credit 500 minor units but the total is 600"):
        check_credit_note(replace(NOTE, total=Decimal("6.00")))
    with pytest.raises(SyncRefused, match="must be negative"):
        check_credit_note(replace(NOTE, lines=(replace(API, amount=Decimal("5.00")),)))
    with pytest.raises(SyncRefused, match="not a whole number of minor units"):
        check_credit_note(replace(NOTE, total=Decimal("5.001")))
    check_credit_note(NOTE)


def test_credit_note_events_void_ours_once_it_is_issued():
    voided = {"type": "credit_note.voided", "data": {"object": {"id": "cn_s", "status": "void"}}}
    updated = {"type": "credit_note.updated",
               "data": {"object": {"id": "cn_s", "status": "issued"}}}
    assert credit_note_decision(voided, "cn_1", "issued") == ("applied", "issued -> voided")
    assert credit_note_decision(voided, "cn_1", "voided") == ("already", "voided")
    assert credit_note_decision(voided, "cn_1", "draft") == (None, "credit note cn_1 is draft")
    assert credit_note_decision(voided, None, None) == ("not_ours", "not a credit note of ours")
    assert credit_note_decision(voided, "cn_1", None)[0] is None  # in flight, not mapped yet
    assert credit_note_decision(updated, "cn_1", "issued") == ("recorded", "no status change")
    updated["data"]["object"]["status"] = "void"
    assert credit_note_decision(updated, "cn_1", "issued")[0] == "applied"
