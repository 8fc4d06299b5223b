"""The local Stripe's request parameters, checked without a server: the schema comes from the
official SDK's TypedDicts, and form bodies parse and validate as Stripe's do."""

from __future__ import annotations

import sys
import typing

import pytest
import stripe

from devkit.stripe_emulator.params import params_schema, parse_form, validate


def test_parameter_schema_comes_from_the_sdk_typeddicts():
    hints = typing.get_type_hints(
        stripe.params.InvoiceCreateParams,
        localns={
            **vars(sys.modules["stripe._request_options"]),
            "StripeContext": stripe.StripeContext,
        },
    )
    options = set(stripe._request_options.RequestOptions.__annotations__)
    assert set(params_schema("InvoiceCreateParams").fields) == set(hints) - options

    parsed = validate(
        "InvoiceAddLinesParams",
        parse_form(
            "lines[0][price_data][currency]=usd&lines[0][price_data][unit_amount_decimal]=1.5"
            "&lines[0][quantity]=3&expand[]=customer&invoice_metadata[k]=v"
        ),
    )
    assert parsed["lines"][0]["quantity"] == 3
    assert str(parsed["lines"][0]["price_data"]["unit_amount_decimal"]) == "1.5"
    assert parsed["expand"] == ["customer"]
    with pytest.raises(Exception, match=r"Missing required param: lines\[0\]\[period\]\[end\]"):
        validate("InvoiceAddLinesParams", parse_form("lines[0][period][start]=1"))
    with pytest.raises(Exception, match="Invalid integer: soon"):
        validate("InvoiceCreateParams", parse_form("customer=cus_1&days_until_due=soon"))
