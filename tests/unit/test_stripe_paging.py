"""Reading a whole Stripe list through the gateway, without Stripe: every page is one recorded
call, the next starts after the last object, and an invoice whose embedded lines are complete
costs no call at all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pipelines.providers.stripe_sync.client import Attempt, StripeGateway, TokenBucket
from pipelines.providers.stripe_sync.paging import invoice_lines, list_all

OBJECTS = [SimpleNamespace(id=f"obj_{n:03}") for n in range(250)]


def page_of(params: dict[str, Any]) -> SimpleNamespace:
    """One page of OBJECTS as Stripe answers it."""
    ids = [o.id for o in OBJECTS]
    start = ids.index(params["starting_after"]) + 1 if "starting_after" in params else 0
    end = start + params["limit"]
    return SimpleNamespace(data=OBJECTS[start:end], has_more=end < len(OBJECTS))


def gateway(asked: list[dict[str, Any]], attempts: list[Attempt]) -> StripeGateway:
    def line_items(invoice_id: str, *, params: dict[str, Any],
                   options: dict[str, Any]) -> SimpleNamespace:
        asked.append({"invoice": invoice_id, **params})
        return page_of(params)

    client = SimpleNamespace(v1=SimpleNamespace(
        invoices=SimpleNamespace(line_items=SimpleNamespace(list=line_items))))
    return StripeGateway(client, TokenBucket(1e9, burst=1000), attempts.append)


def test_list_all_reads_every_page_after_the_last_object_with_the_given_params() -> None:
    asked: list[dict[str, Any]] = []
    attempts: list[Attempt] = []

    def list_page(params: dict[str, Any], options: dict[str, Any]) -> SimpleNamespace:
        asked.append(dict(params))
        return page_of(params)

    found = list(list_all(gateway([], attempts), "invoices.list", None, list_page,
                          {"expand": ["data.payments"]}))
    assert found == OBJECTS
    assert asked == [{"limit": 100, "expand": ["data.payments"]},
                     {"limit": 100, "expand": ["data.payments"], "starting_after": "obj_099"},
                     {"limit": 100, "expand": ["data.payments"], "starting_after": "obj_199"}]
    assert [(a.operation, a.outcome) for a in attempts] == [("invoices.list", "ok")] * 3


def test_invoice_lines_lists_only_when_stripe_says_there_are_more() -> None:
    asked: list[dict[str, Any]] = []
    attempts: list[Attempt] = []
    stripe_gateway = gateway(asked, attempts)
    complete = SimpleNamespace(id="in_1", lines=SimpleNamespace(data=OBJECTS[:3],
                                                                has_more=False))
    assert invoice_lines(stripe_gateway, "invoices.lines.list", "inv_1", complete) == \
        OBJECTS[:3]
    assert asked == [] and attempts == []

    partial = SimpleNamespace(id="in_2", lines=SimpleNamespace(data=OBJECTS[:10],
                                                               has_more=True))
    assert invoice_lines(stripe_gateway, "invoices.lines.list", "inv_2", partial) == OBJECTS
    assert [a["invoice"] for a in asked] == ["in_2"] * 3
    assert {(a.operation, a.internal_id) for a in attempts} == {("invoices.lines.list",
                                                                 "inv_2")}
