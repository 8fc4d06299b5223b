"""Ingestion benchmark (issue 2): 10M events into a warehouse already holding 10M.

Prints events/s for Parquet and JSON Lines ingestion (validation and dedup included), the time of
bare DuckDB loading the same Parquet file (`CREATE TABLE AS SELECT * FROM read_parquet(...)`) and
the ratio, and each phase's peak RSS. Every phase runs in its own process, so RSS is its own.

    .venv/bin/python benchmarks/ingest.py [--events 10000000] [--history 10000000]

Targets on the 2-core machine: Parquet at most 1.5x the bare load, JSON Lines at least
300k events/s, peak RSS at most 3 GiB.
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

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_prepare(work: Path, events: int, history: int) -> dict[str, object]:
    from devkit.sample_data import (
        generate_events,
        write_benchmark_catalog,
        write_jsonl,
        write_parquet,
    )
    from pipelines.catalog import load_catalog

    started = time.perf_counter()
    catalog_dir = write_benchmark_catalog(work / "catalog", customers=10_000, seed=1)
    catalog = load_catalog(catalog_dir)
    old = generate_events(catalog, customers=None, events=history, month="2026-09", seed=1)
    write_parquet(old, work / "history.parquet")
    new = generate_events(catalog, customers=None, events=events, month="2026-10", seed=2)
    write_parquet(new, work / "new.parquet")
    write_jsonl(new, work / "new.jsonl")
    return {"seconds": time.perf_counter() - started}


def _ingest(warehouse: Path, path: Path, work: Path) -> dict[str, object]:
    from pipelines.catalog import load_catalog
    from pipelines.ingestion import ingest_file, prepare_session
    from pipelines.ingestion.landing import file_format, file_sha256
    from pipelines.warehouse import connect_writer

    customers = load_catalog(work / "catalog").customers
    with connect_writer(str(warehouse)) as con:
        prepare_session(con, customers, NOW)
        started = time.perf_counter()
        counts = ingest_file(con, path=str(path), file_format=file_format(path) or "",
                             file_id=file_sha256(path), size=path.stat().st_size, now=NOW,
                             run_id="benchmark")
        seconds = time.perf_counter() - started
        history = con.execute("SELECT count(*) FROM raw.events").fetchall()[0][0]
    assert counts is not None
    return {"seconds": seconds, "received": counts.received, "accepted": counts.accepted,
            "duplicates": counts.duplicates, "rejected": counts.rejected,
            "events_after": history}


def phase_history(work: Path) -> dict[str, object]:
    return _ingest(work / "base.duckdb", work / "history.parquet", work)


def phase_parquet(work: Path) -> dict[str, object]:
    target = work / "parquet.duckdb"
    shutil.copy(work / "base.duckdb", target)
    return _ingest(target, work / "new.parquet", work)


def phase_jsonl(work: Path) -> dict[str, object]:
    target = work / "jsonl.duckdb"
    shutil.copy(work / "base.duckdb", target)
    return _ingest(target, work / "new.jsonl", work)


def phase_bare(work: Path) -> dict[str, object]:
    import duckdb

    target = work / "bare.duckdb"
    shutil.copy(work / "base.duckdb", target)
    con = duckdb.connect(str(target))
    con.execute("SET memory_limit = '2GB'")
    started = time.perf_counter()
    con.execute(f"CREATE TABLE bare AS SELECT * FROM read_parquet('{work / 'new.parquet'}')")
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM bare").fetchall()[0][0]
    con.close()
    return {"seconds": seconds, "rows": rows}


PHASES = {"prepare": phase_prepare, "history": phase_history, "parquet": phase_parquet,
          "jsonl": phase_jsonl, "bare": phase_bare}


def run_phase(name: str, work: Path, *extra: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--work", str(work), *extra],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--history", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "ingest")
    parser.add_argument("--phase", choices=sorted(PHASES))
    args = parser.parse_args()
    if args.phase:
        work = args.work
        if args.phase == "prepare":
            result = phase_prepare(work, args.events, args.history)
        else:
            result = PHASES[args.phase](work)
        result["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(result))
        return

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    print(f"preparing {args.history:,} history events and {args.events:,} new events "
          f"(10,000 customers) in {work} ...", flush=True)
    prep = run_phase("prepare", work, "--events", str(args.events), "--history", str(args.history))
    print(f"  generated in {prep['seconds']:.1f} s")
    hist = run_phase("history", work)
    print(f"history: {hist['accepted']:,} events in the warehouse "
          f"(loaded in {hist['seconds']:.1f} s)")
    sizes = {p: (work / p).stat().st_size / 2**20 for p in ("new.parquet", "new.jsonl")}
    bare = run_phase("bare", work)
    parquet = run_phase("parquet", work)
    jsonl = run_phase("jsonl", work)
    ratio = parquet["seconds"] / bare["seconds"]
    print()
    print(f"{'phase':<34}{'seconds':>9}{'events/s':>12}{'peak RSS MiB':>14}")
    for label, r, n in (("bare CTAS from Parquet (reference)", bare, bare["rows"]),
                        ("ingest Parquet (validate + dedup)", parquet, parquet["received"]),
                        ("ingest JSON Lines (validate+dedup)", jsonl, jsonl["received"])):
        print(f"{label:<34}{r['seconds']:>9.2f}{n / r['seconds']:>12,.0f}"
              f"{r['peak_rss_mib']:>14,.0f}")
    print()
    print(f"Parquet {sizes['new.parquet']:,.0f} MiB, JSON Lines {sizes['new.jsonl']:,.0f} MiB; "
          f"each run: received {parquet['received']:,} = accepted {parquet['accepted']:,} + "
          f"duplicates {parquet['duplicates']:,} + rejected {parquet['rejected']:,}")
    print(f"Parquet ingestion / bare load = {ratio:.2f}x (target <= 1.5x)")
    print(f"JSON Lines ingestion = {jsonl['received'] / jsonl['seconds']:,.0f} events/s "
          f"(target >= 300,000)")
    peak = max(r["peak_rss_mib"] for r in (parquet, jsonl, bare))
    print(f"peak RSS = {peak:,.0f} MiB (target <= 3072)")


if __name__ == "__main__":
    main()
