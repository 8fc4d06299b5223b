"""What the Stripe sync sends for tax (pure plan, no Stripe): each taxed line's tax as Stripe's
`tax_amounts`, the reverse charge note, idempotency keys that change with a re-rated tax, and the
checks of Stripe's copy against totals including tax. Golden values by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from types import SimpleNamespace as NS

import pytest
import stripe

from pipelines.providers.stripe_sync.credit_note_plan import (
    StripeInvoiceState,
    SyncCreditNote,
    SyncCreditNoteLine,
    check_credit_note,
    credit_note_params,
    verify_credit_note,
)
from pipelines.providers.stripe_sync.issue_plan import (
    SyncInvoice,
    SyncLine,
    SyncRefused,
    check_invoice,
    invoice_params,
    line_params,
    lines_key,
    stale_lines,
    update_line_params,
    verify,
)

D = Decimal
FEB = (date(2026, 2, 1), date(2026, 2, 28))
# DE 19 % exclusive: fee 49.00 -> 9.31; discount -9.80 -> -1.862 -> -1.86; tax 7.45;
# 39.20 + 7.45 = 46.65 owed
FEE = SyncLine("l_fee", "flat", "Platform fee", D("49.00"), *FEB, None, "de_vat", D("19"),
               False, D("9.31"))
DISCOUNT = SyncLine("l_disc", "discount", "Discount 20 %", D("-9.80"), *FEB, None, "de_vat",
                    D("19.000000000000"), False, D("-1.86"))
DE = SyncInvoice("inv_de", "issuing", "de", "sub_de", "2026-02", "EUR", D("39.20"),
                 "charge_automatically", 30, None, None, False, (FEE, DISCOUNT),
                 tax_total=D("7.45"), total_including_tax=D("46.65"), tax_rate_key="de_vat",
                 tax_country="DE")


def test_exclusive_tax_goes_as_tax_amounts_with_the_rate():
    fee, discount = (line_params(DE, line) for line in DE.lines)
    assert fee["amount"] == 4900
    assert fee["tax_amounts"] == [{
        "amount": 931, "taxable_amount": 4900, "taxability_reason": "standard_rated",
        "tax_rate_data": {"display_name": "VAT", "inclusive": False, "percentage": "19",
                          "description": "de_vat", "country": "DE", "jurisdiction": "DE",
                          "jurisdiction_level": "country", "tax_type": "vat"}}]
    # the discount: negative, its tax negative; the same rate data (one TaxRate at Stripe)
    assert (discount["amount"], discount["tax_amounts"][0]["amount"],
            discount["tax_amounts"][0]["taxable_amount"]) == (-980, -186, -980)
    assert discount["tax_amounts"][0]["tax_rate_data"] == fee["tax_amounts"][0]["tax_rate_data"]
    check_invoice(DE)


def test_inclusive_regional_reverse_charge_and_untaxed_lines():
    # JP 10 % inclusive: 10.00 x 10/110 = 0.909.. -> 0.91 inside; taxable 10.00 - 0.91 = 9.09
    jp_line = replace(FEE, amount=D("10.00"), tax_rate_key="jp_consumption",
                      tax_rate_percent=D("10"), tax_inclusive=True, tax_amount=D("0.91"))
    jp = replace(DE, currency="USD", total=D("10.00"), lines=(jp_line,), tax_total=D("0.91"),
                 total_including_tax=D("10.00"), tax_rate_key="jp_consumption",
                 tax_country="JP")
    check_invoice(jp)
    [tax] = line_params(jp, jp_line)["tax_amounts"]
    assert (tax["amount"], tax["taxable_amount"], tax["tax_rate_data"]["inclusive"],
            tax["tax_rate_data"]["display_name"]) == (91, 909, True, "Tax")
    # US-CA 7.25 %: 10.00 x 0.0725 = 0.725 -> 0.73; the state and its jurisdiction
    ca_line = replace(jp_line, tax_rate_key="us_ca_sales", tax_rate_percent=D("7.25"),
                      tax_inclusive=False, tax_amount=D("0.73"))
    ca = replace(jp, lines=(ca_line,), tax_total=D("0.73"), total_including_tax=D("10.73"),
                 tax_rate_key="us_ca_sales", tax_country="US", tax_region="CA")
    [tax] = line_params(ca, ca_line)["tax_amounts"]
    assert tax["tax_rate_data"] == {
        "display_name": "Sales tax", "inclusive": False, "percentage": "7.25",
        "description": "us_ca_sales", "country": "US", "jurisdiction": "US-CA",
        "jurisdiction_level": "state", "tax_type": "sales_tax", "state": "CA"}
    # EU B2B reverse charge: a 0 % entry of 0, and the note as a custom field
    rc_line = replace(FEE, tax_rate_key="reverse_charge", tax_rate_percent=D("0"),
                      tax_amount=D("0.00"))
    rc = replace(DE, total=D("49.00"), lines=(rc_line,), tax_total=D("0"),
                 total_including_tax=D("49.00"), tax_rate_key="reverse_charge",
                 tax_country="FR", tax_note="reverse charge")
    check_invoice(rc)
    [tax] = line_params(rc, rc_line)["tax_amounts"]
    assert (tax["amount"], tax["taxable_amount"], tax["taxability_reason"],
            tax["tax_rate_data"]["percentage"]) == (0, 4900, "reverse_charge", "0")
    assert invoice_params(rc, "cus_1")["custom_fields"] == [
        {"name": "VAT", "value": "Reverse charge: VAT to be accounted for by the recipient"}]
    assert "custom_fields" not in invoice_params(DE, "cus_1")
    # no rate (no address): no tax_amounts at all
    plain = replace(FEE, tax_rate_key=None, tax_rate_percent=None, tax_amount=D("0"))
    assert "tax_amounts" not in line_params(replace(DE, tax_rate_key=None), plain)


def test_refusals_before_any_call():
    with pytest.raises(SyncRefused, match="line taxes sum to 745 minor units but tax_total"):
        check_invoice(replace(DE, tax_total=D("7.46")))
    with pytest.raises(SyncRefused, match=r"total_including_tax 46\.66 is not the total"):
        check_invoice(replace(DE, total_including_tax=D("46.66")))
    odd = replace(FEE, tax_rate_percent=D("19.12345"))
    with pytest.raises(SyncRefused, match=r"tax rate 19\.12345 % cannot be sent to Stripe"):
        check_invoice(replace(DE, lines=(odd, DISCOUNT)))


def test_a_re_rated_tax_changes_the_key_and_updates_stale_lines():
    rerated = (replace(FEE, tax_rate_percent=D("16"), tax_amount=D("7.84")),
               replace(DISCOUNT, tax_rate_percent=D("16"), tax_amount=D("-1.57")))
    assert lines_key(DE.lines, "EUR") != lines_key(rerated, "EUR")
    assert lines_key(DE.lines, "EUR") == lines_key((FEE, replace(DISCOUNT)), "EUR")
    # the lines at Stripe still carry 19 %: both are stale and updated with the new tax
    at_stripe = {"l_fee": NS(id="il_1", amount=4900, taxes=[NS(amount=931)]),
                 "l_disc": NS(id="il_2", amount=-980, taxes=[NS(amount=-186)])}
    new = replace(DE, lines=rerated, tax_total=D("6.27"), total_including_tax=D("45.47"))
    assert [line.line_id for line in stale_lines(new, at_stripe)] == ["l_fee", "l_disc"]
    assert stale_lines(DE, at_stripe) == []
    update = update_line_params(new, rerated[0], "il_1")
    assert (update["id"], update["amount"], update["tax_amounts"][0]["amount"]) == (
        "il_1", 4900, 784)
    untaxed = replace(FEE, tax_rate_key=None, tax_rate_percent=None, tax_amount=D("0"))
    assert update_line_params(DE, untaxed, "il_1")["tax_amounts"] == ""


def test_verify_compares_totals_including_tax():
    lines = {"l_fee": NS(amount=4900, taxes=[NS(amount=931)]),
             "l_disc": NS(amount=-980, taxes=[NS(amount=-186)])}
    good = NS(currency="eur", total=4665, total_taxes=[NS(amount=745)])
    verify(DE, good, lines)
    # Stripe billing the total before tax is the named failure, with both amounts
    with pytest.raises(SyncRefused, match=r"Stripe total 39\.20 EUR differs from the ledger "
                                          r"total 46\.65 EUR \(including tax\)"):
        verify(DE, NS(currency="eur", total=3920, total_taxes=[]), lines)
    with pytest.raises(SyncRefused, match=r"differing: l_fee"):
        verify(DE, good, {**lines, "l_fee": NS(amount=4900, taxes=[NS(amount=930)])})


LINE = SyncCreditNoteLine("cnl_1", "l_api", D("-5.00"), "API calls", "il_api", D("60.00"),
                          D(0), "de_vat", D("19"), False, D("-0.95"))
NOTE = SyncCreditNote("cn_1", "inv_de", "de", "2026-02", "USD", D("5.00"), "correction",
                      "correction", "INV-202602-00001", "payment_processing.pending", "in_1",
                      None, False, False, (LINE,), D("0.95"), D("5.95"))
OPEN = StripeInvoiceState("open", 8330, 0, 0, 0, ("txr_de",))


def test_credit_note_lines_credit_their_tax_at_the_invoice_rate():
    # 5.00 credited at 19 %: tax 0.95, 5.95 including tax
    check_credit_note(NOTE)
    kind, params = credit_note_params(NOTE, OPEN)
    assert kind == "pre_payment"
    assert params["lines"] == [{
        "type": "invoice_line_item", "invoice_line_item": "il_api", "amount": 500,
        "metadata": {"credit_note_line_id": "cnl_1", "corrects_line_id": "l_api"},
        "tax_amounts": [{"amount": 95, "tax_rate": "txr_de", "taxable_amount": 500}]}]
    # paid: the balance is credited with the amount including tax
    paid = StripeInvoiceState("paid", 0, 8330, 0, 0, ("txr_de",))
    assert credit_note_params(NOTE, paid)[1]["credit_amount"] == 595
    # only 5.94 left to pay: refused, naming the amount including tax
    with pytest.raises(SyncRefused, match=r"credits 5\.95 USD but Stripe invoice"):
        credit_note_params(NOTE, replace(OPEN, amount_remaining=594))
    # an invoice at Stripe without its tax cannot be credited with tax
    with pytest.raises(SyncRefused, match="has 0 tax rates"):
        credit_note_params(NOTE, replace(OPEN, tax_rates=()))
    with pytest.raises(SyncRefused, match=r"total_including_tax 5\.96"):
        check_credit_note(replace(NOTE, total_including_tax=D("5.96")))
    stripe_note = NS(id="cn_s", currency="usd", total=595, invoice="in_1",
                     total_taxes=[NS(amount=95)])
    ours = [NS(id="cnli_1", amount=500, taxes=[NS(amount=95)],
               metadata=stripe.StripeObject.construct_from(
                   {"credit_note_line_id": "cnl_1"}, None))]
    verify_credit_note(NOTE, stripe_note, ours)
    with pytest.raises(SyncRefused,
                       match=r"credits 5\.00 USD, the ledger's credit note cn_1 5\.95"):
        verify_credit_note(NOTE, replace_ns(stripe_note, total=500, total_taxes=[]), ours)


def replace_ns(ns: NS, **changes: object) -> NS:
    return NS(**{**vars(ns), **changes})
