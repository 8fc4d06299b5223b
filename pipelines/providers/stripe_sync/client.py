"""Talking to Stripe within its rules: a client-side rate limiter, bounded retries with
exponential backoff and full jitter, and a record of every call.

Stripe answers 429 when an account sends more than its rate limit (about 25 requests/s in test
mode, 100 in live mode), and stripe-python does not retry a 429 by itself. The sync therefore
paces its own requests with a token bucket, turns the SDK's retries off (`max_network_retries=0`)
and retries here, with the same idempotency key each time, so a retried write that had in fact
committed is answered with Stripe's saved response instead of being done twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe

T = TypeVar("T")

TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
TEST_MODE_RPS = 25.0
LIVE_MODE_RPS = 100.0


def default_rate(api_key: str) -> float:
    """Stripe's documented default limit for the key's mode: 25 req/s test, 100 req/s live."""
    return TEST_MODE_RPS if api_key.startswith(TEST_KEY_PREFIXES) else LIVE_MODE_RPS


class TokenBucket:
    """A thread-safe token bucket: `acquire()` blocks until the next request may go out.

    `burst` tokens may go at once after a pause; steady state is `rate` per second. Requests
    are served in the order they reserve a slot, so several workers share the rate fairly.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0:
            raise ValueError(f"requests_per_second must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = burst
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def acquire(self) -> float:
        """Take one token, sleeping until it is there; returns the seconds waited."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0  # may go negative: a reservation of a future slot
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed call: exponential backoff with full jitter
    (a uniform wait in [0, min(cap, base * 2**n))), at least `Retry-After` when Stripe asks."""

    max_attempts: int = 8
    base_seconds: float = 0.05
    cap_seconds: float = 5.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The wait before attempt `attempt + 1` (attempt counts from 1)."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Attempt:
    """One HTTP call to Stripe, as `sync.sync_attempts` keeps it (never the API key)."""

    operation: str
    internal_id: str | None
    idempotency_key: str | None
    http_status: int | None
    outcome: str  # ok | retried | failed
    latency_ms: float
    error: str | None
    at: datetime
    attempt: int
    request_id: str | None
    rate_limited: bool = False


class StripeCallError(Exception):
    """A Stripe call that failed for good (not retryable, or out of attempts)."""

    def __init__(self, operation: str, cause: Exception, attempts: int) -> None:
        self.operation = operation
        self.cause = cause
        self.attempts = attempts
        super().__init__(f"{operation} failed after {attempts} attempt(s): {describe(cause)}")


def describe(error: Exception) -> str:
    """A short, key-free description of a Stripe SDK error."""
    if isinstance(error, stripe.StripeError):
        status = error.http_status
        code = error.code or type(error).__name__
        message = (error.user_message or str(error) or "").strip()
        return f"{status or 'no response'} {code}: {message}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def retryable(error: Exception) -> bool:
    """Worth another attempt with the same idempotency key: 429s (rate limit, lock timeout),
    409 (the key is still in use by an earlier attempt), 5xx, timeouts and lost connections."""
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    if isinstance(error, stripe.StripeError):
        status = error.http_status or 0
        should = (error.headers or {}).get("Stripe-Should-Retry")
        if should == "false":
            return False
        return status == 409 or status >= 500 or should == "true"
    return False


def retry_after(error: Exception) -> float:
    """Seconds Stripe asked us to wait (`Retry-After`), 0 when it did not say."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


class StripeGateway:
    """The one way the sync calls Stripe: paced by the limiter, retried by the policy, each
    attempt handed to `record` (which writes it to `sync.sync_attempts`)."""

    def __init__(self, client: stripe.StripeClient, limiter: TokenBucket,
                 record: Callable[[Attempt], None], *, policy: RetryPolicy | None = None,
                 seed: int | None = None) -> None:
        self.client = client
        self.limiter = limiter
        self.record = record
        self.policy = policy or RetryPolicy()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def call(self, operation: str, internal_id: str | None, fn: Callable[[dict[str, Any]], T],
             idempotency_key: str | None = None) -> T:
        """Run `fn(options)` (an SDK call) until it succeeds, fails for good, or the attempts
        run out. `options` carries the idempotency key, the same on every attempt."""
        options: dict[str, Any] = {}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            started = time.perf_counter()
            at = datetime.now(UTC)
            try:
                result = fn(options)
            except Exception as exc:
                latency = (time.perf_counter() - started) * 1000.0
                again = retryable(exc) and attempt < self.policy.max_attempts
                wait = 0.0
                if again:
                    with self._rng_lock:
                        wait = max(retry_after(exc), self.policy.backoff(attempt, self._rng))
                error = describe(exc)
                if again:
                    error += f" (retrying in {wait:.3f}s)"
                self.record(Attempt(
                    operation, internal_id, idempotency_key, getattr(exc, "http_status", None),
                    "retried" if again else "failed", latency, error, at, attempt,
                    getattr(exc, "request_id", None),
                    rate_limited=isinstance(exc, stripe.RateLimitError)))
                if not again:
                    raise StripeCallError(operation, exc, attempt) from exc
                time.sleep(wait)
                continue
            latency = (time.perf_counter() - started) * 1000.0
            response = getattr(result, "last_response", None)
            self.record(Attempt(operation, internal_id, idempotency_key,
                                getattr(response, "code", 200), "ok", latency, None, at,
                                attempt, getattr(response, "request_id", None)))
            return result


def metadata(obj: Any) -> dict[str, str]:
    """A Stripe object's metadata as a plain dict (empty when it has none)."""
    meta = getattr(obj, "metadata", None)
    return dict(meta.to_dict()) if meta is not None else {}


def make_client(api_key: str, api_base: str | None, *,
                timeout: float = 30.0) -> stripe.StripeClient:
    """A StripeClient over httpx that never retries on its own (the gateway does)."""
    kwargs: dict[str, Any] = {}
    if api_base:
        kwargs["base_addresses"] = {"api": api_base.rstrip("/")}
    return stripe.StripeClient(
        api_key, max_network_retries=0,
        http_client=stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True), **kwargs)
