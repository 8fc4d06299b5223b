"""Sending due notifications, pure of the warehouse: one signed POST per attempt, channels in
parallel, each channel's deliveries in order, and what each attempt's answer means.

Each attempt signs the frozen payload afresh (Standard Webhooks; `webhook-id` stays the message
id on every retry) and POSTs it within the request deadline (`bounded_http`). A 2xx completes
the delivery; anything else (another status, no answer, a channel secret missing from the
environment, a URL the pipeline refuses) schedules the next attempt after the Svix-style delays
of RETRY_DELAYS, and after the last one the delivery fails. A 410 Gone disables the channel.

A channel's pass stops at the first request that got no answer (refused, reset, too slow): its
other due deliveries are not sent but recorded as deferred attempts, which count like a failed
one (sent_at NULL, the error says what they were deferred behind). So a receiver that does not
answer costs one request per run, and each of its deliveries still retries on the backoff
schedule and is given up after about 27.6 hours, however long the queue. After a 410 the
channel's other deliveries are skipped. No delivery starts once the pass budget is spent: those
left are not attempted and stay due for the next run.

Of a failed answer the error keeps `HTTP <status>: ` and the start of the body, at most
ERROR_CHARS in all, with anything that looks like a secret blanked (the channel's secret, any
`whsec_` secret, `v1,` signatures, Authorization and Bearer values); headers are never kept.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pipelines.catalog.models import NotificationChannel
from pipelines.notifications.bounded_http import (
    MAX_ANSWER_BYTES,
    REQUEST_DEADLINE_SECONDS,
    Answer,
    BoundedHttp,
    NoAnswer,
)
from pipelines.notifications.signing import SECRET_PREFIX, WebhookSecretError, sign_headers
from pipelines.notifications.urls import url_problem

RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
"""Wait after failed attempt n (1-based) before attempt n+1: the first send is immediate, then
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours in all)."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
ERROR_CHARS = 200
"""The longest error kept of an attempt (an answer's status and the start of its body)."""

Outcome = Literal["delivered", "retrying", "failed", "disabled", "skipped"]
Sender = Callable[[str, bytes, Mapping[str, str]], Answer]
"""POST (url, body, headers) -> the answer; raises NoAnswer."""


@dataclass(frozen=True)
class DeliveryLimits:
    """How long and how wide one delivery pass may go."""

    request_deadline_s: float = REQUEST_DEADLINE_SECONDS
    max_answer_bytes: int = MAX_ANSWER_BYTES
    pass_budget_s: float = 120.0        # no delivery starts later than this into the pass
    parallel_channels: int = 8


DEFAULT_LIMITS = DeliveryLimits()


@dataclass(frozen=True)
class Due:
    """A delivery to attempt now."""

    message_id: str
    channel: str
    attempt: int            # the number of this attempt (1 for the first send)
    event_type: str
    invoice_id: str | None
    payload: str
    max_attempts: int = MAX_ATTEMPTS


@dataclass(frozen=True)
class Attempt:
    """One attempt's result, as recorded."""

    message_id: str
    channel: str
    attempt: int
    at: datetime
    sent_at: datetime | None
    http_status: int | None
    outcome: Outcome
    latency_ms: float | None
    error: str | None
    next_attempt_at: datetime | None = None
    deferred: bool = False   # not sent: behind its channel's request without an answer

    @property
    def unanswered(self) -> bool:
        """Sent, and no answer came back: the receiver is unreachable or too slow."""
        return self.sent_at is not None and self.http_status is None


def decide(attempt: int, http_status: int | None, now: datetime, *,
           max_attempts: int = MAX_ATTEMPTS) -> tuple[Outcome, datetime | None]:
    """What an attempt's answer means: delivered on a 2xx, the channel disabled on 410 Gone,
    else another attempt after the backoff delay, or failure once the attempts are used up."""
    if http_status is not None and 200 <= http_status < 300:
        return "delivered", None
    if http_status == 410:
        return "disabled", None
    if attempt >= max_attempts:
        return "failed", None
    return "retrying", now + RETRY_DELAYS[attempt - 1]


_SECRET_LOOKING = (
    (re.compile(r"(?i)\b((?:proxy-)?authorization)(\W{0,3}?[:=]\W{0,3}?)"
                r"(?:(?:bearer|basic|token)\s+)?[^\s\"',;}]+"), r"\1\2[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"whsec_[\w+/=-]*"), "[redacted]"),
    (re.compile(r"\bv1,[\w+/=-]{8,}"), "v1,[redacted]"),
)


def secret_texts(value: str | None) -> list[str]:
    """Every form of a channel's secret that must never be stored: each `whsec_` secret of
    the variable, its base64 part, and the key itself when it is text."""
    texts: list[str] = []
    for part in (value or "").split():
        texts.append(part)
        encoded = part.removeprefix(SECRET_PREFIX)
        texts.append(encoded)
        with suppress(ValueError):  # not base64, or a key that is not text
            texts.append(base64.b64decode(encoded, validate=True).decode("utf-8"))
    return sorted({t for t in texts if len(t) >= 8}, key=len, reverse=True)


def error_excerpt(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` as stored: secrets and secret-looking values blanked, one line of printable
    characters, at most ERROR_CHARS."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    for pattern, replacement in _SECRET_LOOKING:
        text = pattern.sub(replacement, text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:ERROR_CHARS]


def unsendable(channel: NotificationChannel, secrets: str) -> str | None:
    """Why nothing can be sent to `channel`: a URL the pipeline refuses, or no secret."""
    refused = url_problem(channel.url)
    if refused:
        return f"channel {channel.key}: {refused}"
    if not channel.secret_env:
        return f"channel {channel.key} names no secret_env"
    if not secrets:
        return f"environment variable {channel.secret_env} is not set"
    return None


def attempt_delivery(due: Due, channel: NotificationChannel, now: datetime, send: Sender, *,
                     environ: Mapping[str, str]) -> Attempt:
    """Sign and send one delivery; never raises (failures become the attempt's error). The
    signing timestamp is the wall clock of the request: receivers compare it with theirs."""
    sent_at: datetime | None = datetime.fromtimestamp(int(time.time()), tz=UTC)
    status: int | None = None
    latency: float | None = None
    secrets = environ.get(channel.secret_env or "") or ""
    body = due.payload.encode("utf-8")
    error = unsendable(channel, secrets)
    if error is None:
        try:
            headers = sign_headers(secrets, due.message_id, int(sent_at.timestamp()), body,
                                   name=str(channel.secret_env))
        except WebhookSecretError as exc:
            error = str(exc)
    if error is not None:
        sent_at = None  # nothing is sent unsigned, nor to a URL the pipeline refuses
    else:
        started = time.perf_counter()
        try:
            answer = send(channel.url, body, {
                **headers, "content-type": "application/json",
                "user-agent": "billing-pipeline-webhooks/1"})
        except NoAnswer as exc:
            error = str(exc)
        else:
            status = answer.status
            if not 200 <= status < 300:
                error = f"HTTP {status}: " + answer.body.decode("utf-8", errors="replace")
        latency = round((time.perf_counter() - started) * 1000, 3)
    outcome, next_at = decide(due.attempt, status, now, max_attempts=due.max_attempts)
    stored = error_excerpt(error, secret_texts(secrets)) if error is not None else None
    return Attempt(due.message_id, due.channel, due.attempt, now, sent_at, status, outcome,
                   latency, stored, next_at)


def send_all(due: Sequence[Due], channels: Mapping[str, NotificationChannel],
             disabled: set[str], now: datetime, *, environ: Mapping[str, str],
             limits: DeliveryLimits = DEFAULT_LIMITS) -> list[Attempt]:
    """Attempt the due deliveries: channels in parallel (at most `limits.parallel_channels`),
    each channel's in order, until its first request without an answer or a 410, and none
    started after `limits.pass_budget_s`. Returns an attempt for every delivery tried,
    deferred or skipped; the deliveries left out were not started. Pure of the warehouse."""
    by_channel: dict[str, list[Due]] = {}
    for item in due:
        by_channel.setdefault(item.channel, []).append(item)
    budget_ends = time.monotonic() + limits.pass_budget_s

    def skipped(item: Due, why: str) -> Attempt:
        return Attempt(item.message_id, item.channel, item.attempt, now, None, None, "skipped",
                       None, why)

    def deferred(item: Due, behind: Attempt) -> Attempt:
        outcome, next_at = decide(item.attempt, None, now, max_attempts=item.max_attempts)
        why = error_excerpt(f"deferred, not sent: {item.channel} did not answer "
                            f"{behind.message_id} in this run ({behind.error})")
        return Attempt(item.message_id, item.channel, item.attempt, now, None, None, outcome,
                       None, why, next_at, deferred=True)

    def run_channel(key: str, items: list[Due]) -> list[Attempt]:
        channel = channels.get(key)
        if channel is None:
            return [skipped(i, f"channel {key} is no longer in the catalog") for i in items]
        if key in disabled:
            return [skipped(i, f"channel {key} is disabled (410 Gone)") for i in items]
        results: list[Attempt] = []
        with BoundedHttp(deadline_s=limits.request_deadline_s,
                         max_answer_bytes=limits.max_answer_bytes) as http:
            for position, item in enumerate(items):
                if time.monotonic() >= budget_ends:
                    break
                result = attempt_delivery(item, channel, now, http.post, environ=environ)
                results.append(result)
                rest = items[position + 1:]
                if result.outcome == "disabled":
                    results += [skipped(i, f"channel {key} is disabled (410 Gone)") for i in rest]
                    break
                if result.unanswered:
                    results += [deferred(i, result) for i in rest]
                    break
        return results

    if not by_channel:
        return []
    workers = max(1, min(limits.parallel_channels, len(by_channel)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify") as pool:
        futures = [pool.submit(run_channel, key, items) for key, items in by_channel.items()]
        return [attempt for future in futures for attempt in future.result()]
