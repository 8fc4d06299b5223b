"""Shared fixtures: a temp warehouse, landing zone and catalog, with "now" pinned."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.warehouse import connect_reader

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def billing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """BILLING_* settings pointing into tmp_path; the example catalog is copied for editing."""
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO / "catalog", catalog)
    paths = {
        "warehouse": tmp_path / "warehouse.duckdb",
        "landing": tmp_path / "landing",
        "catalog": catalog,
    }
    paths["landing"].mkdir()
    monkeypatch.setenv("BILLING_WAREHOUSE", str(paths["warehouse"]))
    monkeypatch.setenv("BILLING_LANDING", str(paths["landing"]))
    monkeypatch.setenv("BILLING_CATALOG", str(catalog))
    monkeypatch.setenv("BILLING_NOW", NOW.isoformat())
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return paths


def event(event_id: str, *, customer: str = "acme_corp_001", name: str = "api.request",
          ts: str = "2026-01-21T14:30:00Z", source: str | None = "gateway-eu",
          properties: object = None, **extra: object) -> dict[str, object]:
    """A native-shape event as users send it."""
    doc: dict[str, object] = {"event_id": event_id, "event_name": name, "customer_id": customer,
                              "timestamp": ts,
                              "properties": {"endpoint": "/v1/users"} if properties is None
                              else properties}
    if source is not None:
        doc["source"] = source
    doc.update(extra)
    return doc


def write_lines(path: Path, lines: list[object]) -> Path:
    """A JSON Lines file: dicts are dumped, strings written as they are."""
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n"
                            for ln in lines), encoding="utf-8")
    return path


def query(warehouse: Path, text: str, params: dict[str, object] | None = None) -> list[tuple]:
    with connect_reader(str(warehouse)) as con:
        return con.execute(text, params or {}).fetchall()


@pytest.fixture
def ingest(billing_env: dict[str, Path]) -> Iterator[object]:
    """Ingest files with the production code path (no Dagster), returning their counts."""
    from pipelines.catalog import load_catalog
    from pipelines.ingestion import ingest_landed_files, landed_files, prepare_session
    from pipelines.warehouse import connect_writer

    def run(*paths: Path, now: datetime = NOW):
        files = [f for f in landed_files(billing_env["landing"])
                 if not paths or Path(f.path) in {Path(p) for p in paths}]
        customers = load_catalog(billing_env["catalog"]).customers
        with connect_writer(str(billing_env["warehouse"])) as con:
            prepare_session(con, customers, now)
            return ingest_landed_files(con, files, now=now, run_id="test")

    yield run
