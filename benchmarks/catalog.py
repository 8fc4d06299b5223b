"""What the catalog's size costs a user (issue 15): `billing ingest` of a 10-event file with a
catalog of 10 customers against one of 100,000 customers and subscriptions, each command a
fresh process; and loading the 100,000-customer catalog alone, parsed (the first load after the
catalog changed) and read back from the parsed-file cache (every later load).

    .venv/bin/python benchmarks/catalog.py [--customers 100000]

Target on the 2-core machine: 100,000 customers and subscriptions loaded and validated in
under 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOAD = """
import json, sys, time
started = time.perf_counter()
from pipelines.catalog import load_catalog
catalog = load_catalog(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - started,
                  "customers": len(catalog.customers),
                  "subscriptions": len(catalog.subscriptions)}))
"""


def ten_events(path: Path, customer: str, tag: str) -> None:
    lines = [json.dumps({"event_id": f"evt_{tag}_{i}", "event_name": "api.request",
                         "customer_id": customer, "timestamp": "2026-02-03T10:00:00Z",
                         "properties": {"tokens": 10}}) for i in range(10)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def ingest_seconds(work: Path, customers: int) -> tuple[float, float]:
    """`billing ingest` of a 10-event file in a fresh warehouse, as the user runs it, twice:
    the first run parses the catalog, the second (another file, the catalog unchanged) reads
    it back from the parsed-file cache."""
    from devkit.sample_data import write_benchmark_catalog

    folder = work / f"with-{customers}"
    landing = folder / "landing"
    landing.mkdir(parents=True)
    catalog = write_benchmark_catalog(folder / "catalog", customers=customers, seed=1)
    customer = "bench_" + "1".zfill(max(6, len(str(customers))))
    env = {**os.environ, "BILLING_WAREHOUSE": str(folder / "warehouse.duckdb"),
           "BILLING_LANDING": str(landing), "BILLING_CATALOG": str(catalog),
           "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    billing = str(Path(sys.executable).with_name("billing"))
    seconds = []
    for tag in ("first", "second"):
        ten_events(landing / f"events-{tag}.jsonl", customer, tag)
        started = time.perf_counter()
        subprocess.run([billing, "ingest"], env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def load_seconds(catalog: Path, cache: Path) -> dict[str, float]:
    env = {**os.environ, "BILLING_CATALOG_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", LOAD, str(catalog)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "catalog")
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True)

    small = ingest_seconds(args.work, 10)
    large = ingest_seconds(args.work, args.customers)
    catalog = args.work / f"with-{args.customers}" / "catalog"
    cold = load_seconds(catalog, args.work / "fresh-cache")
    warm = load_seconds(catalog, args.work / "fresh-cache")
    print("| catalog | `billing ingest` of 10 events, first run | the next run |")
    print("|---|---:|---:|")
    for label, (first, second) in (("10 customers", small),
                                   (f"{args.customers:,} customers", large)):
        print(f"| {label} | {first:.1f} s | {second:.1f} s |")
    print()
    print(f"load_catalog of {cold['customers']:,} customers and {cold['subscriptions']:,} "
          f"subscriptions in a fresh process: {cold['seconds']:.2f} s parsed (after a change), "
          f"{warm['seconds']:.2f} s from the parsed-file cache (target < 2 s)")
    shutil.rmtree(args.work)


if __name__ == "__main__":
    main()
