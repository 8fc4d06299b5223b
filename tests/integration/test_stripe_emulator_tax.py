"""The local Stripe's manual tax amounts (docs/stripe-emulator.md#tax), through the real SDK:
`tax_amounts` on invoice lines and credit note lines validated as Stripe does, kept on the lines
(`taxes`), and totals as Stripe makes them (exclusive tax on top, inclusive inside); payments
and credit notes move amounts including tax. Golden values by hand."""

from __future__ import annotations

import pytest
import stripe

from devkit.stripe_emulator import StripeEmulator

VAT = {"display_name": "VAT", "inclusive": False, "percentage": "19", "country": "DE",
       "jurisdiction": "DE"}


@pytest.fixture(scope="module")
def sdk():
    with StripeEmulator() as emu:
        yield stripe.StripeClient("sk_test_tax", base_addresses={"api": emu.base_url},
                                  max_network_retries=0)


def draft(sdk: stripe.StripeClient, **extra: object) -> stripe.Invoice:
    customer = sdk.v1.customers.create(params={"name": "Tax GmbH"})
    return sdk.v1.invoices.create(params={"customer": customer.id, "currency": "eur",
                                          "auto_advance": False, **extra})


def tax(amount: int, taxable: int, rate: dict = VAT, **extra: object) -> dict:
    return {"amount": amount, "taxable_amount": taxable, "tax_rate_data": rate, **extra}


def test_exclusive_and_inclusive_tax_amounts_total_as_stripe(sdk):
    inv = draft(sdk)
    # 49.00 + 9.31 (19 %), a discount -9.80 - 1.86; an inclusive 20 % line of 12.00 holding 2.00
    incl = {**VAT, "inclusive": True, "percentage": "20", "display_name": "USt"}
    inv = sdk.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 4900, "tax_amounts": [tax(931, 4900, taxability_reason="standard_rated")]},
        {"amount": -980, "tax_amounts": [tax(-186, -980)]},
        {"amount": 1200, "tax_amounts": [tax(200, 1000, incl)]}]})
    # subtotal 49.00 - 9.80 + 12.00 = 51.20; exclusive tax 7.45 on top: 58.65;
    # without any tax 51.20 - 2.00 = 49.20
    assert (inv.subtotal, inv.subtotal_excluding_tax, inv.total, inv.total_excluding_tax,
            inv.amount_due) == (5120, 4920, 5865, 4920, 5865)
    assert sorted((t.amount, t.tax_behavior) for t in inv.total_taxes) == [
        (-186, "exclusive"), (200, "inclusive"), (931, "exclusive")]
    first = inv.lines.data[0].taxes[0]
    assert (first.amount, first.taxable_amount, first.taxability_reason, first.type) == (
        931, 4900, "standard_rated", "tax_rate_details")
    # equal rate data: one TaxRate, archived, readable
    rates = {line.taxes[0].tax_rate_details.tax_rate for line in inv.lines.data[:2]}
    [rate_id] = rates
    rate = sdk.v1.tax_rates.retrieve(rate_id)
    assert (rate.percentage, rate.inclusive, rate.active, rate.display_name) == (
        19.0, False, False, "VAT")
    inv = sdk.v1.invoices.finalize_invoice(inv.id, params={"auto_advance": False})
    inv = sdk.v1.invoices.pay(inv.id, params={"payment_method": "pm_card_visa"})
    assert (inv.status, inv.amount_paid) == ("paid", 5865)


@pytest.mark.parametrize(("entry", "param", "message"), [
    (tax(1, 1, {**VAT, "foo": "x"}), "lines[0][tax_amounts][0][tax_rate_data][foo]",
     "Received unknown parameter"),
    ({"amount": 1, "tax_rate_data": VAT}, "lines[0][tax_amounts][0][taxable_amount]",
     "Missing required param"),
    (tax(1, 1, {**VAT, "percentage": "19.12345"}),
     "lines[0][tax_amounts][0][tax_rate_data][percentage]", "at most 4 decimal places"),
    (tax(1, 1, {**VAT, "percentage": "101"}),
     "lines[0][tax_amounts][0][tax_rate_data][percentage]", "between 0 and 100"),
    (tax(-1, 100), "lines[0][tax_amounts][0][amount]", "same sign"),
])
def test_invalid_tax_amounts_are_stripes_400(sdk, entry, param, message):
    inv = draft(sdk)
    with pytest.raises(stripe.InvalidRequestError) as err:
        sdk.v1.invoices.add_lines(inv.id, params={"lines": [
            {"amount": 100, "tax_amounts": [entry]}]})
    assert (err.value.http_status, err.value.param) == (400, param)
    assert message in str(err.value.user_message)
    # nothing was added
    assert sdk.v1.invoices.retrieve(inv.id).lines.data == []


def test_credit_note_lines_credit_tax_at_the_invoice_rate(sdk):
    inv = draft(sdk, custom_fields=[{"name": "VAT", "value": "Reverse charge"}])
    inv = sdk.v1.invoices.add_lines(inv.id, params={"lines": [
        {"amount": 4900, "tax_amounts": [tax(931, 4900)]}]})
    inv = sdk.v1.invoices.finalize_invoice(inv.id, params={"auto_advance": False})
    assert [(f.name, f.value) for f in inv.custom_fields] == [("VAT", "Reverse charge")]
    line = inv.lines.data[0]
    rate = line.taxes[0].tax_rate_details.tax_rate
    # 10.00 and its 1.90 tax: 11.90
    note = sdk.v1.credit_notes.create(params={"invoice": inv.id, "lines": [{
        "type": "invoice_line_item", "invoice_line_item": line.id, "amount": 1000,
        "tax_amounts": [{"amount": 190, "tax_rate": rate, "taxable_amount": 1000}]}]})
    assert (note.subtotal, note.total, note.amount, note.total_excluding_tax) == (
        1000, 1190, 1190, 1000)
    assert note.lines.data[0].taxes[0].amount == 190
    # no tax_amounts on an invoice line item: Stripe prorates its tax, 4.90 -> 9.31 x 0.1 = 0.93
    prorated = sdk.v1.credit_notes.create(params={"invoice": inv.id, "lines": [{
        "type": "invoice_line_item", "invoice_line_item": line.id, "amount": 490}]})
    assert (prorated.total, prorated.lines.data[0].taxes[0].amount) == (583, 93)
    # 58.31 - 11.90 - 5.83 = 40.58 left to pay
    assert sdk.v1.invoices.retrieve(inv.id).amount_remaining == 4058
    # a rate that is not Stripe's automatic one of that line: 400
    with pytest.raises(stripe.InvalidRequestError) as err:
        sdk.v1.credit_notes.create(params={"invoice": inv.id, "lines": [{
            "type": "custom_line_item", "unit_amount": 100, "quantity": 1,
            "tax_amounts": [{"amount": 19, "tax_rate": "txr_nope", "taxable_amount": 100}]}]})
    assert err.value.param == "lines[0][tax_amounts][0][tax_rate]"
