"""A throwaway billing environment: the BILLING_* settings pointing into a temp folder (its own
warehouse, landing zone and a copy of the example catalog), with "now" pinned."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CATALOG = REPO / "catalog"
SHARED = next((folder for folder in (REPO.parent / "shared", Path("/work/shared"))
               if folder.is_dir()), REPO.parent / "shared")
"""The steering repo's shared/ (reference data such as Stripe's fixtures): beside the checkout,
as CI lays it out, else where the workplace keeps it."""
STRIPE_FIXTURES = SHARED / "reference" / "stripe-fixtures3.json"
NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def billing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """BILLING_* settings pointing into tmp_path; the example catalog is copied for editing."""
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, catalog)
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


@pytest.fixture
def ingest(billing_env: dict[str, Path]) -> Iterator[Callable[..., object]]:
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
