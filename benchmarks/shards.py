"""Customer shards on one machine: N=1 against N=2 through the user's commands (issue 18).

The same data as benchmarks/commands.py (its catalog and event generator: `--customers`
customers, `--events` events over January and February 2026 in one Parquet file), ingested and
billed with `billing ingest` and `billing run --month 2026-02`, each a fresh process, first with
one warehouse (BILLING_SHARDS=1), then with two shards (BILLING_SHARDS=2: each command runs the
two shards' Dagster runs in two worker processes, one per core, then `billing run` numbers the
documents; each landed file is routed by shard once, by one of the shards' workers). Prints each
command's seconds, the routing's seconds, the speed-up, and each shard run's own wall time and
events (read from the Dagster runs the commands stored in a fresh instance), the figures
docs/scaling.md projects a cluster from.

    .venv/bin/python benchmarks/shards.py [--events 10000000] [--customers 10000] [--shards 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.commands import (  # noqa: E402
    BARE_GROUP_BY,
    BARE_LOAD,
    GIB,
    Timed,
    bare_bounds,
    timed,
    write_events,
)

MONTH = "2026-02"


def shard_runs(home: Path) -> list[dict[str, object]]:
    """Each stored run's job, shard and wall seconds (from Dagster's run records)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        return sorted(({"job": r.dagster_run.job_name,
                        "shard": r.dagster_run.tags.get("billing/shard", "-"),
                        "seconds": (r.end_time or 0) - (r.start_time or 0)}
                       for r in records), key=lambda r: (str(r["job"]), str(r["shard"])))


def shard_events(warehouse: Path, shards: int) -> list[int]:
    """How many events each shard's warehouse holds."""
    import duckdb

    from pipelines.sharding import warehouse_paths

    counts = []
    for path in warehouse_paths(str(warehouse), shards):
        with duckdb.connect(path, read_only=True) as con:
            counts.append(con.execute("SELECT count(*) FROM raw.events").fetchall()[0][0])
    return counts


def one_setting(work: Path, source: Path, catalog: Path, shards: int) -> dict[str, object]:
    """Ingest and bill the month with `shards` shards; the commands' and the shard runs' times."""
    import dagster as dg

    root = work / f"shards-{shards}"
    landing, home = root / "landing", root / "dagster_home"
    landing.mkdir(parents=True)
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)):
        pass       # storage made once, before the shards' worker processes open it
    shutil.copy(source, landing / source.name)
    env = {**os.environ, "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"),
           "BILLING_LANDING": str(landing), "BILLING_CATALOG": str(catalog),
           "BILLING_API_STORE": str(root / "api.sqlite3"), "BILLING_SHARDS": str(shards),
           "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("BILLING_NOW", None)
    billing = str(Path(sys.executable).with_name("billing"))
    ingest: Timed = timed([billing, "ingest"], env)
    run: Timed = timed([billing, "run", "--month", MONTH], env)
    print(f"\n[N={shards}] $ billing ingest\n{ingest.output.rstrip()}\n"
          f"[N={shards}] $ billing run --month {MONTH}\n{run.output.rstrip()}", flush=True)
    # each shard's routing pass (its own routing plus waiting for files others routed), as
    # `billing ingest` reports it
    routing = [float(seconds) for seconds in
               re.findall(r"shard \d+ routed \d+ file\(s\), ([\d.]+) s", ingest.output)]
    return {"shards": shards, "ingest_s": ingest.seconds, "run_s": run.seconds,
            "routing_s": max(routing, default=0.0),
            "ingest_peak_rss": ingest.peak_rss, "run_peak_rss": run.peak_rss,
            "runs": shard_runs(home), "events": shard_events(root / "warehouse.duckdb", shards)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.work or REPO / "benchmarks" / "out" / f"shards-{args.events}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    from devkit.sample_data import write_benchmark_catalog

    started = time.perf_counter()
    catalog = write_benchmark_catalog(work / "catalog", customers=args.customers, seed=1)
    source = work / f"events-{MONTH}.parquet"
    write_events(source, events=args.events, customers=args.customers, index=0)
    print(f"{args.events:,} events, {args.customers:,} customers, "
          f"{source.stat().st_size / 2**20:,.0f} MiB of Parquet, made in "
          f"{time.perf_counter() - started:.0f} s on {os.cpu_count()} cores", flush=True)

    # bare DuckDB on the same file in the same run: the load and the billed aggregates
    bare_db = work / "bare.duckdb"
    bare_load = timed([sys.executable, "-c", BARE_LOAD, str(bare_db), str(source), "create"])
    bare_group = timed([sys.executable, "-c", BARE_GROUP_BY, str(bare_db), *bare_bounds(0)])
    bare_db.unlink()
    bare_total = bare_load.seconds + bare_group.seconds
    print(f"bare DuckDB: load {bare_load.seconds:.1f} s, GROUP BY {bare_group.seconds:.1f} s, "
          f"together {bare_total:.1f} s", flush=True)

    results = [one_setting(work, source, catalog, shards) for shards in args.shards]
    base = results[0]
    print("\n| shards | `billing ingest` | of it routing | `billing run --month` | together "
          "| vs bare DuckDB | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        together = result["ingest_s"] + result["run_s"]
        speed_up = (base["ingest_s"] + base["run_s"]) / together
        print(f"| {result['shards']} | {result['ingest_s']:.1f} s "
              f"(peak {result['ingest_peak_rss'] / GIB:.2f} GiB) "
              f"| {result['routing_s']:.1f} s "
              f"| {result['run_s']:.1f} s (peak {result['run_peak_rss'] / GIB:.2f} GiB) "
              f"| {together:.1f} s | {together / bare_total:.1f}x | {speed_up:.2f}x |")
    print("\n| shards | job | shard | events in shard | run wall time |")
    print("|---:|---|---:|---:|---:|")
    for result in results:
        for run in result["runs"]:
            shard = run["shard"]
            events = result["events"][int(shard)] if str(shard).isdigit() else \
                sum(result["events"])
            print(f"| {result['shards']} | {run['job']} | {shard} | {events:,} "
                  f"| {run['seconds']:.1f} s |")
    print(json.dumps({"events": args.events, "customers": args.customers, "cores": os.cpu_count(),
                      "bare_load_s": bare_load.seconds, "bare_group_by_s": bare_group.seconds,
                      "results": results}))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
