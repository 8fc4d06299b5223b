"""Hostile JSON refused with a 422 naming the field, never an exception: the body decoder (deep
nesting, lone surrogates, non-finite numbers) and the field rules (an unhashable trigger, an
instant out of range). Over HTTP, on every route: tests/integration/test_api_hostile_input.py."""

from __future__ import annotations

import json

import pytest

from pipelines.api import rules
from pipelines.api.app import Refused, decode_body


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def _refusal(raw: bytes) -> tuple[int, str | None, str]:
    with pytest.raises(Refused) as refused:
        decode_body(raw)
    error = refused.value.answer.body["error"]
    return refused.value.answer.status_code, error["field"], error["message"]


@pytest.mark.parametrize(("raw", "field", "words"), [
    (b"[" * 200_000 + b"]" * 200_000, "body", "deeper than 32 levels"),
    (b'{"a":' * 200_000 + b"1" + b"}" * 200_000, "body", "deeper than 32 levels"),
    (json.dumps({"invoicing": {"x": _nested(40)}}).encode(), "invoicing.x" + "[0]" * 30,
     "deeper than 32 levels"),
    (b'{"trigger": "\\ud800"}', "trigger", "Unicode text"),
    (b'{"invoicing": {"lines": [{"external_id": "ok"}, {"external_id": "a\\udfffb"}]}}',
     "invoicing.lines[1].external_id", "Unicode text"),
    (b'{"invoicing": {"\\ud800": 1}}', "invoicing.\\ud800", "key must be Unicode text"),
    (b'{"total": 1e400}', "total", "finite"),
    (b'{"total": NaN}', "body", "not valid JSON"),
    (b'{"total": -Infinity}', "body", "not valid JSON"),
    (b"\xff\xfe", "body", "not valid JSON"),
])
def test_bodies_no_call_can_take_are_refused_naming_the_field(raw: bytes, field: str,
                                                              words: str) -> None:
    status, named, message = _refusal(raw)
    assert (status, named) == (422, field)
    assert words in message
    json.dumps(message, ensure_ascii=False).encode()    # the answer itself is valid UTF-8


def test_an_ordinary_body_decodes_with_its_canonical_text() -> None:
    decoded = decode_body(b'{"b": [1, 2.5, "\\u00e9"], "a": {"c": null}}')
    assert decoded.value == {"b": [1, 2.5, "é"], "a": {"c": None}}
    assert decoded.canonical == '{"a":{"c":null},"b":[1,2.5,"é"]}'
    deepest_allowed = "[" * 31 + "]" * 31
    assert rules.check_json_value(json.loads(deepest_allowed)) is None


@pytest.mark.parametrize("trigger", [[], {}, ["paid"], {"paid": 1}, 1, True])
def test_a_trigger_that_is_not_a_string_is_a_field_error(trigger: object) -> None:
    [problem] = rules.validate_payment_status({"trigger": trigger})
    assert problem.field == "trigger"
    assert "is not one of" in problem.message


@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                                     "0001-01-01T00:30:00+14:00"])
def test_an_instant_beyond_the_calendar_once_in_utc_is_a_field_error(instant: str) -> None:
    issuing = rules.validate_issuing_synchronized(
        {"invoicing": {"sent_to_customer_at": instant}})
    assert [p.field for p in issuing] == ["invoicing.sent_to_customer_at"]
    assert [p.field for p in rules.validate_statement({"as_of": instant, "invoices": []})] == [
        "as_of"]
