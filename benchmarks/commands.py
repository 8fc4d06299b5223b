"""The user's commands against bare DuckDB, end to end (issue 15).

Times what a user types, `billing ingest` and `billing run --month`, each a fresh process
(interpreter start, Dagster, the asset checks, the catalog, the printed output included), against
bare DuckDB doing the nearest equivalent work on the same file in the same run, each also a fresh
process: loading the Parquet file into a table, and one GROUP BY computing the billed
aggregates per customer and event name from the JSON properties. Peak RSS is each process's own.

The data: a catalog of `--customers` (default 10,000) customers with one subscription each (the
benchmark catalog), and `--events` usage events with JSON-string properties, as real producers
send them, over January and February 2026 (the periods the 2026-02 cuts close), in one Parquet
file; 0.1% are re-sent duplicates and 0.01% name a customer the catalog does not know.

    .venv/bin/python benchmarks/commands.py [--events 10000000] [--customers 10000]
        [--months 1]      # > 1: a backfill, one file and one `billing run` per further month

Targets on the 2-core machine (issue 15): at 10M, `billing ingest` within 2x the bare load and
`billing run --month` within 3x the bare GROUP BY; at 100M, both together within 2.5x of
bare load + bare GROUP BY; peak RSS at most 3 GiB for each command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GIB = 2**30
FIRST_MONTH = (2026, 2)

# Events of the benchmark catalog's billed event names; `properties` is JSON text. Row i's
# event id is evt_<month>_<i>; every 1,000th row re-sends row i - 1 (a duplicate) and every
# 10,000th names a customer the catalog does not know (rejected as unknown_customer).
EVENTS_SQL = """
COPY (
  SELECT 'gw' AS source,
         'evt_{tag}_' || CASE WHEN i % 1000 = 999 THEN i - 1 ELSE i END AS event_id,
         name AS event_name,
         CASE WHEN i % 10000 = 5 THEN 'stranger_' || i ELSE cust END AS customer_id,
         strftime(ts, '%Y-%m-%dT%H:%M:%S.%gZ') AS "timestamp",
         props AS properties
  FROM (
    SELECT i, k,
      'bench_' || lpad(CAST(hash(k, 1) % {customers} + 1 AS VARCHAR), {width}, '0') AS cust,
      ['api.request', 'api.request', 'api.request', 'storage.snapshot', 'report.exported',
       'user.login', 'compute.run'][CAST(hash(k, 2) % 7 + 1 AS INT)] AS name,
      TIMESTAMPTZ '{start}' + to_microseconds(CAST(hash(k, 3) % {span_us} AS BIGINT)) AS ts,
      hash(k, 4) AS h
    FROM (SELECT i, CASE WHEN i % 1000 = 999 THEN i - 1 ELSE i END + {offset} AS k
          FROM range({events}) r(i))
  ) x, LATERAL (SELECT CASE name
      WHEN 'api.request' THEN '{{"endpoint":"/v1/users","tokens":' || (h % 4000 + 10) || '}}'
      WHEN 'storage.snapshot' THEN '{{"gb":"' || ((h % 50000) / 100.0)::DECIMAL(10, 2) || '"}}'
      WHEN 'report.exported' THEN '{{"format":"csv"}}'
      WHEN 'user.login' THEN '{{"user_id":"user_' || (h % 200) || '"}}'
      ELSE '{{"region":"' || CASE WHEN h % 10 = 0 THEN 'us' ELSE 'eu' END
           || '","resources":{{"minutes":' || (h % 240 + 1) || '}}}}'
    END AS props) p
) TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)
"""

# The first month creates the table, later months append to it, as ingestion appends to
# raw.events: the bare side of a backfill holds the same history as the warehouse.
BARE_LOAD = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
if sys.argv[3] == "create":
    con.execute("CREATE TABLE events AS SELECT * FROM read_parquet(?)", [sys.argv[2]])
else:
    con.execute("INSERT INTO events SELECT * FROM read_parquet(?)", [sys.argv[2]])
con.execute("CHECKPOINT")
"""

# The same aggregates the billing run bills (count, sum, max, unique count, a filtered sum),
# per customer and event name, one JSON parse per event, exact decimals.
BARE_GROUP_BY = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute('''
SELECT customer_id, event_name, count(*) AS events,
    sum(TRY_CAST(v[1] AS DECIMAL(38, 12))) AS tokens,
    max(TRY_CAST(v[2] AS DECIMAL(38, 12))) AS gb,
    count(DISTINCT v[3]) AS users,
    sum(TRY_CAST(v[4] AS DECIMAL(38, 12))) FILTER (WHERE v[5] = 'eu') AS eu_minutes
FROM (SELECT customer_id, event_name,
             json_extract_string(properties, ['$.tokens', '$.gb', '$.user_id',
                                              '$.resources.minutes', '$.region']) AS v
      FROM events
      WHERE "timestamp" >= ? AND "timestamp" < ?)
GROUP BY customer_id, event_name''', [sys.argv[2], sys.argv[3]]).fetchall()
print(len(rows))
"""


@dataclass(frozen=True)
class Timed:
    """One command's wall time, peak RSS and output."""

    seconds: float
    peak_rss: int
    output: str


def timed(command: list[str], env: dict[str, str] | None = None) -> Timed:
    """Run a command as a fresh process; its wall time and its own peak RSS (wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{output}")
    return Timed(seconds, usage.ru_maxrss * 1024, output)


def month_name(index: int) -> str:
    year, month = FIRST_MONTH
    month += index
    year += (month - 1) // 12
    return f"{year:04d}-{(month - 1) % 12 + 1:02d}"


def write_events(path: Path, *, events: int, customers: int, index: int) -> None:
    """One month's event file: the first covers January and February 2026 (the periods the
    February cuts close), each later one its own month (30 days from its first)."""
    import duckdb

    start, days = ("2026-01-01", 59) if index == 0 else (f"{month_name(index)}-01", 30)
    width = max(6, len(str(customers)))
    con = duckdb.connect()
    con.execute(EVENTS_SQL.format(tag=index, customers=customers, width=width,
                                  start=start + " 00:00:00+00", span_us=days * 86_400 * 10**6,
                                  offset=index * 10**10, events=events, path=path))
    con.close()


def bare_bounds(index: int) -> tuple[str, str]:
    """The span the month's cuts close (the previous month and the month), as the bare GROUP BY
    selects it from all events loaded so far, as the usage query selects from raw.events."""
    return f"{month_name(index - 1)}-01 00:00:00+00", f"{month_name(index + 1)}-01 00:00:00+00"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="events per month")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=1, help="months of a backfill")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = args.work or REPO / "benchmarks" / "out" / f"commands-{args.events}"
    if work.exists():
        shutil.rmtree(work)
    landing = work / "landing"
    landing.mkdir(parents=True)

    from devkit.sample_data import write_benchmark_catalog

    started = time.perf_counter()
    catalog = write_benchmark_catalog(work / "catalog", customers=args.customers, seed=1)
    files = []
    for index in range(args.months):
        path = work / f"events-{month_name(index)}.parquet"
        write_events(path, events=args.events, customers=args.customers, index=index)
        files.append(path)
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"{args.months} month(s) of {args.events:,} events with JSON-string properties, "
          f"{args.customers:,} customers, {size:,.0f} MiB of Parquet, made in "
          f"{time.perf_counter() - started:.0f} s", flush=True)

    billing = str(Path(sys.executable).with_name("billing"))
    env = {**os.environ, "BILLING_WAREHOUSE": str(work / "warehouse.duckdb"),
           "BILLING_LANDING": str(landing), "BILLING_CATALOG": str(catalog),
           "BILLING_API_STORE": str(work / "api.sqlite3"),
           # the commands of this checkout, whatever the environment has installed
           "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    env.pop("BILLING_NOW", None)
    rows = []
    for index, source in enumerate(files):
        month = month_name(index)
        bare_db = work / "bare.duckdb"
        bare_load = timed([sys.executable, "-c", BARE_LOAD, str(bare_db), str(source),
                           "create" if index == 0 else "append"])
        low, high = bare_bounds(index)
        bare_group = timed([sys.executable, "-c", BARE_GROUP_BY, str(bare_db), low, high])
        shutil.copy(source, landing / source.name)
        ingest = timed([billing, "ingest"], env)
        run = timed([billing, "run", "--month", month], env)
        rows.append((month, bare_load, ingest, bare_group, run))
        print(f"\n$ billing ingest\n{ingest.output.rstrip()}\n$ billing run --month {month}\n"
              f"{run.output.rstrip()}", flush=True)

    print("\n| month | events | bare load | `billing ingest` | bare GROUP BY | "
          "`billing run --month` | together |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for month, bare_load, ingest, bare_group, run in rows:
        bare_total = bare_load.seconds + bare_group.seconds
        ours = ingest.seconds + run.seconds
        print(f"| {month} | {args.events / 1e6:,.0f}M | {bare_load.seconds:.1f} s "
              f"| {ingest.seconds:.1f} s ({ratio(ingest.seconds, bare_load.seconds)}), "
              f"peak {ingest.peak_rss / GIB:.2f} GiB "
              f"| {bare_group.seconds:.1f} s "
              f"| {run.seconds:.1f} s ({ratio(run.seconds, bare_group.seconds)}), "
              f"peak {run.peak_rss / GIB:.2f} GiB "
              f"| {ours:.1f} s vs {bare_total:.1f} s ({ratio(ours, bare_total)}) |")
    print(json.dumps({"events": args.events, "customers": args.customers, "rows": [
        {"month": m, "bare_load_s": bl.seconds, "ingest_s": i.seconds,
         "ingest_peak_rss": i.peak_rss, "bare_group_by_s": bg.seconds, "run_s": r.seconds,
         "run_peak_rss": r.peak_rss, "bare_peak_rss": max(bl.peak_rss, bg.peak_rss)}
        for m, bl, i, bg, r in rows]}))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
