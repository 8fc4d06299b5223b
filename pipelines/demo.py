"""`make demo`: a sample month of usage for the example catalog, ingested and rated through
Dagster.

Runs on embedded defaults so it is reproducible: the demo's own data folder (wiped first), the
example catalog, and a pinned "now" (`BILLING_NOW`, early in the month after the sample month).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipelines import settings
from pipelines.cli import main as billing

DEMO_MONTH = "2026-10"
INVOICE_MONTH = "2026-11"
DEMO_NOW = "2026-11-02T06:00:00Z"


def run_demo() -> None:
    os.environ.setdefault("BILLING_NOW", DEMO_NOW)
    os.environ.setdefault("BILLING_WAREHOUSE", "data/demo/warehouse.duckdb")
    os.environ.setdefault("BILLING_LANDING", "data/demo/landing")
    warehouse = Path(settings.warehouse_path())
    landing = Path(settings.landing_path())
    for stale in (landing, warehouse, warehouse.with_suffix(".writer.lock"),
                  warehouse.with_suffix(".duckdb.wal")):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    landing.mkdir(parents=True)

    print(f"== 1. a sample month ({DEMO_MONTH}) of usage events for the example catalog")
    billing(["generate-events", "--month", DEMO_MONTH, "--events", "20000", "--seed", "7",
             "--format", "jsonl"])
    billing(["generate-events", "--month", DEMO_MONTH, "--events", "5000", "--seed", "8",
             "--format", "parquet"])
    billing(["generate-events", "--month", DEMO_MONTH, "--events", "1000", "--seed", "9",
             "--format", "csv"])
    first = sorted(landing.glob("*.jsonl"))[0]
    shutil.copy(first, landing / f"relanded_{first.name}")
    print(f"(and the JSON Lines file landed a second time as relanded_{first.name})")

    print("\n== 2. ingestion through the Dagster job the landing-zone sensor launches")
    billing(["ingest"])

    print(f"\n== 3. rating: the month's usage is invoiced at the cycle boundaries after it "
          f"(billing months {DEMO_MONTH} and {INVOICE_MONTH}), now = {os.environ['BILLING_NOW']}")
    billing(["run", "--month", DEMO_MONTH, "--to", INVOICE_MONTH])
    print("(stripe and custom_invoicing drafts wait for their provider sync; profile 'manual' "
          "(app none) is issued once its grace period is over)")

    print("\n== 4. what was rejected, with its reason (first of each)")
    billing(["sql", """
        SELECT reason, count(*) AS lines, any_value(detail) AS example
        FROM raw.rejected_events GROUP BY reason ORDER BY lines DESC, reason"""])

    print("\n== 5. accepted usage by event name")
    billing(["sql", """
        SELECT event_name, count(*) AS events, count(DISTINCT customer_id) AS customers,
               min("timestamp") AS first, max("timestamp") AS last
        FROM raw.events GROUP BY event_name ORDER BY events DESC"""])

    env = f"BILLING_WAREHOUSE={warehouse}"
    duckdb_cmd = (f"import duckdb; print(duckdb.connect('{warehouse}', read_only=True)"
                  ".sql('FROM raw.ingestion_log'))")
    print(f"""
== How to look
  Query the warehouse (read-only):
    {env} .venv/bin/billing sql "SELECT * FROM raw.ingestion_log"
    {env} .venv/bin/billing sql "SELECT reason, detail, raw FROM raw.rejected_events LIMIT 5"
  Or with DuckDB from Python:
    .venv/bin/python -c "{duckdb_cmd}"
  The Dagster UI, with this demo's runs kept (DAGSTER_HOME=.dagster_home):
    make dev      # then open http://127.0.0.1:3000""")


if __name__ == "__main__":
    run_demo()
