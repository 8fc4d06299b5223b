"""The pure rules of documents finance makes by hand (contract section 9): a goodwill credit
note up to what remains creditable, in the currency's minor units; a void of an issued invoice
nobody has paid."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.rating.lifecycle import transition_path
from pipelines.rating.manual_documents import (
    PAID,
    UNPAID_ISSUED,
    credit_refusal,
    parse_credit_amount,
    void_refusal,
)

D = Decimal


@pytest.mark.parametrize(("text", "currency", "expected"), [
    ("12.50", "USD", D("12.50")),
    ("12.5", "USD", D("12.50")),
    ("12.500", "USD", D("12.50")),   # same amount, written with a trailing zero
    ("1500", "JPY", D("1500")),
    ("1.234", "KWD", D("1.234")),
])
def test_amounts_in_the_currency_minor_units(text, currency, expected):
    amount = parse_credit_amount(text, currency)
    assert amount == expected and str(amount) == str(expected)


@pytest.mark.parametrize(("text", "currency", "refusal"), [
    ("12.505", "USD", "more decimals than USD has (2)"),
    ("1500.5", "JPY", "more decimals than JPY has (0)"),
    ("0", "USD", "must be more than zero"),
    ("-5", "USD", "must be more than zero"),
    ("ten", "USD", "not a decimal number"),
    ("NaN", "USD", "must be more than zero"),
])
def test_amounts_refused(text, currency, refusal):
    assert refusal in parse_credit_amount(text, currency)


def test_credit_up_to_what_remains():
    assert credit_refusal("inv_1", "issued", D("40.00"), D("40.00"), "USD") is None
    assert credit_refusal("inv_1", "paid", D("10.00"), D("40.00"), "USD") is None
    refusal = credit_refusal("inv_1", "issued", D("40.01"), D("40.00"), "USD")
    assert "more than what remains creditable" in refusal and "40.00 USD" in refusal


@pytest.mark.parametrize("status", ["draft", "issuing", "draft.syncing", "voided", "refunded"])
def test_credit_refused_outside_issued_invoices(status):
    assert credit_refusal("inv_1", status, D("1.00"), D("100.00"), "USD") is not None


@pytest.mark.parametrize("status", sorted(UNPAID_ISSUED))
def test_unpaid_issued_invoices_may_be_voided_and_the_lifecycle_allows_it(status):
    assert void_refusal("inv_1", status) is None
    # contract section 4: issued -> payment_processing.pending -> voided; the others directly
    path = transition_path(status, "voided")
    assert path is not None and path[-1] == "voided"
    assert path == (["payment_processing.pending", "voided"] if status == "issued"
                    else ["voided"])


@pytest.mark.parametrize("status", sorted(PAID))
def test_a_paid_invoice_is_credited_not_voided(status):
    assert "credit it instead" in void_refusal("inv_1", status)


@pytest.mark.parametrize("status", ["draft", "draft.syncing", "issuing", "issuing.syncing"])
def test_a_draft_is_not_voided(status):
    assert "not issued" in void_refusal("inv_1", status)


def test_a_voided_invoice_is_not_voided_again():
    assert "already voided" in void_refusal("inv_1", "voided")


def test_a_credit_also_stays_within_what_remains_including_tax():
    # 10.00 at 19 % on top = 11.90: fits 11.90 remaining including tax, not 11.89
    assert credit_refusal("inv_1", "issued", D("10.00"), D("10.00"), "EUR",
                          including_tax=D("11.90"), remaining_including_tax=D("11.90")) is None
    refusal = credit_refusal("inv_1", "issued", D("10.00"), D("10.00"), "EUR",
                             including_tax=D("11.90"), remaining_including_tax=D("11.89"))
    assert refusal is not None and "11.90 EUR including tax" in refusal and "11.89 EUR" in refusal
