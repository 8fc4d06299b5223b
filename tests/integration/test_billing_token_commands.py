"""`billing token` as an operator runs it: the CLI in its own process over an API store, the
plaintext token printed once and never stored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.api.store import ApiStore
from tests.support.environment import REPO


def _billing(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BILLING_API_STORE": str(store)}
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_billing_token_commands(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    created = _billing("token", "create", "--name", "erp", "--scope", "invoices:sync",
                       "--scope", "payments:write", store=path)
    assert created.returncode == 0, created.stderr
    output = created.stdout.strip().splitlines()
    token = output[-1]
    assert token.startswith("bpk_") and " " not in token
    assert token not in "\n".join(output[:-1])
    info = ApiStore(str(path)).authenticate(token)
    assert info is not None and info.name == "erp"
    assert info.scopes == ("invoices:sync", "payments:write")
    assert token.encode() not in path.read_bytes() + (
        Path(f"{path}-wal").read_bytes() if Path(f"{path}-wal").exists() else b"")

    bad = _billing("token", "create", "--name", "x", "--scope", "admin", store=path)
    assert bad.returncode != 0 and "'admin'" in bad.stderr

    listed = _billing("token", "list", store=path)
    assert "erp" in listed.stdout and token not in listed.stdout
    assert _billing("token", "revoke", "erp", store=path).returncode == 0
    assert ApiStore(str(path)).authenticate(token) is None
    again = _billing("token", "revoke", "erp", store=path)
    assert again.returncode != 0 and "no active token" in again.stderr
