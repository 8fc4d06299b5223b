"""Fault injection: what a flaky network and a busy Stripe account do to a client.

Every knob is off by default. Knobs ending in ``_rate`` are probabilities per request, knobs
ending in ``_next`` are countdowns ("the next N requests"), consumed in arrival order.
``match`` restricts the injected faults (not the token-bucket rate limit, which models the
account-wide limit) to requests whose ``"METHOD /path"`` starts with it, e.g.
``"POST /v1/invoices"``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import StripeAPIError

RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. You can learn more about rate limits here "
    "https://stripe.com/docs/rate-limits."
)
LOCK_TIMEOUT_MESSAGE = (
    "This object cannot be accessed right now because another API request or Stripe process "
    "is currently accessing it. If you see this error intermittently, retry the request. If you "
    "see this error frequently and are making multiple concurrent requests to a single object, "
    "make your requests serially or at a lower rate. See https://stripe.com/docs/rate-limits "
    "for more details."
)
API_ERROR_MESSAGE = (
    "An unknown error occurred. Please try again later or contact support at "
    "https://support.stripe.com/contact if the problem persists."
)


@dataclass
class Faults:
    """Fault knobs. Build from keywords, or from a JSON object with :meth:`from_mapping`."""

    error_rate: float = 0.0  # P(500 api_error) per request, before it executes
    fail_next: int = 0  # the next N requests answer 500 api_error
    rate_limit_rate: float = 0.0  # P(429 rate_limit) per request
    rate_limit_next: int = 0  # a burst: the next N requests answer 429 rate_limit
    lock_timeout_rate: float = 0.0  # P(429 lock_timeout) per write to an existing object
    drop_rate: float = 0.0  # P(a committed write's response is dropped: connection closed)
    drop_next: int = 0  # the next N committed writes get no response
    latency_ms: float = 0.0  # added to every API request
    latency_jitter_ms: float = 0.0  # plus uniform [0, jitter)
    rps: float = 0.0  # token-bucket limit on API requests per second; 0 = unlimited
    burst: int = 0  # bucket size; 0 = max(1, ceil(rps))
    retry_after: int = 1  # Retry-After seconds sent with injected 429s
    search_lag_seconds: float = 0.0  # objects this young are not yet visible to /search
    match: str = ""  # only inject into requests whose "METHOD /path" starts with this
    seed: int | None = None  # seed for the fault dice (reproducible runs)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: Faults | None = None) -> Faults:
        """A copy of ``base`` (default: all off) with ``values`` applied; rejects unknown knobs."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(unknown)}")
        current = dataclasses.asdict(base) if base is not None else {}
        for name, value in values.items():
            current[name] = _convert(name, known[name].type, value)
        faults = cls(**current)
        faults.check()
        return faults

    def check(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "lock_timeout_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("fail_next", "rate_limit_next", "drop_next", "burst", "retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("latency_ms", "latency_jitter_ms", "rps", "search_lag_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert(name: str, type_name: Any, value: Any) -> Any:
    kind = str(type_name)
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            if isinstance(value, bool) or int(value) != float(value):
                raise ValueError
            return int(value)
        if kind == "str":
            return "" if value is None else str(value)
        if value is None:
            return None
        return int(value)  # seed
    except (TypeError, ValueError):
        raise ValueError(f"invalid value for {name}: {value!r}") from None


WRITE_METHODS = frozenset({"POST", "DELETE"})


@dataclass
class FaultCounters:
    api_error: int = 0
    rate_limit: int = 0
    rate_limit_bucket: int = 0
    lock_timeout: int = 0
    dropped: int = 0
    delayed: int = 0


class FaultInjector:
    """Applies a :class:`Faults` configuration to requests; thread-safe."""

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self.counters = FaultCounters()
        self._faults = Faults()
        self._rng = random.Random()
        self._tokens = 0.0
        self._last_refill = time.monotonic()
        self.configure(faults or Faults())

    @property
    def faults(self) -> Faults:
        with self._lock:
            return dataclasses.replace(self._faults)

    def configure(self, faults: Faults) -> None:
        faults.check()
        with self._lock:
            self._faults = dataclasses.replace(faults)
            self._rng = random.Random(faults.seed)
            self._tokens = float(self._bucket_size())
            self._last_refill = time.monotonic()

    def reset_counters(self) -> None:
        with self._lock:
            self.counters = FaultCounters()

    def _bucket_size(self) -> int:
        f = self._faults
        return f.burst or max(1, math.ceil(f.rps))

    def _matches(self, method: str, path: str) -> bool:
        return f"{method} {path}".startswith(self._faults.match)

    def latency(self) -> float:
        """Seconds to delay this request."""
        with self._lock:
            f = self._faults
            jitter = self._rng.uniform(0, f.latency_jitter_ms) if f.latency_jitter_ms else 0.0
            delay = f.latency_ms + jitter
            if delay > 0:
                self.counters.delayed += 1
            return delay / 1000.0

    def before(self, method: str, path: str, *, existing_object: bool) -> StripeAPIError | None:
        """The error to answer instead of executing the request, if any."""
        with self._lock:
            f = self._faults
            if f.rps > 0:
                now = time.monotonic()
                size = self._bucket_size()
                self._tokens = min(size, self._tokens + (now - self._last_refill) * f.rps)
                self._last_refill = now
                if self._tokens < 1.0:
                    self.counters.rate_limit_bucket += 1
                    wait = max(1, math.ceil((1.0 - self._tokens) / f.rps))
                    return _rate_limited(wait)
                self._tokens -= 1.0
            if not self._matches(method, path):
                return None
            if f.rate_limit_next > 0:
                f.rate_limit_next -= 1
                self.counters.rate_limit += 1
                return _rate_limited(f.retry_after)
            if f.rate_limit_rate and self._rng.random() < f.rate_limit_rate:
                self.counters.rate_limit += 1
                return _rate_limited(f.retry_after)
            if f.fail_next > 0:
                f.fail_next -= 1
                self.counters.api_error += 1
                return _api_error()
            if f.error_rate and self._rng.random() < f.error_rate:
                self.counters.api_error += 1
                return _api_error()
            if (
                method in WRITE_METHODS
                and existing_object
                and f.lock_timeout_rate
                and self._rng.random() < f.lock_timeout_rate
            ):
                self.counters.lock_timeout += 1
                return StripeAPIError(
                    429,
                    LOCK_TIMEOUT_MESSAGE,
                    code="lock_timeout",
                    headers={"Retry-After": str(f.retry_after), "Stripe-Should-Retry": "true"},
                )
            return None

    def should_drop(self, method: str, path: str) -> bool:
        """Whether to close the connection instead of answering this committed write."""
        if method not in WRITE_METHODS:
            return False
        with self._lock:
            f = self._faults
            if not self._matches(method, path):
                return False
            if f.drop_next > 0:
                f.drop_next -= 1
                self.counters.dropped += 1
                return True
            if f.drop_rate and self._rng.random() < f.drop_rate:
                self.counters.dropped += 1
                return True
            return False

    def search_lag(self) -> float:
        with self._lock:
            return self._faults.search_lag_seconds


def _rate_limited(retry_after: int) -> StripeAPIError:
    return StripeAPIError(
        429, RATE_LIMIT_MESSAGE, code="rate_limit", headers={"Retry-After": str(retry_after)}
    )


def _api_error() -> StripeAPIError:
    return StripeAPIError(500, API_ERROR_MESSAGE, type="api_error")
