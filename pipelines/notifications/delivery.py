"""Delivering notifications: signed POSTs to the channels, retried with growing backoff.

A delivery is due when its `next_attempt_at` has come (the run's "now"). Each attempt signs the
frozen payload afresh (Standard Webhooks; the `webhook-id` stays the message id on every retry)
and POSTs it with httpx (15 s timeout). A 2xx completes the delivery; anything else (or no
answer, or a channel secret missing from the environment) schedules the next attempt after the
Svix-style delays of RETRY_DELAYS, and after the last one the delivery fails and an alert opens.
A 410 Gone disables the channel: its later deliveries are skipped until `billing notify enable`.
Every attempt, skipped ones included, is a row of `notify.delivery_attempts`.

Channels are sent to in parallel (bounded), each channel's deliveries in order; the warehouse is
written from the calling thread only.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import duckdb
import httpx
import polars as pl

from pipelines.alerts import Alert, raise_alerts, resolve_alerts
from pipelines.catalog.models import Catalog, NotificationChannel
from pipelines.notifications.events import TEST_EVENT
from pipelines.notifications.signing import WebhookSecretError, sign_headers
from pipelines.warehouse import transaction

TIMEOUT_SECONDS = 15.0
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
"""Wait after failed attempt n (1-based) before attempt n+1: the first send is immediate, then
5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours in all)."""
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_PARALLEL_CHANNELS = 8
SOURCE = "notifications"

Outcome = Literal["delivered", "retrying", "failed", "disabled", "skipped"]


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


@dataclass(frozen=True)
class DeliveryCounts:
    """What one delivery pass did (asset metadata)."""

    attempted: int = 0
    delivered: int = 0
    failed: int = 0
    retries_scheduled: int = 0
    skipped: int = 0
    channels_disabled: int = 0


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


Sender = Callable[[str, bytes, Mapping[str, str]], httpx.Response]


def attempt_delivery(due: Due, channel: NotificationChannel, now: datetime, send: Sender, *,
                     environ: Mapping[str, str]) -> Attempt:
    """Sign and send one delivery; never raises (failures become the attempt's error). The
    signing timestamp is the wall clock of the request: receivers compare it with theirs."""
    sent_at = datetime.fromtimestamp(int(time.time()), tz=UTC)
    status: int | None = None
    latency: float | None = None
    error: str | None = None
    try:
        if not channel.secret_env:
            raise WebhookSecretError(f"channel {channel.key} names no secret_env")
        secrets = environ.get(channel.secret_env)
        if not secrets:
            raise WebhookSecretError(f"environment variable {channel.secret_env} is not set")
        body = due.payload.encode("utf-8")
        headers = sign_headers(secrets, due.message_id, int(sent_at.timestamp()), body,
                               name=channel.secret_env)
    except WebhookSecretError as exc:
        # nothing is sent without a signature
        sent_at, error = None, str(exc)
    else:
        started = time.perf_counter()
        try:
            response = send(channel.url, body, headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}".strip()
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = round((time.perf_counter() - started) * 1000, 3)
    outcome, next_at = decide(due.attempt, status, now, max_attempts=due.max_attempts)
    return Attempt(due.message_id, due.channel, due.attempt, now, sent_at, status, outcome,
                   latency, error, next_at)


def http_sender(client: httpx.Client) -> Sender:
    """POST a JSON body with the Standard Webhooks headers."""
    def send(url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return client.post(url, content=body, headers={
            **headers, "content-type": "application/json",
            "user-agent": "billing-pipeline-webhooks/1"})
    return send


def due_deliveries(con: duckdb.DuckDBPyConnection, now: datetime) -> list[Due]:
    """Pending deliveries whose next attempt has come, oldest first."""
    rows = con.execute("""
        SELECT d.message_id, d.channel, d.attempts + 1, e.event_type, e.invoice_id, e.payload
        FROM notify.deliveries d JOIN notify.events e USING (message_id)
        WHERE d.status = 'pending' AND d.next_attempt_at <= $now
        ORDER BY d.next_attempt_at, e.occurred_at, d.created_at, d.message_id""",
                       {"now": now}).fetchall()
    return [Due(*row) for row in rows]


def disabled_channels(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT channel FROM notify.channel_state "
                       "WHERE disabled_at IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def send_all(due: Sequence[Due], channels: Mapping[str, NotificationChannel],
             disabled: set[str], now: datetime, send: Sender, *,
             environ: Mapping[str, str]) -> list[Attempt]:
    """Attempt every due delivery: channels in parallel, each channel's in order; a channel
    that answers 410 gets no more sends in this pass. Pure of the warehouse."""
    by_channel: dict[str, list[Due]] = {}
    for item in due:
        by_channel.setdefault(item.channel, []).append(item)

    def skipped(item: Due, why: str) -> Attempt:
        return Attempt(item.message_id, item.channel, item.attempt, now, None, None, "skipped",
                       None, why)

    def run_channel(key: str, items: list[Due]) -> list[Attempt]:
        channel = channels.get(key)
        results: list[Attempt] = []
        gone = key in disabled
        for item in items:
            if channel is None:
                results.append(skipped(item, f"channel {key} is no longer in the catalog"))
            elif gone:
                results.append(skipped(item, f"channel {key} is disabled (410 Gone)"))
            else:
                result = attempt_delivery(item, channel, now, send, environ=environ)
                results.append(result)
                gone = result.outcome == "disabled"
        return results

    if not by_channel:
        return []
    workers = min(MAX_PARALLEL_CHANNELS, len(by_channel))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify") as pool:
        futures = [pool.submit(run_channel, key, items) for key, items in by_channel.items()]
        return [attempt for future in futures for attempt in future.result()]


def record_attempts(con: duckdb.DuckDBPyConnection, attempts: Sequence[Attempt],
                    due: Iterable[Due], *, now: datetime, run_id: str | None,
                    alert_failures: bool = True) -> DeliveryCounts:
    """Write the attempts, move the deliveries on, disable channels that answered 410 and raise
    the alerts. Run it inside the caller's transaction."""
    if not attempts:
        return DeliveryCounts()
    about = {(d.message_id, d.channel): d for d in due}
    frame = pl.DataFrame([{**a.__dict__, "run_id": run_id} for a in attempts], schema={
        "message_id": pl.String, "channel": pl.String, "attempt": pl.Int32,
        "at": pl.Datetime("us", "UTC"), "sent_at": pl.Datetime("us", "UTC"),
        "http_status": pl.Int32, "outcome": pl.String, "latency_ms": pl.Float64,
        "error": pl.String, "next_attempt_at": pl.Datetime("us", "UTC"), "run_id": pl.String})
    con.register("notify_attempts_frame", frame.to_arrow())
    con.execute("""
        INSERT INTO notify.delivery_attempts
            (message_id, channel, attempt, "at", sent_at, http_status, outcome, latency_ms,
             error, next_attempt_at, run_id)
        SELECT message_id, channel, attempt, "at", sent_at, http_status, outcome,
               latency_ms, error, next_attempt_at, run_id
        FROM notify_attempts_frame""").fetchall()
    con.execute("""
        UPDATE notify.deliveries AS d
        SET status = CASE a.outcome WHEN 'delivered' THEN 'delivered'
                                    WHEN 'retrying' THEN 'pending'
                                    WHEN 'skipped' THEN 'skipped'
                                    ELSE 'failed' END,
            attempts = CASE WHEN a.outcome = 'skipped' THEN d.attempts ELSE a.attempt END,
            next_attempt_at = a.next_attempt_at,
            last_attempt_at = CASE WHEN a.outcome = 'skipped' THEN d.last_attempt_at
                                   ELSE a."at" END,
            last_http_status = coalesce(a.http_status, d.last_http_status),
            last_error = a.error,
            completed_at = CASE WHEN a.outcome = 'retrying' THEN NULL ELSE a."at" END
        FROM notify_attempts_frame a
        WHERE d.message_id = a.message_id AND d.channel = a.channel""").fetchall()
    con.unregister("notify_attempts_frame")
    gone = sorted({a.channel for a in attempts if a.outcome == "disabled"})
    for channel in gone:
        con.execute("""
            INSERT OR REPLACE INTO notify.channel_state (channel, disabled_at, reason, updated_at)
            VALUES ($channel, $now, '410 Gone from the receiver', $now)""",
                    {"channel": channel, "now": now}).fetchall()
    alerts = [Alert(key=f"notification_channel_disabled:{channel}", severity="critical",
                    subject=f"notification channel {channel}",
                    detail="the receiver answered 410 Gone: the channel is disabled and its "
                           "deliveries are skipped until `billing notify enable --channel "
                           f"{channel}`", source=SOURCE) for channel in gone]
    for a in attempts:
        if a.outcome == "failed" and alert_failures:
            item = about.get((a.message_id, a.channel))
            what = f"{item.event_type} for {item.invoice_id}" if item else a.message_id
            alerts.append(Alert(
                key=f"notification_failed:{a.channel}:{a.message_id}", severity="warning",
                subject=f"notification {a.message_id} to {a.channel}",
                detail=f"{what}: gave up after {a.attempt} attempt(s); last error: {a.error}",
                source=SOURCE))
    raise_alerts(con, alerts, now=now)
    count = {outcome: sum(1 for a in attempts if a.outcome == outcome)
             for outcome in ("delivered", "retrying", "failed", "disabled", "skipped")}
    return DeliveryCounts(
        attempted=len(attempts) - count["skipped"], delivered=count["delivered"],
        failed=count["failed"] + count["disabled"], retries_scheduled=count["retrying"],
        skipped=count["skipped"], channels_disabled=len(gone))


def deliver_due(con: duckdb.DuckDBPyConnection, catalog: Catalog, *, now: datetime,
                run_id: str | None = None, client: httpx.Client | None = None,
                environ: Mapping[str, str] | None = None) -> DeliveryCounts:
    """Send every delivery due at `now` and record the attempts."""
    due = due_deliveries(con, now)
    if not due:
        return DeliveryCounts()
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        attempts = send_all(due, catalog.notification_channels, disabled_channels(con), now,
                            http_sender(http), environ=os.environ if environ is None else environ)
    finally:
        if own:
            http.close()
    with transaction(con):
        return record_attempts(con, attempts, due, now=now, run_id=run_id)


def send_test(con: duckdb.DuckDBPyConnection, channel: NotificationChannel, *, now: datetime,
              client: httpx.Client | None = None,
              environ: Mapping[str, str] | None = None) -> Attempt:
    """Send a signed `webhook.test` event to one channel now (one attempt, no retries), even
    when the channel is disabled, and record it like any delivery."""
    message_id = f"msg_test_{uuid.uuid4().hex}"
    stamp = now.isoformat().replace("+00:00", "Z")
    payload = json.dumps({"type": TEST_EVENT, "timestamp": stamp,
                          "data": {"channel": channel.key,
                                   "message": "test notification from billing-pipeline"}},
                         separators=(",", ":"))
    with transaction(con):
        con.execute("""
            INSERT INTO notify.events (message_id, event_type, occurred_at, created_at, payload)
            VALUES ($id, $type, $now, $now, $payload)""",
                    {"id": message_id, "type": TEST_EVENT, "now": now,
                     "payload": payload}).fetchall()
        con.execute("""
            INSERT INTO notify.deliveries (message_id, channel, status, attempts,
                                           next_attempt_at, created_at)
            VALUES ($id, $channel, 'pending', 0, $now, $now)""",
                    {"id": message_id, "channel": channel.key, "now": now}).fetchall()
    due = Due(message_id, channel.key, 1, TEST_EVENT, None, payload, max_attempts=1)
    own = client is None
    http = client or httpx.Client(timeout=TIMEOUT_SECONDS)
    try:
        attempt = attempt_delivery(due, channel, now, http_sender(http),
                                   environ=os.environ if environ is None else environ)
    finally:
        if own:
            http.close()
    with transaction(con):
        # a failed test is printed, not alerted: the user is looking at it
        record_attempts(con, [attempt], [], now=now, run_id=None, alert_failures=False)
    return attempt


def enable_channel(con: duckdb.DuckDBPyConnection, channel: str, *, now: datetime) -> bool:
    """Send to a disabled channel again (after its receiver is fixed); True if it was
    disabled. Deliveries skipped meanwhile stay skipped."""
    rows = con.execute("""
        UPDATE notify.channel_state SET disabled_at = NULL, reason = 'enabled again',
               updated_at = $now
        WHERE channel = $channel AND disabled_at IS NOT NULL""",
                       {"channel": channel, "now": now}).fetchall()
    changed = bool(rows and rows[0][0])
    resolve_alerts(con, [f"notification_channel_disabled:{channel}"], now=now)
    return changed
