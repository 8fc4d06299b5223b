"""Usage events over HTTP (contract section 11), end to end: `billing api` in its own process on
127.0.0.1 lands what it answers 202 for in the landing zone, and the real ingestion job accounts
for every line (received = accepted + duplicates + rejected), also after the API is killed with
SIGKILL right after its answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.api_client import ApiError
from devkit.events_client import EventsClient, usage_event
from pipelines.api.store import ApiStore
from tests.support.api import ApiProcess, error, start_api, stop_api
from tests.support.dagster_runs import ingest_landed
from tests.support.environment import REPO
from tests.support.landing import event
from tests.support.warehouse import query

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"
TS = "2026-01-21T14:30:00Z"


class EventsApi:
    """`billing api` over a fresh store, landing into the test's landing zone, with a token
    that may send events and one that may not."""

    def __init__(self, folder: Path, landing: Path) -> None:
        self.folder = folder
        self.landing = landing
        self.store = ApiStore(str(folder / "api_store.sqlite"))
        self.token = self.store.create_token("gateway", ["events:write"])
        self.erp_token = self.store.create_token("erp", ["invoices:sync", "payments:write"])
        self.server: ApiProcess | None = None

    def start(self, **settings: str) -> ApiProcess:
        self.server = start_api(self.folder / "api_store.sqlite", self.folder / "api.log",
                                settings={"BILLING_LANDING": str(self.landing), **settings})
        return self.server

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def post(self, path: str, content: bytes, *, token: str | None = None,
             media: str = "application/json") -> httpx.Response:
        headers = {"Content-Type": media,
                   "Authorization": f"Bearer {token if token is not None else self.token}"}
        return httpx.post(self.url + path, content=content, headers=headers, timeout=30)

    def segments(self, suffix: str) -> list[Path]:
        return sorted((self.landing / "api-events").glob(f"*{suffix}"))


@pytest.fixture
def events_api(billing_env: dict[str, Path], tmp_path: Path) -> Iterator[EventsApi]:
    api = EventsApi(tmp_path, billing_env["landing"])
    try:
        yield api
    finally:
        if api.server is not None:
            stop_api(api.server)


def test_a_batch_with_duplicates_and_bad_fields_is_accounted_exactly(
        events_api: EventsApi, billing_env: dict[str, Path]) -> None:
    events_api.start()
    batch = [
        event("e1"),
        event("e1"),                                                  # duplicate
        event("e2", properties={"endpoint": "/v1/a", "tokens": 3}),
        event("e2", properties={"endpoint": "/v1/b", "tokens": 3}),   # conflict
        {k: v for k, v in event("e3").items() if k != "customer_id"},  # missing_field
        event("e4", ts="yesterday"),                                  # invalid_timestamp
        event("e5", customer="nobody"),                               # unknown_customer
        event("e6", ts="2026-01-21T14:30:00"),                        # timestamp_without_offset
    ]
    cloudevent = {"specversion": "1.0", "id": "ce1", "source": "gateway-eu",
                  "type": "api.request", "subject": "globex_002", "time": TS,
                  "data": {"endpoint": "/v1/ce", "tokens": 7}}
    with EventsClient(events_api.url, events_api.token) as client:
        assert client.send_batch(batch)["events"] == 8
        single = client.send(usage_event("api.request", "acme_corp_001", timestamp=TS,
                                         event_id="e7", source="gateway-eu",
                                         properties={"endpoint": "/v1/single"}))
        assert client.send(cloudevent, cloudevent=True)["events"] == 1
    # CloudEvents batch mode on the single-event endpoint, as their HTTP binding sends it
    ce_batch = [dict(cloudevent, id="ce2"), cloudevent]               # ce1 again: duplicate
    answer = events_api.post(EVENTS, json.dumps(ce_batch).encode(),
                             media="application/cloudevents-batch+json")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "accepted", "events": 2,
                             "landing_file": single["landing_file"]}
    [part] = events_api.segments(".jsonl.part")        # still open: not for ingestion yet
    assert single["landing_file"] == f"api-events/{part.name.removesuffix('.part')}"

    stop_api(events_api.server)                         # a graceful stop seals the segment
    [landed] = events_api.segments(".jsonl")
    assert events_api.segments(".part") == []
    assert len(landed.read_text().splitlines()) == 12
    ingest_landed("2026-02-01T12:00:00+00:00")

    warehouse = billing_env["warehouse"]
    assert query(warehouse, "SELECT path, received, accepted, duplicates, rejected, conflicts "
                            "FROM raw.ingestion_log") == [(str(landed), 12, 5, 2, 5, 1)]
    assert query(warehouse, "SELECT event_id, source, event_name, customer_id, properties "
                            "FROM raw.events ORDER BY event_id") == [
        ("ce1", "gateway-eu", "api.request", "globex_002", '{"endpoint":"/v1/ce","tokens":7}'),
        ("ce2", "gateway-eu", "api.request", "globex_002", '{"endpoint":"/v1/ce","tokens":7}'),
        ("e1", "gateway-eu", "api.request", "acme_corp_001", '{"endpoint":"/v1/users"}'),
        ("e2", "gateway-eu", "api.request", "acme_corp_001", '{"endpoint":"/v1/a","tokens":3}'),
        ("e7", "gateway-eu", "api.request", "acme_corp_001", '{"endpoint":"/v1/single"}')]
    assert query(warehouse, "SELECT line_number, reason FROM raw.rejected_events "
                            "ORDER BY line_number") == [
        (4, "conflict"), (5, "missing_field"), (6, "invalid_timestamp"),
        (7, "unknown_customer"), (8, "timestamp_without_offset")]


def _send_until_stopped(url: str, token: str, worker: int, stop: threading.Event,
                        acknowledged: list[str], lock: threading.Lock) -> None:
    """Post batches of 200 events until `stop` or the server is gone; the ids of every batch
    answered 202 go into `acknowledged`."""
    with httpx.Client(base_url=url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        batch_number = 0
        while not stop.is_set():
            batch_number += 1
            ids = [f"w{worker}-b{batch_number}-{i}" for i in range(200)]
            try:
                answer = http.post(BATCH, json=[event(i) for i in ids])
            except httpx.TransportError:
                return
            assert answer.status_code == 202, answer.text
            with lock:
                acknowledged.extend(ids)


def test_nothing_acknowledged_is_lost_when_the_api_is_killed(
        events_api: EventsApi, billing_env: dict[str, Path]) -> None:
    server = events_api.start()
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    workers = [threading.Thread(target=_send_until_stopped,
                                args=(server.url, events_api.token, n, stop, acknowledged, lock))
               for n in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 4_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.kill()                  # SIGKILL while requests are still arriving
    server.process.wait()
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert len(acknowledged) >= 4_000
    # the killed API's segment was never sealed: only a .part name, which ingestion skips...
    assert events_api.segments(".part") and not events_api.segments(".jsonl")

    # ...until `billing ingest` (the ingestion job) seals it before listing the landing zone
    env = {**os.environ, "BILLING_NOW": "2026-02-01T12:00:00+00:00"}
    env.pop("DAGSTER_HOME", None)
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "ingest"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert events_api.segments(".part") == []
    warehouse = billing_env["warehouse"]
    stored = {row[0] for row in query(warehouse, "SELECT event_id FROM raw.events")}
    assert set(acknowledged) <= stored
    # every line in the sealed segment is whole: none rejected, none counted twice
    [(received, accepted, duplicates, rejected)] = query(
        warehouse, "SELECT sum(received), sum(accepted), sum(duplicates), sum(rejected) "
                   "FROM raw.ingestion_log")
    assert (accepted, duplicates, rejected) == (len(stored), 0, 0)
    assert received == accepted


def test_the_next_api_seals_the_segment_a_killed_one_left(events_api: EventsApi) -> None:
    server = events_api.start()
    answer = events_api.post(BATCH, json.dumps([event("k1"), event("k2")]).encode())
    assert answer.status_code == 202, answer.text
    server.process.kill()
    server.process.wait()
    [part] = events_api.segments(".part")
    with part.open("ab") as torn:          # a write the killed API had begun, never answered
        torn.write(b'{"event_id": "k3", "event_na')
    events_api.start()
    assert events_api.segments(".part") == []
    [sealed] = events_api.segments(".jsonl")
    assert sealed.name == answer.json()["landing_file"].removeprefix("api-events/")
    assert [json.loads(line)["event_id"] for line in sealed.read_text().splitlines()] == [
        "k1", "k2"]


@pytest.fixture(scope="module")
def refusing_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventsApi]:
    """One API for the refusal cases: each checks that nothing of its call landed."""
    folder = tmp_path_factory.mktemp("events_api")
    api = EventsApi(folder, folder / "landing")
    api.start()
    try:
        yield api
    finally:
        stop_api(api.server)


def _landed_lines(api: EventsApi) -> int:
    return sum(len(path.read_bytes().splitlines()) for path in api.segments(".jsonl.part"))


@pytest.mark.parametrize(("path", "body", "status", "code", "field"), [
    (EVENTS, b"not json", 422, "validation_error", "body"),
    (EVENTS, b'{"event_id": "a"} {"event_id": "b"}', 422, "validation_error", "body"),
    (EVENTS, b'[{"event_id": "a"}]', 422, "validation_error", "body"),
    (EVENTS, b'"evt"', 422, "validation_error", "body"),
    (EVENTS, b'\xff{"event_id": "a"}', 422, "validation_error", "body"),
    (EVENTS, b'{"event_id": "a", "properties": {"n": NaN}}', 422, "validation_error", "body"),
    (EVENTS, b'{"event_id": "a", "properties": {"n": "\\ud800"}}', 422, "validation_error",
     "properties.n"),
    (BATCH, b'{"event_id": "a"}', 422, "validation_error", "body"),
    (BATCH, b"[]", 422, "validation_error", "body"),
    (BATCH, b'[{"event_id": "a"}, 7]', 422, "validation_error", "[1]"),
    (BATCH, b'[{"event_id": "a"}, {"event_id": "b"}', 422, "validation_error", "body"),
    (BATCH, b'[{"event_id": "a"}, {"properties": {"n": 1e999}}]', 422, "validation_error",
     "[1].properties.n"),
    (BATCH, b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", 422, "validation_error", "body"),
    (BATCH, json.dumps([event(f"e{i}") for i in range(1_001)]).encode(), 413,
     "too_many_events", "body"),
    (BATCH, b'[{"event_id": "a"}, {"properties": {"blob": "' + b"x" * 1_000_001 + b'"}}]',
     413, "event_too_large", "[1]"),
])
def test_bodies_the_api_cannot_take_are_refused_and_nothing_lands(
        refusing_api: EventsApi, path: str, body: bytes, status: int, code: str,
        field: str | None) -> None:
    before = _landed_lines(refusing_api)
    answer = refusing_api.post(path, body)
    assert answer.status_code == status, answer.text[:300]
    problem = error(answer)
    assert (problem["code"], problem["field"]) == (code, field), problem
    assert _landed_lines(refusing_api) == before


@pytest.mark.parametrize(("path", "limit"), [(EVENTS, 1_000_000), (BATCH, 10_000_000)])
def test_a_body_over_its_limit_gets_413_before_it_is_read(
        refusing_api: EventsApi, path: str, limit: int) -> None:
    host, port = refusing_api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {refusing_api.token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n"
                     "\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


def test_a_full_batch_of_1000_is_accepted(refusing_api: EventsApi) -> None:
    before = _landed_lines(refusing_api)
    full = refusing_api.post(BATCH, json.dumps([event(f"ok{i}") for i in range(1_000)]).encode())
    assert full.status_code == 202, full.text[:300]
    assert full.json()["events"] == 1_000
    assert _landed_lines(refusing_api) == before + 1_000


def test_events_need_the_events_write_scope(events_api: EventsApi) -> None:
    events_api.start()
    body = json.dumps(event("s1")).encode()
    refused = events_api.post(EVENTS, body, token=events_api.erp_token)
    assert refused.status_code == 403
    assert error(refused)["code"] == "insufficient_scope"
    assert "events:write" in error(refused)["message"]
    assert events_api.post(BATCH, body, token="bpk_unknown").status_code == 401
    with EventsClient(events_api.url, events_api.erp_token) as client, \
            pytest.raises(ApiError) as raised:
        client.send(event("s1"))
    assert raised.value.status_code == 403
    assert not (events_api.landing / "api-events").exists()


def test_the_batcher_sends_full_batches_and_the_rest_at_the_end(events_api: EventsApi) -> None:
    events_api.start(BILLING_API_SEGMENT_MAX_AGE_S="0.2")
    with EventsClient(events_api.url, events_api.token) as client:
        with client.batcher(batch_size=400) as batcher:
            for n in range(1_000):
                batcher.add(usage_event("api.request", "acme_corp_001", timestamp=TS,
                                        event_id=f"b{n}", properties={"n": n}))
            assert batcher.accepted == 800          # two full batches sent so far
        assert batcher.accepted == 1_000
    deadline = time.monotonic() + 10                 # sealed once older than its age limit
    while events_api.segments(".part") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events_api.segments(".part") == []
    lines = [json.loads(line) for path in events_api.segments(".jsonl")
             for line in path.read_text().splitlines()]
    assert [e["event_id"] for e in lines] == [f"b{n}" for n in range(1_000)]
    assert {f"api-events/{p.name}" for p in events_api.segments(".jsonl")} >= \
        batcher.landing_files
