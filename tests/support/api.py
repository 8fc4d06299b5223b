"""The integration API as its own process (`billing api`, uvicorn on 127.0.0.1) and what tests
need to talk to it: a store with tokens of each scope, and readers of its error answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devkit.api_client import CustomInvoicingClient
from pipelines.api.store import ApiStore
from tests.support.environment import REPO

API_NOW = "2026-02-01T12:00:00+00:00"
WEBHOOK_SECRETS = ("whsec_old_secret_still_valid", "whsec_current_secret")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiProcess:
    """`billing api` in a subprocess, its output in a file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_api(store_path: Path, log: Path, *,
              settings: dict[str, str] | None = None) -> ApiProcess:
    """`billing api` on a free port over the store at `store_path`, once it answers health;
    `settings` are more environment variables (limits, say). Events it receives land in a
    `landing` folder beside the store unless `settings` name BILLING_LANDING."""
    port = free_port()
    env = {**os.environ, "BILLING_API_STORE": str(store_path), "BILLING_NOW": API_NOW,
           "BILLING_LANDING": str(store_path.parent / "landing"),
           "STRIPE_WEBHOOK_SECRET": ", ".join(WEBHOOK_SECRETS), **(settings or {})}
    env.pop("DAGSTER_HOME", None)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.cli", "api", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"billing api exited {process.returncode}:\n"
                                 f"{log.read_text()}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                return ApiProcess(process, url, log)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"billing api did not start:\n{log.read_text()}")


def stop_api(api: ApiProcess) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within 20 s."""
    if api.process.poll() is None:
        api.process.send_signal(signal.SIGTERM)
        try:
            api.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.process.kill()
            api.process.wait()


@dataclass
class RunningApi:
    """A running `billing api`, its store, and a token per caller ("sync", "pay", "both",
    "stripe"); requests are JSON and carry the named token."""

    server: ApiProcess
    store: ApiStore
    tokens: dict[str, str]

    def post(self, path: str, body: object = None, *, token: str | None = "sync",
             headers: dict[str, str] | None = None, content: bytes | None = None,
             params: dict[str, str] | None = None) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.tokens[token]}"
        if content is None:
            content = json.dumps(body).encode()
        return httpx.post(self.server.url + path, content=content, params=params,
                          headers={"content-type": "application/json", **sent}, timeout=30)

    def get(self, path: str, *, token: str | None = "sync") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.get(self.server.url + path, headers=headers, timeout=30)

    def client(self, token: str = "both") -> CustomInvoicingClient:
        return CustomInvoicingClient(self.server.url, self.tokens[token])


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """One `billing api` per test module, with a token of each scope."""
    folder = tmp_path_factory.mktemp("api")
    store = ApiStore(str(folder / "api_store.sqlite"))
    tokens = {
        "sync": store.create_token("erp-sync", ["invoices:sync"]),
        "pay": store.create_token("erp-payments", ["payments:write"]),
        "both": store.create_token("erp", ["invoices:sync", "payments:write"]),
        "stripe": store.create_token("stripe", ["webhooks:stripe"]),
    }
    server = start_api(folder / "api_store.sqlite", folder / "api.log")
    try:
        yield RunningApi(server, store, tokens)
    finally:
        stop_api(server)


def error(response: httpx.Response) -> dict[str, object]:
    """The `error` object of an error answer (nothing else in the body)."""
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def assert_validation_error(response: httpx.Response, field: str, words: str) -> None:
    """A 422 naming `field`, its message saying `words`."""
    assert response.status_code == 422, response.text
    problem = error(response)
    assert problem["code"] == "validation_error"
    assert problem["field"] == field
    assert words in str(problem["message"])
