"""The local Stripe's credit notes, driven by the official stripe SDK over real HTTP: Stripe's
shapes (fixtures3), parameters (`stripe.params.CreditNoteCreateParams`), refusals, effects on
the invoice, the customer's balance and the charge, and the `credit_note.*` events."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import stripe

from devkit.stripe_emulator import StripeEmulator
from tests.support.environment import STRIPE_FIXTURES

API_KEY = "sk_test_credit_note_tests"
# shared/ sits beside the repository (in CI a fresh clone anywhere, shared/ next to it)
FIXTURES = STRIPE_FIXTURES


@pytest.fixture(scope="module")
def emulator():
    with StripeEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator):
    emulator.reset()
    return stripe.StripeClient(API_KEY, base_addresses={"api": emulator.base_url},
                               max_network_retries=0)


def invoice_with_lines(client, *amounts: int, pay: bool = False) -> stripe.Invoice:
    """A finalized invoice of a new customer (card on file), one line per amount."""
    customer = client.v1.customers.create(
        params={"name": "Acme", "invoice_settings": {"default_payment_method": "pm_card_visa"}})
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": "usd"})
    client.v1.invoices.add_lines(invoice.id, params={"lines": [
        {"amount": amount, "description": f"line {n}", "metadata": {"line_id": f"l{n}"}}
        for n, amount in enumerate(amounts)]})
    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    return client.v1.invoices.pay(invoice.id) if pay else invoice


def line_item(invoice: stripe.Invoice, n: int) -> str:
    return next(line.id for line in invoice.lines.data if line.metadata["line_id"] == f"l{n}")


def event_types(client) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": 100}).data]


def refused(client, **params) -> str:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.credit_notes.create(params=params)
    return err.value.user_message or ""


def test_shapes_follow_stripe_fixtures(client):
    fixtures = json.loads(FIXTURES.read_text())["resources"]
    invoice = invoice_with_lines(client, 1190, 800)
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "lines": [
        {"type": "invoice_line_item", "invoice_line_item": line_item(invoice, 0), "amount": 1190},
        {"type": "custom_line_item", "unit_amount": 500, "quantity": 1,
         "description": "Service credit"}]})
    assert not set(fixtures["credit_note"]) - set(note.to_dict())
    for line in note.lines.data:
        assert not set(fixtures["credit_note_line_item"]) - set(line.to_dict()) - {
            "invoice_line_item"}, line.type
    item, custom = note.lines.data
    assert (item.type, item.invoice_line_item, item.amount) == (
        "invoice_line_item", line_item(invoice, 0), 1190)
    assert (custom.type, custom.amount, custom.unit_amount, custom.unit_amount_decimal,
            custom.description) == ("custom_line_item", 500, 500, Decimal("500"), "Service credit")
    assert "invoice_line_item" not in custom.to_dict()
    assert (note.object, note.status, note.type, note.amount, note.total, note.currency) == (
        "credit_note", "issued", "pre_payment", 1690, 1690, "usd")
    assert note.number == f"{invoice.number}-CN-01"
    listed = client.v1.credit_notes.line_items.list(note.id)
    assert [line.id for line in listed.data] == [item.id, custom.id]


def test_refusals(client):
    invoice = invoice_with_lines(client, 1000, 500)
    first = line_item(invoice, 0)
    # more than the invoice still owes
    assert "greater than the amount that can be credited" in refused(
        client, invoice=invoice.id, amount=1501)
    # more than the invoice line has left to credit, counting earlier credit notes
    client.v1.credit_notes.create(params={"invoice": invoice.id, "lines": [
        {"type": "invoice_line_item", "invoice_line_item": first, "amount": 700}]})
    assert "has not been credited yet" in refused(
        client, invoice=invoice.id,
        lines=[{"type": "invoice_line_item", "invoice_line_item": first, "amount": 301}])
    assert "must be positive" in refused(
        client, invoice=invoice.id,
        lines=[{"type": "invoice_line_item", "invoice_line_item": first, "amount": -1}])
    # a refund of an invoice nobody paid
    assert "has not been paid" in refused(client, invoice=invoice.id, amount=100,
                                          refund_amount=100)
    # parameters are the SDK's
    assert "Received unknown parameter: lines[0][colour]" in refused(
        client, invoice=invoice.id,
        lines=[{"type": "custom_line_item", "unit_amount": 1, "colour": "red"}])
    # a voided invoice, a draft
    client.v1.invoices.void_invoice(invoice.id)
    assert "this invoice is void" in refused(client, invoice=invoice.id, amount=100)
    customer = client.v1.customers.create()
    draft = client.v1.invoices.create(params={"customer": customer.id})
    assert "this invoice is draft" in refused(client, invoice=draft.id, amount=100)
    # a voided credit note gives its amount back to the line
    other = invoice_with_lines(client, 1000)
    note = client.v1.credit_notes.create(params={"invoice": other.id, "lines": [
        {"type": "invoice_line_item", "invoice_line_item": line_item(other, 0), "amount": 600}]})
    client.v1.credit_notes.void_credit_note(note.id)
    again = client.v1.credit_notes.create(params={"invoice": other.id, "lines": [
        {"type": "invoice_line_item", "invoice_line_item": line_item(other, 0), "amount": 1000}]})
    assert again.amount == 1000


def test_effects_on_invoice_balance_and_charge(client):
    # open: the amount due drops; credited in full it is paid without a charge
    invoice = invoice_with_lines(client, 1000)
    client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 300})
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.amount_due, invoice.amount_remaining, invoice.status,
            invoice.pre_payment_credit_notes_amount) == (700, 700, "open", 300)
    # paid, credit_amount: the customer's balance (negative = owed to the customer)
    paid = invoice_with_lines(client, 2000, pay=True)
    credit = client.v1.credit_notes.create(params={"invoice": paid.id, "credit_amount": 500,
                                                   "lines": [{"type": "custom_line_item",
                                                              "unit_amount": 500}]})
    assert (credit.type, credit.refunds, credit.customer_balance_transaction is not None) == (
        "post_payment", [], True)
    assert client.v1.customers.retrieve(paid.customer).balance == -500
    # paid, refund_amount: the charge is refunded
    refund = client.v1.credit_notes.create(params={"invoice": paid.id, "refund_amount": 400,
                                                   "amount": 400})
    assert refund.refunds[0].amount_refunded == 400
    charge = client.v1.charges.list(params={"customer": paid.customer}).data[0]
    assert charge.amount_refunded == 400
    # paid, out_of_band_amount: recorded, no money moves at Stripe
    oob = client.v1.credit_notes.create(params={"invoice": paid.id, "out_of_band_amount": 100,
                                                "amount": 100})
    assert (oob.out_of_band_amount, oob.refunds) == (100, [])
    assert client.v1.customers.retrieve(paid.customer).balance == -500
    assert client.v1.invoices.retrieve(paid.id).post_payment_credit_notes_amount == 1000
    # more than was paid and not yet credited
    assert "greater than the amount that can be credited" in refused(
        client, invoice=paid.id, amount=1001, credit_amount=1001)
    # voiding the balance credit gives the balance back
    client.v1.credit_notes.void_credit_note(credit.id)
    assert client.v1.customers.retrieve(paid.customer).balance == 0


def test_credit_note_events_and_list_by_invoice(client):
    invoice = invoice_with_lines(client, 1000)
    other = invoice_with_lines(client, 1000)
    note = client.v1.credit_notes.create(params={"invoice": invoice.id, "amount": 100,
                                                 "metadata": {"credit_note_id": "cn_ours"}})
    client.v1.credit_notes.create(params={"invoice": other.id, "amount": 100})
    updated = client.v1.credit_notes.update(note.id, params={"memo": "thanks",
                                                            "metadata": {"reason": "x"}})
    assert updated.metadata.to_dict() == {"credit_note_id": "cn_ours", "reason": "x"}
    client.v1.credit_notes.void_credit_note(note.id)
    assert event_types(client)[:4] == ["credit_note.voided", "credit_note.updated",
                                       "credit_note.created", "credit_note.created"]
    voided = client.v1.events.list(params={"type": "credit_note.voided"}).data[0]
    assert (voided.data.object.id, voided.data.object.status) == (note.id, "void")
    listed = client.v1.credit_notes.list(params={"invoice": invoice.id}).data
    assert [(n.id, n.metadata["credit_note_id"]) for n in listed] == [(note.id, "cn_ours")]
    assert client.v1.invoices.retrieve(invoice.id).amount_due == 1000
