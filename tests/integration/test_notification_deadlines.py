"""No receiver can stall the pipeline: a delivery pass over real HTTP on 127.0.0.1 to receivers
that trickle their answer, refuse connections or echo secrets in a long 500. Each request ends
by its deadline, the warehouse is free while requests are in flight, a channel that does not
answer gets one request per pass while the others get all theirs, overlapping passes never send
one delivery twice, and what is kept of a failed answer is short and secret-free."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pytest

from pipelines.catalog.models import Catalog, NotificationChannel
from pipelines.notifications.delivery import DeliveryCounts, deliver_due
from pipelines.notifications.sending import DeliveryLimits, secret_texts
from pipelines.warehouse import connect_writer, transaction, warehouse_lock
from tests.support.receivers import BOOKING_SECRET
from tests.support.slow_receivers import ECHO_500_PATH, FAST_PATH, TRICKLE_PATH, SlowReceivers
from tests.support.warehouse import query

NOW = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
DEADLINE_S = 1.0
LIMITS = DeliveryLimits(request_deadline_s=DEADLINE_S)
SECRET_ENV = "SLOW_RECEIVER_SECRET"


def catalog_of(**urls: str) -> Catalog:
    """A catalog holding only notification channels (all the delivery pass reads of it)."""
    channels = {key: NotificationChannel(key=key, url=url, secret_env=SECRET_ENV,
                                         event_types=("invoice.paid",))
                for key, url in urls.items()}
    return Catalog(meters={}, plans={}, customers={}, subscriptions={}, billing_profiles={},
                   notification_channels=channels)


def enqueue(warehouse: Path, deliveries: list[tuple[str, str]]) -> None:
    """Due deliveries (message id, channel), in this order, each its own event."""
    with connect_writer(str(warehouse)) as con, transaction(con):
        for position, (message_id, channel) in enumerate(deliveries):
            created = NOW - timedelta(minutes=10) + timedelta(seconds=position)
            con.execute("""
                INSERT OR IGNORE INTO notify.events (message_id, event_type, invoice_id,
                    occurred_at, created_at, payload)
                VALUES ($id, 'invoice.paid', 'inv_' || $id, $at, $at, '{"type":"invoice.paid"}')
                """, {"id": message_id, "at": created}).fetchall()
            con.execute("""
                INSERT INTO notify.deliveries (message_id, channel, status, attempts,
                    next_attempt_at, created_at)
                VALUES ($id, $channel, 'pending', 0, $at, $at)""",
                        {"id": message_id, "channel": channel, "at": created}).fetchall()


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def take_the_writer(warehouse: Path) -> str:
    """Open the warehouse for writing from here, as another process's step would, waiting at
    most a second for the writer lock."""
    try:
        with warehouse_lock(str(warehouse), exclusive=True, timeout_s=1.0):
            con = duckdb.connect(str(warehouse))
            try:
                con.execute("CREATE OR REPLACE TABLE main.writer_probe AS SELECT 1 AS taken")
            finally:
                con.close()
    except (TimeoutError, duckdb.Error) as exc:
        return f"refused: {exc}"
    return "taken"


@pytest.fixture
def receivers(billing_env, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, BOOKING_SECRET)
    with SlowReceivers() as slow:
        yield slow


def test_a_trickling_receiver_is_cut_at_the_deadline_while_the_warehouse_is_free(
        billing_env, receivers):
    """200 due deliveries to a receiver that trickles used to hold the writer for minutes:
    now its first request ends at the deadline, the writer is free meanwhile, its other
    deliveries are deferred unsent, and the other channels get every delivery."""
    warehouse = billing_env["warehouse"]
    catalog = catalog_of(slow=receivers.url(TRICKLE_PATH), fast=receivers.url(FAST_PATH),
                         dead=f"http://127.0.0.1:{closed_port()}/hooks")
    enqueue(warehouse, [("m1", "slow"), ("m2", "slow"), ("m3", "slow"),
                        ("m1", "fast"), ("m2", "fast"), ("m3", "fast"),
                        ("m1", "dead"), ("m2", "dead")])
    seen_while_waiting: list[str] = []
    receivers.on_request = lambda path: (
        seen_while_waiting.append(take_the_writer(warehouse)) if path == TRICKLE_PATH else None)

    started = time.monotonic()
    counts = deliver_due(partial(connect_writer, str(warehouse)), catalog, now=NOW,
                         run_id="run_1", limits=LIMITS)
    elapsed = time.monotonic() - started

    # the trickled answer (11.5 s) was cut at the 1 s deadline
    [(latency_ms,)] = query(warehouse, """SELECT latency_ms FROM notify.delivery_attempts
        WHERE channel = 'slow' AND sent_at IS NOT NULL""")
    assert DEADLINE_S * 1000 <= latency_ms < (DEADLINE_S + 0.5) * 1000
    assert elapsed < 6.0, elapsed
    # another writer got the warehouse while the request waited on the receiver
    assert seen_while_waiting == ["taken"]
    # one request to the trickling channel, every one to the fast channel
    assert receivers.paths().count(TRICKLE_PATH) == 1
    assert receivers.paths().count(FAST_PATH) == 3
    attempts = query(warehouse, """
        SELECT channel, message_id, outcome, sent_at IS NOT NULL, http_status, error,
               next_attempt_at
        FROM notify.delivery_attempts ORDER BY channel, message_id""")
    by_channel = {(c, m): row for c, m, *row in attempts}
    assert [by_channel[("fast", m)][:3] for m in ("m1", "m2", "m3")] == [
        ["delivered", True, 204]] * 3
    # the trickling channel: its first request sent and unanswered, the rest deferred unsent
    # (counted as an attempt, due again after the same backoff)
    first = by_channel[("slow", "m1")]
    assert first[:3] == ["retrying", True, None]
    assert first[3] == f"no answer within the {DEADLINE_S:g} s deadline"
    for message_id in ("m2", "m3"):
        outcome, sent, status, error, next_at = by_channel[("slow", message_id)]
        assert (outcome, sent, status, next_at) == ("retrying", False, None,
                                                    NOW + timedelta(seconds=5))
        assert error.startswith("deferred, not sent: slow did not answer m1 in this run")
    # a refused connection cuts its channel's pass the same way
    assert by_channel[("dead", "m1")][:3] == ["retrying", True, None]
    assert by_channel[("dead", "m1")][3].startswith("ConnectError")
    assert by_channel[("dead", "m2")][3].startswith("deferred, not sent: dead did not answer")
    assert counts == DeliveryCounts(attempted=5, delivered=3, retries_scheduled=5, deferred=3)
    # nothing is left claimed
    assert query(warehouse, "SELECT count(*) FROM notify.deliveries "
                            "WHERE claimed_by IS NOT NULL")[0][0] == 0
    assert query(warehouse, """SELECT channel, status, attempts FROM notify.deliveries
        WHERE channel <> 'fast' ORDER BY ALL""") == [
        ("dead", "pending", 1), ("dead", "pending", 1), ("slow", "pending", 1),
        ("slow", "pending", 1), ("slow", "pending", 1)]


def test_overlapping_passes_never_send_one_delivery_twice(billing_env, receivers):
    """A second pass started while the first waits on a receiver finds the first's
    deliveries claimed, and sends nothing."""
    warehouse = billing_env["warehouse"]
    catalog = catalog_of(slow=receivers.url(TRICKLE_PATH))
    enqueue(warehouse, [("m1", "slow"), ("m2", "slow")])
    second: list[DeliveryCounts] = []
    writer = partial(connect_writer, str(warehouse))
    receivers.on_request = lambda path: second.append(
        deliver_due(writer, catalog, now=NOW, run_id="run_2", limits=LIMITS))

    deliver_due(writer, catalog, now=NOW, run_id="run_1", limits=LIMITS)

    assert second == [DeliveryCounts()]
    assert receivers.paths() == [TRICKLE_PATH]
    assert query(warehouse, "SELECT DISTINCT run_id FROM notify.delivery_attempts") == [
        ("run_1",)]
    # once recorded, the deliveries are due again on their backoff, for any pass
    receivers.on_request = None
    later = deliver_due(writer, catalog, now=NOW + timedelta(seconds=5), run_id="run_3",
                        limits=LIMITS)
    assert (later.attempted, later.deferred) == (1, 1)


def test_a_failed_answer_keeps_a_short_secret_free_excerpt(billing_env, monkeypatch):
    """A receiver answering 500 with a body that echoes the signature, an Authorization header
    and the secret itself, then trickles on: the body read stops by the deadline, and the error
    keeps the status and at most 200 characters, secrets blanked."""
    warehouse = billing_env["warehouse"]
    monkeypatch.setenv(SECRET_ENV, BOOKING_SECRET)
    decoded_key = secret_texts(BOOKING_SECRET)[-1]
    echo = (f"bad request; you sent webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN "
            f"Authorization: Bearer sk_live_abcdef123456 with secret {BOOKING_SECRET} "
            f"(key {decoded_key}) ").encode() + b"y" * 1000
    with SlowReceivers(echo_body=echo) as receivers:
        catalog = catalog_of(echo=receivers.url(ECHO_500_PATH))
        enqueue(warehouse, [("m1", "echo"), ("m2", "echo")])
        started = time.monotonic()
        counts = deliver_due(partial(connect_writer, str(warehouse)), catalog, now=NOW,
                             limits=LIMITS)
        elapsed = time.monotonic() - started
    assert elapsed < 8.0, elapsed          # the rest of the 100 kB body trickles for hours
    latencies = [row[0] for row in query(warehouse, "SELECT latency_ms FROM "
                                                    "notify.delivery_attempts")]
    assert all(latency < (DEADLINE_S + 0.5) * 1000 for latency in latencies), latencies
    # a 500 is an answer: the channel's pass goes on
    assert (counts.attempted, counts.deferred) == (2, 0)
    errors = [row[0] for row in query(warehouse, "SELECT error FROM notify.delivery_attempts")]
    assert len(errors) == 2
    for error in errors:
        assert error.startswith("HTTP 500: bad request; you sent webhook-signature: "
                                "v1,[redacted] Authorization: [redacted]"), error
        assert len(error) <= 200
        for secret in (*secret_texts(BOOKING_SECRET), "sk_live_abcdef123456",
                       "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN"):
            assert secret not in error
    [(last_error,)] = query(warehouse, "SELECT DISTINCT last_error FROM notify.deliveries")
    assert last_error == errors[0]
