"""Every emulated v1 endpoint, and the lookup of the one a request is for.

Each resource module registers its endpoints in the route table (``routes.route``) as it is
imported; this module imports them all, so :func:`match_route` sees the whole table.
"""

from __future__ import annotations

from . import (  # noqa: F401 (imported for the endpoints they register)
    credit_notes,
    customers,
    events,
    invoice_items,
    invoice_lifecycle,
    invoice_lines,
    invoices,
    payments,
    products,
    refunds,
    taxes,
    webhooks,
)
from .routes import ROUTES, Route


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route answering ``method path``, and the ids its template captured."""
    for r in ROUTES:
        if r.method == method:
            m = r.regex.match(path)
            if m:
                return r, m.groupdict()
    return None
