"""Idempotency keys: a POST retried with the same ``Idempotency-Key`` gets the first answer.

As on Stripe: the same key with the same parameters replays the saved status and body; the same
key with other parameters, or on another endpoint, answers 400 ``idempotency_error``; a second
request while the first with that key is still running answers 409 ``idempotency_key_in_use``.
Keys are scoped per API key and kept 24 hours (emulator clock). A request that fails before its
endpoint runs (auth, validation, injected faults) saves nothing, so it can be retried with the
same key.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from .errors import StripeAPIError

IDEMPOTENCY_TTL = 24 * 3600
Scope = tuple[str, str]  # (API key, idempotency key)


@dataclass
class SavedAnswer:
    """An idempotency key's first request and (once done) its answer."""

    method: str
    path: str
    fingerprint: str
    created: float
    status: int | None = None  # None while the first request is executing
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    request_id: str = ""


class IdempotencyKeys:
    """The keys seen, with the first request of each and its answer."""

    def __init__(self) -> None:
        self._saved: dict[Scope, SavedAnswer] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._saved.clear()

    def release(self, scope: Scope, saved: SavedAnswer) -> None:
        """Forget a key whose first request never finished, so that a retry can run."""
        with self._lock:
            if self._saved.get(scope) is saved:
                del self._saved[scope]

    def reserve(
        self, scope: Scope, method: str, path: str, fingerprint: str, request_id: str, now: int
    ) -> tuple[SavedAnswer, bool]:
        """The key's record and whether it is new (reserved for this request)."""
        key = scope[1]
        with self._lock:
            saved = self._saved.get(scope)
            if saved is not None and now - saved.created > IDEMPOTENCY_TTL:
                saved = None
            if saved is None:
                saved = SavedAnswer(method, path, fingerprint, now, request_id=request_id)
                self._saved[scope] = saved
                return saved, True
            if (saved.method, saved.path) != (method, path):
                raise StripeAPIError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they "
                    f"were first used for ('{saved.method} {saved.path}' vs '{method} {path}'). "
                    f"Try using a key other than '{key}' if you meant to execute a different "
                    "request.",
                    type="idempotency_error",
                )
            if saved.fingerprint != fingerprint:
                raise StripeAPIError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type="idempotency_error",
                )
            if saved.status is None:
                raise StripeAPIError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later.",
                    code="idempotency_key_in_use",
                )
            return saved, False
