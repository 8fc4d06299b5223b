"""Rules of the Stripe sync that need no Stripe: amounts in minor units, idempotency keys, and
which status a Stripe event moves an invoice to."""

from __future__ import annotations

from decimal import Decimal

import pytest


def test_amount_rules():
    from pipelines.providers.stripe_sync.inbound import target_status
    from pipelines.providers.stripe_sync.issue_plan import SyncRefused, key, to_minor

    assert to_minor(Decimal("-12.30"), "USD", "x") == -1230
    assert to_minor(Decimal("1500"), "JPY", "x") == 1500
    assert to_minor(Decimal("1.234"), "KWD", "x") == 1234
    with pytest.raises(SyncRefused, match=r"line l1 amount: 0\.005 USD is not a whole number"):
        to_minor(Decimal("0.005"), "USD", "line l1 amount")
    assert key("inv_1", "invoice.create") == "bp:inv_1:invoice.create:v1"
    charge = {"type": "charge.refunded",
              "data": {"object": {"amount": 1000, "amount_refunded": 400, "refunded": False}}}
    assert target_status(charge, 1000) == ("partially_refunded", 0)
    charge["data"]["object"].update(amount_refunded=1000, refunded=True)
    assert target_status(charge, 1000) == ("refunded", 0)
    note = {"type": "credit_note.created",
            "data": {"object": {"refunds": [{"amount_refunded": 600}], "out_of_band_amount": 0}}}
    assert target_status(note, 1000) == ("partially_refunded", 600)
    assert target_status(note, 1000, 400) == ("refunded", 600)
    assert target_status({"type": "credit_note.created", "data": {"object": {"refunds": []}}},
                         1000) == (None, 0)


@pytest.mark.parametrize("value", ["cust_1", "o'brien", 'say "hi"', "back\\slash\\", '\\"',
                                   "x' OR metadata['customer_id']:'y"])
def test_search_values_are_escaped_and_the_local_stripe_reads_them_back(value):
    """Ids go into Stripe's search query language in double quotes, their backslashes and
    double quotes escaped, so the query matches exactly that id: never a parse error, never
    another clause smuggled in. The local Stripe's parser (standing in for Stripe's) reads the
    escapes back."""
    from devkit.stripe_emulator.search import matches, parse
    from pipelines.providers.stripe_sync.issue_plan import metadata_query, search_string

    assert search_string('a"b\\c') == '"a\\"b\\\\c"'
    query = parse(metadata_query("customer_id", value), frozenset({"metadata"}), "customers")
    assert [(c.field, c.key, c.op, c.value) for c in query.clauses] == [
        ("metadata", "customer_id", ":", value)]
    assert matches(query, {"metadata": {"customer_id": value}})
    assert not matches(query, {"metadata": {"customer_id": value + "x"}})
