"""Customer shards (contract section 12): a held-out golden month run with BILLING_SHARDS=4
through the `billing` command gives exactly the tables of one warehouse (ids, numbers, amounts),
and each file's accounting is exact across shards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.sharding import connect_finance_reader, shard_of, warehouse_paths
from tests.support.landing import event, write_lines

CUSTOMERS = [("acme_corp_001", 3), ("initech_003", 2), ("hooli_005", 1), ("globex_002", 0),
             ("umbrella_004", 3), ("stark_006", 0), ("wayne_007", 3), ("wonka_008", 0)]
"""Eight customers and their shard of 4 (sha256's first 8 bytes mod 4): every shard has one."""

CATALOG = "billing_profiles:\n" \
    "  - {key: manual, default: true, app: none, grace_period: PT2H,\n" \
    "     auto_approve_corrections_up_to: \"1000.00\"}\n" \
    "customers:\n" + "".join(f"  - {{id: {c}, name: {c}}}\n" for c, _ in CUSTOMERS) + \
    "subscriptions:\n" + "".join(
        f"  - {{id: sub_{c}, customer: {c}, plan: professional, start_date: 2026-01-01}}\n"
        for c, _ in CUSTOMERS)

TABLES = {
    "raw.events": "SELECT * EXCLUDE (ingested_at) FROM raw.events",
    "raw.rejected_events": "SELECT * EXCLUDE (rejected_at) FROM raw.rejected_events",
    "billing.usage_quantities": "SELECT * EXCLUDE (rated_at) FROM billing.usage_quantities",
    "billing.invoices": "SELECT * FROM billing.invoices",
    "billing.invoice_lines": "SELECT * FROM billing.invoice_lines",
    "billing.invoice_status_history": "SELECT * FROM billing.invoice_status_history",
    "billing.corrections": "SELECT * EXCLUDE (run_id) FROM billing.corrections",
    "billing.credit_notes": "SELECT * FROM billing.credit_notes",
    "billing.credit_note_lines": "SELECT * FROM billing.credit_note_lines",
    "finance.usage_reconciliation": "SELECT * EXCLUDE (reconciled_at) "
                                    "FROM finance.usage_reconciliation",
}


def january(customer: str, index: int) -> list[object]:
    """A customer's January: a different amount of API calls and exports each."""
    return ([event(f"{customer}_api_{i}", customer=customer,
                   ts=f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z")
             for i in range(1500 * (index + 1))]
            + [event(f"{customer}_exp_{i}", customer=customer, name="report.exported",
                     ts="2026-01-20T08:00:00Z") for i in range(40 * index)])


def late(customer: str, index: int) -> list[object]:
    """Late January events found after the invoices were issued: corrections, documents."""
    return [event(f"{customer}_late_{i}", customer=customer, ts="2026-01-25T10:00:00Z")
            for i in range(300 * (index % 3))]


def billing(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return done.stdout


def golden_setup(root: Path, shards: int) -> dict[str, str]:
    """The golden month's catalog and January file in `root`, and the environment `billing`
    runs them with `shards` shards in (the clock at 2026-02-03)."""
    landing, catalog = root / "landing", root / "catalog"
    landing.mkdir(parents=True)
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalog", catalog)
    (catalog / "customers.yaml").write_text(CATALOG)
    lines: list[object] = []
    for index, (customer, _) in enumerate(CUSTOMERS):
        lines += january(customer, index)
    lines += ["{not json", {"event_id": "no_customer", "event_name": "api.request",
                            "timestamp": "2026-01-03T00:00:00Z"},
              event("stranger_1", customer="nobody_999", ts="2026-01-04T00:00:00Z"),
              event("acme_corp_001_api_1", customer="acme_corp_001", ts="2026-01-02T01:00:00Z")]
    write_lines(landing / "january.jsonl", lines)
    env = {**os.environ, "BILLING_SHARDS": str(shards),
           "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"), "BILLING_LANDING": str(landing),
           "BILLING_CATALOG": str(catalog), "BILLING_NOW": "2026-02-03T00:00:00Z"}
    env.pop("DAGSTER_HOME", None)
    return env


def golden_month(root: Path, shards: int) -> dict[str, list[tuple]]:
    """The month run through `billing` with `shards` shards; every table, sorted."""
    env = golden_setup(root, shards)
    landing = root / "landing"
    billing(env, "ingest")
    billing(env, "run", "--month", "2026-02")
    late_lines: list[object] = []
    for index, (customer, _) in enumerate(CUSTOMERS):
        late_lines += late(customer, index)
    write_lines(landing / "late.jsonl", late_lines)
    env["BILLING_NOW"] = "2026-02-05T00:00:00Z"
    billing(env, "ingest")
    billing(env, "run", "--month", "2026-02")
    env["BILLING_NOW"] = "2026-02-06T00:00:00Z"
    billing(env, "run", "--month", "2026-02")
    # sync and reconciliation run every shard too (one run each, in parallel), then number
    synced = billing(env, "sync")
    assert ("shard 3: " in synced) == (shards > 1), synced
    billing(env, "reconcile", "--verbose")
    os.environ["BILLING_SHARDS"] = str(shards)
    try:
        with connect_finance_reader(str(root / "warehouse.duckdb")) as con:
            return {name: sorted(con.execute(query).fetchall(), key=repr)
                    for name, query in TABLES.items()}
    finally:
        del os.environ["BILLING_SHARDS"]


def test_golden_month_with_four_shards_equals_one_warehouse(tmp_path):
    assert [shard_of(c, 4) for c, _ in CUSTOMERS] == [s for _, s in CUSTOMERS]
    one = golden_month(tmp_path / "one", 1)
    four = golden_month(tmp_path / "four", 4)
    # the month issued numbered invoices, then supplementary ones for the late events (a later
    # batch), so numbering across shards in the order of issue is exercised
    numbers = sorted(row[1] for row in one["billing.invoices"] if row[1])
    assert numbers == [f"INV-202602-{n:05d}" for n in range(1, len(numbers) + 1)]
    assert len(numbers) > len(CUSTOMERS)
    for table in TABLES:
        assert four[table] == one[table], table
    # each shard's file holds only its customers; each file's lines are counted once overall
    for number, path in enumerate(warehouse_paths(str(tmp_path / "four" / "warehouse.duckdb"),
                                                  4)):
        assert Path(path).name == f"warehouse.shard-{number}-of-4.duckdb"
    os.environ["BILLING_SHARDS"] = "4"
    try:
        with connect_finance_reader(str(tmp_path / "four" / "warehouse.duckdb")) as con:
            counts = con.execute("""
                SELECT path, count(*), sum(received), sum(accepted), sum(duplicates),
                       sum(rejected) FROM raw.ingestion_log
                GROUP BY path ORDER BY path""").fetchall()
    finally:
        del os.environ["BILLING_SHARDS"]
    january_lines = sum(1500 * (i + 1) + 40 * i for i in range(8)) + 4
    assert counts[0][0].endswith("january.jsonl")
    # 3 rejected: the broken line, the one without a customer, nobody_999 (unknown)
    assert counts[0][1:] == (4, january_lines, january_lines - 4, 1, 3)
