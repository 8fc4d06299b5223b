"""How `billing api` serves: uvicorn with the limits the environment sets (concurrency, head,
keep-alive and body deadlines, head size), and a warning when it listens beyond loopback. uvicorn
is not started here; the limits at work over real sockets: tests/integration/test_api_limits.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from pipelines import settings
from pipelines.api.server import (
    MAX_HEAD_BYTES,
    HeadDeadlineProtocol,
    ServerLimits,
    exposure_warning,
)
from pipelines.cli.api import cmd_api


def test_limits_come_from_the_environment_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BILLING_API_MAX_CONCURRENCY", "BILLING_API_HEADER_TIMEOUT_S",
                 "BILLING_API_KEEP_ALIVE_S", "BILLING_API_BODY_TIMEOUT_S",
                 "BILLING_API_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    assert ServerLimits.from_environment() == ServerLimits(64, 10.0, 5.0, 60.0)
    assert settings.api_retention_days() == 30
    monkeypatch.setenv("BILLING_API_MAX_CONCURRENCY", "8")
    monkeypatch.setenv("BILLING_API_HEADER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("BILLING_API_RETENTION_DAYS", "7")
    assert ServerLimits.from_environment() == ServerLimits(8, 2.5, 5.0, 60.0)
    assert settings.api_retention_days() == 7
    for wrong in ("0", "-1", "soon", "inf", "nan"):
        monkeypatch.setenv("BILLING_API_KEEP_ALIVE_S", wrong)
        with pytest.raises(ValueError, match="BILLING_API_KEEP_ALIVE_S"):
            ServerLimits.from_environment()


@pytest.mark.parametrize(("host", "warned"), [
    ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False),
    ("localhost", False), ("0.0.0.0", True), ("::", True), ("10.1.2.3", True),
    ("api.example.com", True)])
def test_a_host_beyond_loopback_is_warned_about(host: str, warned: bool) -> None:
    warning = exposure_warning(host)
    assert (warning is not None) == warned
    if warning:
        assert "reverse proxy" in warning and "TLS" in warning


def test_billing_api_runs_uvicorn_with_the_limits(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BILLING_API_STORE", str(tmp_path / "api_store.sqlite"))
    monkeypatch.setenv("BILLING_API_MAX_CONCURRENCY", "12")
    monkeypatch.setenv("BILLING_API_HEADER_TIMEOUT_S", "3")
    monkeypatch.setenv("BILLING_API_KEEP_ALIVE_S", "4")
    monkeypatch.setenv("BILLING_API_BODY_TIMEOUT_S", "20")
    runs: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: runs.append(options))
    with caplog.at_level(logging.WARNING, logger="billing.api"):
        cmd_api(argparse.Namespace(host="0.0.0.0", port=8780))
        cmd_api(argparse.Namespace(host="127.0.0.1", port=8780))
    first, second = runs
    protocol = first.pop("http")
    assert issubclass(protocol, HeadDeadlineProtocol) and protocol.head_timeout_s == 3
    assert first == {k: v for k, v in second.items() if k != "http"} | {"host": "0.0.0.0"}
    assert {k: first[k] for k in ("limit_concurrency", "timeout_keep_alive",
                                  "h11_max_incomplete_event_size", "access_log")} == {
        "limit_concurrency": 12, "timeout_keep_alive": 4,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES, "access_log": False}
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "0.0.0.0" in warning and "reverse proxy" in warning
