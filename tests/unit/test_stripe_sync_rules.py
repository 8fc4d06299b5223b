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
