"""No client holds the integration API by being slow or large: `billing api` on 127.0.0.1 with
short limits, driven over raw sockets. A body is refused as soon as it passes its limit (chunked
too), a request head or a body slower than its deadline is cut off, connections beyond the
concurrency limit are answered 503, and bodies are decoded off the event loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from pipelines.api import app as api_app
from pipelines.api.server import MAX_HEAD_BYTES
from pipelines.api.store import ApiStore, PublishedInvoice, PublishedLine
from tests.support.api import ApiProcess, start_api, stop_api

HEAD_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
MAX_CONCURRENCY = 4
PAYMENT = "/api/v1/apps/custom-invoicing/invoices/inv_limits/payment/status"


@dataclass
class LimitedApi:
    server: ApiProcess
    token: str

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.url.removeprefix("http://").split(":")
        return host, int(port)

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=10)

    def head(self, method: str, path: str, *headers: str) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
                 f"Authorization: Bearer {self.token}", "Content-Type: application/json",
                 *headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedApi]:
    folder = tmp_path_factory.mktemp("limited_api")
    store = ApiStore(str(folder / "api_store.sqlite"))
    token = store.create_token("erp", ["payments:write"])
    store.publish_invoices([PublishedInvoice(
        "inv_limits", "c1", "custom_invoicing", "payment_processing.pending", "EUR",
        Decimal("10"), (PublishedLine("l1", "flat"),))])
    server = start_api(folder / "api_store.sqlite", folder / "api.log", settings={
        "BILLING_API_HEADER_TIMEOUT_S": str(HEAD_TIMEOUT_S),
        "BILLING_API_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "BILLING_API_MAX_CONCURRENCY": str(MAX_CONCURRENCY)})
    try:
        yield LimitedApi(server, token)
    finally:
        stop_api(server)


def _answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (b"" if it only closed it)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _seconds_until_closed(sock: socket.socket, trickle: bytes | None, limit_s: float) -> float:
    """Send `trickle` every 0.2 s (or nothing) until the server closes the connection; how
    long that took (limit_s when it did not)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit_s:
        try:
            if trickle is not None:
                sock.sendall(trickle)
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    return limit_s


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(limited: LimitedApi) -> None:
    """The body never ends: the 413 can only come from reading it up to the limit."""
    body = b" " * (api_app.MAX_BODY_BYTES + 1)
    with limited.connect() as sock:
        sock.sendall(limited.head("POST", PAYMENT, "Transfer-Encoding: chunked"))
        sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")   # no last chunk
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


def test_a_declared_length_over_the_limit_is_refused_before_any_body(
        limited: LimitedApi) -> None:
    with limited.connect() as sock:
        sock.sendall(limited.head("POST", PAYMENT,
                                  f"Content-Length: {api_app.MAX_BODY_BYTES + 1}"))
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"connection: close" in answer.lower()


def test_a_body_slower_than_its_deadline_gets_408(limited: LimitedApi) -> None:
    with limited.connect() as sock:
        sock.sendall(limited.head("POST", PAYMENT, "Content-Length: 100") + b'{"trigger"')
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3


def test_a_request_head_slower_than_its_deadline_is_cut_off(limited: LimitedApi) -> None:
    with limited.connect() as trickling:
        trickling.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        took = _seconds_until_closed(trickling, b"X-Slow: 1\r\n", HEAD_TIMEOUT_S + 6)
    assert took < HEAD_TIMEOUT_S + 3
    with limited.connect() as silent:
        assert _seconds_until_closed(silent, None, HEAD_TIMEOUT_S + 6) < HEAD_TIMEOUT_S + 3
    # after an answer, the next head has its deadline too (keep-alive stops at its first byte)
    with limited.connect() as kept:
        kept.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
        assert _seconds_until_closed(kept, b"X-Slow: 1\r\n",
                                     HEAD_TIMEOUT_S + 6) < HEAD_TIMEOUT_S + 3


def test_a_request_head_growing_past_its_size_limit_gets_400(limited: LimitedApi) -> None:
    """The server holds at most MAX_HEAD_BYTES of a head it is still waiting to complete."""
    with limited.connect() as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(MAX_HEAD_BYTES // 1000 + 1):
            sock.sendall(b"X-Padding: " + b"a" * 1000 + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 400")


def test_connections_beyond_the_concurrency_limit_get_503(limited: LimitedApi) -> None:
    health = f"{limited.server.url}/api/v1/health"
    held = [limited.connect() for _ in range(MAX_CONCURRENCY)]
    try:
        time.sleep(0.3)
        assert httpx.get(health, timeout=10).status_code == 503
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while httpx.get(health, timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the API stayed at its concurrency limit"
        time.sleep(0.2)
    assert "closed a connection" in limited.server.output()


def test_bodies_are_decoded_off_the_event_loop(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32 MB statement takes a while to parse: the event loop keeps answering meanwhile."""
    store = ApiStore(str(tmp_path / "api_store.sqlite"))
    token = store.create_token("erp", ["invoices:sync"])
    on_event_loop: list[bool] = []

    def parsing(raw: Any, **options: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_event_loop.append(True)
        except RuntimeError:
            on_event_loop.append(False)
        import json

        return json.loads(raw, **options)

    async def post_statement() -> httpx.Response:
        transport = httpx.ASGITransport(app=api_app.create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/api/v1/apps/custom-invoicing/statement",
                                     json={"as_of": "2026-02-01T00:00:00Z", "invoices": []},
                                     headers={"Authorization": f"Bearer {token}"})

    monkeypatch.setattr(api_app, "json", SimpleNamespace(loads=parsing))
    answer = asyncio.run(post_statement())
    assert answer.status_code == 202, answer.text
    assert on_event_loop == [False]
