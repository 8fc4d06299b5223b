"""Events: ``/v1/events`` retrieve and list (``type`` with ``*`` wildcard, ``types[]``).

Events are emitted by the resource modules through :meth:`State.emit`, newest first, with
``data.object`` as it was at that moment.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import invalid
from .routes import Params
from .templates import Predicate, list_endpoint, retrieve_endpoint

_MAX_TYPES = 20


def _event_test(p: Params) -> Predicate:
    """Check the type filters of a list request; return the test of each event."""
    if "type" in p and "types" in p:
        raise invalid("You may pass either `type` or `types`, but not both.", "types")
    types = p.get("types")
    if types is not None and len(types) > _MAX_TYPES:
        raise invalid(f"You may pass at most {_MAX_TYPES} event types.", "types")
    wanted = p.get("type")
    pattern = re.compile("^" + re.escape(wanted).replace(r"\*", ".*") + "$") if wanted else None

    def keep(o: dict[str, Any]) -> bool:
        if types is not None and o["type"] not in types:
            return False
        if pattern is not None and not pattern.match(o["type"]):
            return False
        delivered = o["pending_webhooks"] == 0
        return "delivery_success" not in p or delivered == p["delivery_success"]

    return keep


retrieve_endpoint("event", "/v1/events", "Event")
list_endpoint("event", "/v1/events", "Event", where=_event_test)
