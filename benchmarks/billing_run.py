"""Billing-run benchmark (issue 3): usage aggregation + rating + invoices for one month.

10,000 customers (the benchmark catalog: one subscription each over the example plans), events of
the five billed event names (count, sum, max, unique_count and a filtered sum among the meters),
rated for one billing month through the production code (`measure_month`, `draft_invoices`,
`write_month`), against the reference: one bare DuckDB GROUP BY computing the same aggregates
over the same events. Each size runs in its own process so its peak RSS is its own.

    .venv/bin/python benchmarks/billing_run.py [--sizes 1000000 10000000 100000000]

Targets on the 2-core machine at 10M events: at most 2x the bare GROUP BY, peak RSS 3 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MONTH = "2026-02"
NOW = datetime(2026, 3, 2, tzinfo=UTC)
EVENTS_FROM = "2026-01-01 00:00:00+00"   # events over January and February
EVENTS_SPAN_US = 59 * 86_400 * 10**6

# Synthetic events straight into raw.events (ingestion has its own benchmark): customers of the
# benchmark catalog, the five billed event names, properties the meters read.
GENERATE = """
INSERT INTO raw.events
SELECT 'gw', 'evt_' || i, name, cust, NULL, ts, props::JSON, 'bench', i, $now, 0, 'file'
FROM (
  SELECT i,
    'bench_' || lpad(CAST(hash(i, 1) % $customers + 1 AS VARCHAR), 6, '0') AS cust,
    ['api.request', 'api.request', 'api.request', 'storage.snapshot', 'report.exported',
     'user.login', 'compute.run'][CAST(hash(i, 2) % 7 + 1 AS INT)] AS name,
    $start::TIMESTAMPTZ + to_microseconds(CAST(hash(i, 3) % $span_us AS BIGINT)) AS ts,
    hash(i, 4) AS h
  FROM range($n) r(i)
) x, LATERAL (SELECT CASE name
    WHEN 'api.request' THEN '{"endpoint":"/v1/users","tokens":' || (h % 4000 + 10) || '}'
    WHEN 'storage.snapshot' THEN '{"gb":"' || ((h % 50000) / 100.0)::DECIMAL(10, 2) || '"}'
    WHEN 'report.exported' THEN '{"format":"csv"}'
    WHEN 'user.login' THEN '{"user_id":"user_' || (h % 200) || '"}'
    ELSE '{"region":"' || CASE WHEN h % 10 = 0 THEN 'us' ELSE 'eu' END
         || '","resources":{"minutes":' || (h % 240 + 1) || '}}'
  END AS props) p
"""

# The reference: the same aggregates per customer and event name, one JSON parse per event.
BARE_GROUP_BY = """
SELECT customer_id, event_name, count(*) AS events,
    sum(TRY_CAST(v[1] AS DECIMAL(38, 12))) AS tokens,
    max(TRY_CAST(v[2] AS DECIMAL(38, 12))) AS gb,
    count(DISTINCT v[3]) AS users,
    sum(TRY_CAST(v[4] AS DECIMAL(38, 12))) FILTER (WHERE v[5] = 'eu') AS eu_minutes
FROM (SELECT customer_id, event_name,
             json_extract_string(properties, ['$.tokens', '$.gb', '$.user_id',
                                              '$.resources.minutes', '$.region']) AS v
      FROM raw.events
      WHERE event_name IN ('api.request', 'storage.snapshot', 'report.exported', 'user.login',
                           'compute.run'))
GROUP BY customer_id, event_name
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_size(events: int, work: Path) -> dict[str, object]:
    from devkit.sample_data import write_benchmark_catalog
    from pipelines.catalog import load_catalog
    from pipelines.catalog.warehouse_tables import write_catalog_tables
    from pipelines.invoicing.ledger import write_month
    from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
    from pipelines.invoicing.usage_measurement import measure_month, stored_usage
    from pipelines.warehouse import connect_writer

    work.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(write_benchmark_catalog(work / "catalog", customers=10_000, seed=1))
    warehouse = work / f"billing_{events}.duckdb"
    warehouse.unlink(missing_ok=True)
    with connect_writer(str(warehouse)) as con:
        started = time.perf_counter()
        write_catalog_tables(con, catalog)
        con.execute(GENERATE, {"customers": 10_000, "start": EVENTS_FROM, "now": NOW,
                               "span_us": EVENTS_SPAN_US, "n": events}).fetchall()
        con.execute("CHECKPOINT").fetchall()
        generated = time.perf_counter() - started

        started = time.perf_counter()
        bare_rows = len(con.execute(BARE_GROUP_BY).fetchall())
        bare = time.perf_counter() - started

        started = time.perf_counter()
        cuts = due_cuts(catalog, MONTH, NOW)
        usage = measure_month(con, MONTH, cuts, rated_at=NOW)
        measured = time.perf_counter() - started
        drafts = draft_invoices(catalog, cuts, stored_usage(con, MONTH))
        rated = time.perf_counter() - started - measured
        update = write_month(con, MONTH, drafts, catalog, now=NOW, run_id="benchmark")
        total = time.perf_counter() - started
        counted = int(usage["events_counted"].sum() or 0)
    warehouse.unlink(missing_ok=True)
    return {"events": events, "generated_s": generated, "bare_s": bare, "bare_rows": bare_rows,
            "usage_s": measured, "rating_s": rated, "run_s": total, "cuts": len(cuts),
            "usage_rows": usage.height, "events_counted": counted, "invoices": update.rated,
            "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "billing")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.work)))
        return
    shutil.rmtree(args.work, ignore_errors=True)
    print(f"billing month {MONTH}, 10,000 customers, events over January and February 2026")
    print(f"{'events':>12}{'bare GROUP BY s':>17}{'billing run s':>15}{'(usage':>9}"
          f"{'rating':>8}{'ledger)':>9}{'ratio':>7}{'invoices':>10}{'peak RSS MiB':>14}")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size), "--work",
                              str(args.work)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ledger = r["run_s"] - r["usage_s"] - r["rating_s"]
        print(f"{r['events']:>12,}{r['bare_s']:>17.2f}{r['run_s']:>15.2f}{r['usage_s']:>9.2f}"
              f"{r['rating_s']:>8.2f}{ledger:>9.2f}{r['run_s'] / r['bare_s']:>7.2f}"
              f"{r['invoices']:>10,}{r['peak_rss_mib']:>14,.0f}", flush=True)
    print("ratio = billing run (usage + rating + invoices) / bare GROUP BY; targets at 10M: "
          "ratio <= 2, peak RSS <= 3072 MiB")


if __name__ == "__main__":
    main()
