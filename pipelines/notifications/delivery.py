"""A delivery pass: claim what is due, let go of the warehouse, send, then record.

No receiver can hold the warehouse: the pass takes the writer for two short transactions and
never while a request is in flight.

1. Claim, under the writer: the pending deliveries whose `next_attempt_at` has come (the run's
   "now") and that no other pass holds get `claimed_by` this pass until `claimed_until` (wall
   clock, CLAIM_DURATION from now). Two passes that overlap (a sync run and a reconciliation
   run, `billing notify test`) never send one delivery twice; the claim of a pass that died
   lapses and its deliveries are due again.
2. Send, holding nothing (`sending`): channels in parallel, every request within its deadline,
   a channel's pass cut short at its first request without an answer, nothing started after
   the pass budget.
3. Record, under the writer: every attempt (a row of `notify.delivery_attempts`, skipped and
   deferred ones included), the deliveries moved on, channels that answered 410 Gone disabled
   (their later deliveries skipped until `billing notify enable`), alerts for the deliveries
   given up, and this pass's claims released (deliveries not started stay due as they were).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from pipelines.alerts import Alert, raise_alerts, resolve_alerts
from pipelines.catalog.models import Catalog, NotificationChannel
from pipelines.notifications.bounded_http import BoundedHttp
from pipelines.notifications.events import TEST_EVENT
from pipelines.notifications.sending import (
    DEFAULT_LIMITS,
    Attempt,
    DeliveryLimits,
    Due,
    attempt_delivery,
    send_all,
)
from pipelines.warehouse import scratch, transaction

SOURCE = "notifications"
CLAIM_DURATION = timedelta(hours=1)
"""How long a pass holds the deliveries it claimed: longer than any pass (its budget plus a
request) and its wait for the writer to record; the delay before a dead pass's claims lapse."""

Writer = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
"""Opens the warehouse for writing (`WarehouseResource.writer`, or `connect_writer` of a path)."""


@dataclass(frozen=True)
class DeliveryCounts:
    """What one delivery pass did (asset metadata)."""

    attempted: int = 0          # requests sent, or refused before sending (no secret, bad URL)
    delivered: int = 0
    failed: int = 0
    retries_scheduled: int = 0
    skipped: int = 0
    deferred: int = 0           # not sent after their channel failed to answer (counted tried)
    channels_disabled: int = 0
    left_for_next_run: int = 0  # not started: the pass budget was spent


def claim_due(con: duckdb.DuckDBPyConnection, now: datetime, *,
              claim: str) -> list[Due]:
    """Claim the pending deliveries due at `now` that no other pass holds; oldest first. Run
    it inside the caller's transaction."""
    wall = datetime.now(UTC)
    con.execute("""
        UPDATE notify.deliveries SET claimed_by = $claim, claimed_until = $until
        WHERE status = 'pending' AND next_attempt_at <= $now
          AND (claimed_until IS NULL OR claimed_until <= $wall)""",
                {"claim": claim, "until": wall + CLAIM_DURATION, "now": now,
                 "wall": wall}).fetchall()
    rows = con.execute("""
        SELECT d.message_id, d.channel, d.attempts + 1, e.event_type, e.invoice_id, e.payload
        FROM notify.deliveries d JOIN notify.events e USING (message_id)
        WHERE d.claimed_by = $claim
        ORDER BY d.next_attempt_at, e.occurred_at, d.created_at, d.message_id""",
                       {"claim": claim}).fetchall()
    return [Due(*row) for row in rows]


def disabled_channels(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT channel FROM notify.channel_state "
                       "WHERE disabled_at IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def release_claims(con: duckdb.DuckDBPyConnection, claim: str) -> None:
    """Let go of what a pass claimed and did not record: due again at once."""
    con.execute("UPDATE notify.deliveries SET claimed_by = NULL, claimed_until = NULL "
                "WHERE claimed_by = $claim", {"claim": claim}).fetchall()


def record_attempts(con: duckdb.DuckDBPyConnection, attempts: Sequence[Attempt],
                    due: Iterable[Due], *, now: datetime, run_id: str | None, claim: str,
                    alert_failures: bool = True) -> DeliveryCounts:
    """Write the attempts, move on the deliveries this pass still holds, disable channels that
    answered 410, raise the alerts and release the pass's claims. Run it inside the caller's
    transaction."""
    if not attempts:
        release_claims(con, claim)
        return DeliveryCounts()
    about = {(d.message_id, d.channel): d for d in due}
    schema = {
        "message_id": pl.String, "channel": pl.String, "attempt": pl.Int32,
        "at": pl.Datetime("us", "UTC"), "sent_at": pl.Datetime("us", "UTC"),
        "http_status": pl.Int32, "outcome": pl.String, "latency_ms": pl.Float64,
        "error": pl.String, "next_attempt_at": pl.Datetime("us", "UTC"), "run_id": pl.String}
    frame = pl.DataFrame([{**{k: getattr(a, k) for k in schema if k != "run_id"},
                           "run_id": run_id} for a in attempts], schema=schema)
    con.register("notify_attempts_frame", frame.to_arrow())
    with scratch(con, frames=["notify_attempts_frame"]):
        con.execute("""
            INSERT INTO notify.delivery_attempts
                (message_id, channel, attempt, "at", sent_at, http_status, outcome, latency_ms,
                 error, next_attempt_at, run_id)
            SELECT message_id, channel, attempt, "at", sent_at, http_status, outcome,
                   latency_ms, error, next_attempt_at, run_id
            FROM notify_attempts_frame""").fetchall()
        # a claim lost to another pass (this one outlived CLAIM_DURATION) leaves the delivery
        # to that pass: its attempt above is kept, the delivery's state is that pass's
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
                completed_at = CASE WHEN a.outcome = 'retrying' THEN NULL ELSE a."at" END,
                claimed_by = NULL, claimed_until = NULL
            FROM notify_attempts_frame a
            WHERE d.message_id = a.message_id AND d.channel = a.channel
              AND d.claimed_by = $claim""", {"claim": claim}).fetchall()
    release_claims(con, claim)
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
    deferred = sum(1 for a in attempts if a.deferred)
    return DeliveryCounts(
        attempted=len(attempts) - count["skipped"] - deferred, delivered=count["delivered"],
        failed=count["failed"] + count["disabled"], retries_scheduled=count["retrying"],
        skipped=count["skipped"], deferred=deferred, channels_disabled=len(gone))


def deliver_due(writer: Writer, catalog: Catalog, *, now: datetime, run_id: str | None = None,
                environ: Mapping[str, str] | None = None,
                limits: DeliveryLimits = DEFAULT_LIMITS) -> DeliveryCounts:
    """Send every delivery due at `now` and record the attempts, holding the warehouse only to
    claim and to record."""
    claim = f"claim_{uuid.uuid4().hex}"
    with writer() as con, transaction(con):
        due = claim_due(con, now, claim=claim)
        disabled = disabled_channels(con)
    if not due:
        return DeliveryCounts()
    try:
        attempts = send_all(due, catalog.notification_channels, disabled, now,
                            environ=os.environ if environ is None else environ, limits=limits)
    except BaseException:
        with writer() as con, transaction(con):
            release_claims(con, claim)
        raise
    with writer() as con, transaction(con):
        counts = record_attempts(con, attempts, due, now=now, run_id=run_id, claim=claim)
    return replace(counts, left_for_next_run=len(due) - len(attempts))


def send_test(writer: Writer, channel: NotificationChannel, *, now: datetime,
              environ: Mapping[str, str] | None = None,
              limits: DeliveryLimits = DEFAULT_LIMITS) -> Attempt:
    """Send a signed `webhook.test` event to one channel now (one attempt, no retries), even
    when the channel is disabled, and record it like any delivery (the warehouse let go of
    while it is sent)."""
    message_id = f"msg_test_{uuid.uuid4().hex}"
    claim = f"claim_{message_id}"
    stamp = now.isoformat().replace("+00:00", "Z")
    payload = json.dumps({"type": TEST_EVENT, "timestamp": stamp,
                          "data": {"channel": channel.key,
                                   "message": "test notification from billing-pipeline"}},
                         separators=(",", ":"))
    with writer() as con, transaction(con):
        con.execute("""
            INSERT INTO notify.events (message_id, event_type, occurred_at, created_at, payload)
            VALUES ($id, $type, $now, $now, $payload)""",
                    {"id": message_id, "type": TEST_EVENT, "now": now,
                     "payload": payload}).fetchall()
        # claimed at once: a delivery pass running meanwhile leaves it alone
        con.execute("""
            INSERT INTO notify.deliveries (message_id, channel, status, attempts,
                                           next_attempt_at, created_at, claimed_by,
                                           claimed_until)
            VALUES ($id, $channel, 'pending', 0, $now, $now, $claim, $until)""",
                    {"id": message_id, "channel": channel.key, "now": now, "claim": claim,
                     "until": datetime.now(UTC) + CLAIM_DURATION}).fetchall()
    due = Due(message_id, channel.key, 1, TEST_EVENT, None, payload, max_attempts=1)
    with BoundedHttp(deadline_s=limits.request_deadline_s,
                     max_answer_bytes=limits.max_answer_bytes) as http:
        attempt = attempt_delivery(due, channel, now, http.post,
                                   environ=os.environ if environ is None else environ)
    with writer() as con, transaction(con):
        # a failed test is printed, not alerted: the user is looking at it
        record_attempts(con, [attempt], [], now=now, run_id=None, claim=claim,
                        alert_failures=False)
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
