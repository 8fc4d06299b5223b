"""The wheel is the product: built with uv, it holds pipelines, assets and sql and nothing that
stands in for the outside world (devkit: the local Stripe, ERP, booking system, sample data,
demo); installed alone into a fresh venv, its `billing` command ingests a landed file and rates
a month in a folder outside the checkout, reading its SQL from the installed package.

Dependencies are installed at the versions of uv.lock (from uv's cache after `make test`'s
sync); the package code comes only from the wheel. Deselect with `-m "not wheel"`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.environment import EXAMPLE_CATALOG, REPO
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

pytestmark = pytest.mark.wheel

PRODUCT_TOP_LEVEL = {"pipelines", "assets", "sql"}
NOT_PRODUCT = ("devkit", "stripe_emulator", "demo", "sample_data", "local_erp",
               "local_integration", "booking_system", "api_client")
MONTH = "2026-01"
NOW = "2026-02-03T00:00:00Z"


def uv() -> str:
    """The uv `make` bootstraps in .tools/ (or one on PATH)."""
    found = REPO / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    on_path = shutil.which("uv")
    assert on_path, "uv not found: run `make test` (it bootstraps .tools/bin/uv)"
    return on_path


def run(*command: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n" \
                                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@dataclass
class InstalledWheel:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledWheel]:
    """The wheel built from the checkout, installed into a fresh venv with the locked
    dependencies."""
    folder = tmp_path_factory.mktemp("wheel")
    uv_env = {k: v for k, v in os.environ.items()
              if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH")}
    uv_env["UV_PYTHON_DOWNLOADS"] = "never"
    run(uv(), "build", "--wheel", "--quiet", "--out-dir", str(folder / "dist"), cwd=REPO,
        env=uv_env)
    [wheel] = (folder / "dist").glob("billing_pipeline-*.whl")
    locked = folder / "locked.txt"
    run(uv(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
        "--format", "requirements-txt", "--quiet", "--output-file", str(locked), cwd=REPO,
        env=uv_env)
    venv = folder / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, str(venv), cwd=folder, env=uv_env)
    run(uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
        str(wheel), "--constraint", str(locked), cwd=folder, env=uv_env)
    yield InstalledWheel(wheel, venv)


def test_the_wheel_holds_the_product_and_nothing_of_devkit(installed: InstalledWheel) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == PRODUCT_TOP_LEVEL
    stand_ins = [name for name in names
                 if any(part in name.replace(".py", "").split("/") or f"{part}/" in name
                        for part in NOT_PRODUCT)]
    assert stand_ins == []
    assert "sql/warehouse_schema.sql" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "billing = " in zipfile.ZipFile(installed.wheel).read(entry_points).decode()


def test_the_installed_wheel_ingests_and_rates_a_month_outside_the_checkout(
        installed: InstalledWheel, tmp_path: Path) -> None:
    site = tmp_path / "billing-site"
    shutil.copytree(EXAMPLE_CATALOG, site / "catalog")
    (site / "landing").mkdir(parents=True)
    write_lines(site / "landing" / "january.jsonl",
                [event(f"wheel_{i}", customer="acme_corp_001",
                       ts=f"2026-01-{21 + i % 10:02d}T10:00:00Z") for i in range(25)])
    warehouse = site / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BILLING_", "PYTHON", "DAGSTER_", "VIRTUAL_ENV", "UV_"))}
    env.update(BILLING_WAREHOUSE=str(warehouse), BILLING_LANDING=str(site / "landing"),
               BILLING_CATALOG=str(site / "catalog"), BILLING_NOW=NOW)

    where = run(str(installed.bin / "python"), "-c",
                "import json, pipelines, sql; print(json.dumps("
                "[pipelines.__file__, *sql.__path__]))", cwd=site, env=env)
    for path in json.loads(where.stdout):
        assert Path(path).is_relative_to(installed.venv), path
        assert not Path(path).is_relative_to(REPO), path

    ingested = run(str(installed.bin / "billing"), "ingest", cwd=site, env=env)
    assert "january.jsonl" in ingested.stdout
    assert "25 events, 0 open rejections, 1 files ingested" in ingested.stdout

    rated = run(str(installed.bin / "billing"), "run", "--month", MONTH, cwd=site, env=env)
    assert f"{MONTH}: rated" in rated.stdout
    assert "draft" in rated.stdout and "USD" in rated.stdout

    # acme starts on 2026-01-20: January's invoice is the prorated platform fee, 10.00 x 12/31
    totals = dict(query(warehouse, "SELECT customer_id, total FROM billing.invoices "
                                   "WHERE billing_month = $m", {"m": MONTH}))
    assert totals["acme_corp_001"] == Decimal("3.87")
    assert query(warehouse, "SELECT count(*) FROM billing.invoice_lines")[0][0] >= len(totals)
