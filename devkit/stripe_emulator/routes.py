"""The route table of the emulated v1 API: method, path template, parameter type, handler.

Each handler is registered with :func:`route` under its method, path template and the SDK
parameter TypedDict that validates its parameters. A handler receives the :class:`State`
(locked by the caller), the request context, the validated parameters and the path ids, and
returns the response body (status 200) or raises :class:`StripeAPIError`.

Routes are matched (``endpoints.match_route``) in registration order, so a literal path
(``/v1/customers/search``) must be registered before a template it also fits
(``/v1/customers/{id}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]  # a request's parameters, validated against the SDK's TypedDict
Body = dict[str, Any]  # the JSON body of an answer
Handler = Callable[..., Body]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/v1/invoices/{id}/finalize"
    regex: re.Pattern[str]
    params_class: str  # name in stripe.params
    handler: Handler

    @property
    def targets_object(self) -> bool:
        """Whether the route acts on an existing object (lock_timeout applies)."""
        return "{" in self.template


ROUTES: list[Route] = []


def route(method: str, template: str, params_class: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``method template``."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)

    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, template, re.compile(f"^{pattern}$"), params_class, fn))
        return fn

    return register


def encode_body(body: Any) -> bytes:
    """An answer's bytes, as Stripe formats them: indented JSON and a newline."""
    return (json.dumps(body, indent=2) + "\n").encode()
