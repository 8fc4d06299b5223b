"""Reading a whole Stripe list: Stripe answers a page at a time (at most 100 objects), and the
next page starts after the last object of this one. Every page is one call through the gateway,
so it is paced, retried and recorded like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pipelines.providers.stripe_sync.client import StripeGateway

PAGE_SIZE = 100  # Stripe's largest page

ListPage = Callable[[dict[str, Any], dict[str, Any]], Any]  # (params, options) -> a list page


def list_all(gateway: StripeGateway, operation: str, internal_id: str | None,
             list_page: ListPage, params: dict[str, Any] | None = None) -> Iterator[Any]:
    """Every object of a Stripe list, in the order Stripe lists them. `list_page` is the SDK
    call, given each page's params (`params` with the page size and the cursor)."""
    after: str | None = None
    while True:
        page_params: dict[str, Any] = {"limit": PAGE_SIZE, **(params or {})}
        if after:
            page_params["starting_after"] = after
        page = gateway.call(operation, internal_id,
                            lambda options, p=page_params: list_page(p, options))
        yield from page.data
        if not page.has_more or not page.data:
            return
        after = page.data[-1].id


def invoice_lines(gateway: StripeGateway, operation: str, internal_id: str | None,
                  stripe_invoice: Any) -> list[Any]:
    """Every line of a Stripe invoice: the invoice object carries only the first ten, so the
    rest are listed when Stripe says there are more."""
    if not stripe_invoice.lines.has_more:
        return list(stripe_invoice.lines.data)
    v1 = gateway.client.v1
    return list(list_all(
        gateway, operation, internal_id,
        lambda params, options: v1.invoices.line_items.list(stripe_invoice.id, params=params,
                                                            options=options)))
