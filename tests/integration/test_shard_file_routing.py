"""Routing landed files by customer shard (issue 18 item 1): with BILLING_SHARDS=N each landed
file is split by shard ONCE (by whichever shard's worker gets to it), each shard ingests only
its part with the file's id and line numbers, so the per-file accounting of the shards adds up
to one warehouse's; parts are removed once every shard has logged the file; two workers routing
the same file give one complete part set; a half-written part set is ignored and redone.

Real `billing ingest` runs (the code location reads BILLING_SHARDS when it loads, so in
subprocesses), on JSON Lines, CSV and Parquet files."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from pipelines.ingestion.landing import landed_files
from pipelines.ingestion.routing import (
    LoggedFiles,
    part_set_folder,
    route_file,
    route_landed_files,
    with_identity,
)
from pipelines.sharding import connect_finance_reader, shard_of
from tests.integration.test_shards import billing
from tests.support.landing import event, write_lines
from tests.support.object_store import s3_landing, s3_server

__all__ = ["s3_landing", "s3_server"]   # fixtures

SHARDS = 3
CUSTOMERS = ["acme_corp_001", "initech_003", "hooli_005", "globex_002", "umbrella_004",
             "stark_006"]
CATALOG = "billing_profiles:\n  - {key: manual, default: true, app: none, grace_period: PT2H}\n" \
    "customers:\n" + "".join(f"  - {{id: {c}, name: {c}}}\n" for c in CUSTOMERS)
HEADER = ("event_id,event_name,customer_id,timestamp,properties,source,specversion,id,type,"
          "subject,time,data\n")


def land(landing: Path) -> dict[str, int]:
    """Three files with every kind of line; each file's physical lines (CSV: records)."""
    lines: list[object] = [event(f"j{i}", customer=CUSTOMERS[i % 6],
                                 ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z") for i in range(600)]
    lines[10:10] = ["{not json", "", "   ",
                    {"event_id": "no_customer", "event_name": "api.request",
                     "timestamp": "2026-01-03T00:00:00Z"},
                    event("stranger", customer="nobody_999"),
                    event("j5", customer=CUSTOMERS[5], ts="2026-01-06T10:00:00Z"),  # repeat
                    event("j7", customer=CUSTOMERS[1], ts="2026-01-09T09:00:00Z"),  # conflict
                    {"event_id": 7, "event_name": "api.request", "customer_id": CUSTOMERS[2],
                     "timestamp": "2026-01-03T00:00:00Z"}]
    write_lines(landing / "a.jsonl", lines)
    rows = [f"c{i},api.request,{CUSTOMERS[i % 6]},2026-01-21T14:30:00Z,\"{{\"\"n\"\": {i}}}\","
            f"gw,,,,,,\n" for i in range(90)]
    rows.insert(5, "c_short,api.request,acme_corp_001\n")                  # parser reject
    rows.insert(9, f",,,,,gw,1.0,ce1,api.request,{CUSTOMERS[3]},2026-01-21T14:30:00Z,{{}}\n")
    rows.insert(12, "c_bad,api.request,hooli_005,2026-01-21T14:30:00Z,not-json,gw,,,,,,\n")
    (landing / "b.csv").write_text(HEADER + "".join(rows), encoding="utf-8")
    ts = datetime(2026, 1, 21, 14, 30, tzinfo=UTC)
    pl.DataFrame({
        "event_id": [f"p{i}" for i in range(60)] + ["p0"],
        "event_name": ["api.request"] * 61,
        "customer_id": [CUSTOMERS[i % 6] for i in range(60)] + [CUSTOMERS[0]],
        "timestamp": pl.Series([ts] * 61).dt.convert_time_zone("UTC"),
        "properties": [{"tokens": i} for i in range(60)] + [{"tokens": 0}],
    }).write_parquet(landing / "c.parquet")
    return {"a.jsonl": len(lines), "b.csv": len(rows), "c.parquet": 61}


def environment(root: Path, shards: int) -> dict[str, str]:
    landing, catalog = root / "landing", root / "catalog"
    landing.mkdir(parents=True)
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalog", catalog)
    (catalog / "customers.yaml").write_text(CATALOG)
    env = {**os.environ, "BILLING_SHARDS": str(shards),
           "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"), "BILLING_LANDING": str(landing),
           "BILLING_CATALOG": str(catalog), "BILLING_API_STORE": str(root / "api.sqlite3"),
           "BILLING_NOW": "2026-02-01T01:00:00Z", "PYTHONPATH": str(Path.cwd())}
    env.pop("DAGSTER_HOME", None)
    env.pop("BILLING_ROUTING", None)
    return env


def tables(root: Path, shards: int) -> dict[str, list[tuple]]:
    """Events, rejects and each file's counts summed over the shards (by file name)."""
    os.environ["BILLING_SHARDS"] = str(shards)
    try:
        with connect_finance_reader(str(root / "warehouse.duckdb")) as con:
            return {
                "events": sorted(con.execute(
                    "SELECT * EXCLUDE (ingested_at) FROM raw.events").fetchall(), key=repr),
                "rejects": sorted(con.execute(
                    "SELECT * EXCLUDE (rejected_at) FROM raw.rejected_events").fetchall(),
                    key=repr),
                "counts": con.execute("""
                    SELECT regexp_extract(path, '[^/]+$'), file_id, count(*), sum(received),
                           sum(accepted), sum(duplicates), sum(rejected), sum(conflicts)
                    FROM raw.ingestion_log GROUP BY ALL ORDER BY 1""").fetchall(),
            }
    finally:
        del os.environ["BILLING_SHARDS"]


def routed_per_shard(output: str) -> list[int]:
    """How many files each shard's run routed itself, from `billing ingest`'s summary."""
    return [int(n) for n in re.findall(r"shard \d+ routed (\d+) file", output)]


def part_sets(routing: Path) -> list[Path]:
    return sorted(p for p in routing.glob("*/of-*") if p.is_dir()) if routing.exists() else []


def test_each_file_is_routed_once_and_the_shards_add_up_to_one_warehouse(tmp_path):
    one_env, many_env = environment(tmp_path / "one", 1), environment(tmp_path / "many", SHARDS)
    physical = land(tmp_path / "one" / "landing")
    land(tmp_path / "many" / "landing")
    billing(one_env, "ingest")
    output = billing(many_env, "ingest")
    one, many = tables(tmp_path / "one", 1), tables(tmp_path / "many", SHARDS)
    # N = 1 routes nothing and writes no routing folder: today's path
    assert not (tmp_path / "one" / "routing").exists()
    # each file was routed (read and parsed) by exactly one of the shards' workers
    assert sum(routed_per_shard(output)) == 3, output
    assert many["events"] == one["events"]
    assert many["rejects"] == one["rejects"]
    # each file is logged by every shard, and the shards' counts sum to one warehouse's
    assert [(name, file_id, shards) for name, file_id, shards, *_ in many["counts"]] == \
        [(name, file_id, SHARDS) for name, file_id, *_ in one["counts"]]
    assert [row[3:] for row in many["counts"]] == [row[3:] for row in one["counts"]]
    by_name = {row[0]: row for row in one["counts"]}
    assert by_name["a.jsonl"][3] == physical["a.jsonl"] - 2      # two blank lines
    assert by_name["b.csv"][3] == physical["b.csv"]              # the parser reject included
    assert by_name["c.parquet"][3:7] == (61, 60, 1, 0)           # p0 sent twice
    # the rejects compared above hold every kind: the CSV parser's, conflicts, unknown customers
    assert {r[2] for r in one["rejects"]} >= {"malformed_line", "conflict", "unknown_customer"}
    assert any(r[3].startswith("CSV line") for r in many["rejects"])
    # every shard has logged every file: the parts are gone
    assert part_sets(tmp_path / "many" / "routing") == []
    # a second pass routes nothing again and ingests nothing
    again = billing(many_env, "ingest")
    assert sum(routed_per_shard(again)) == 0 and "no new files to ingest" in again


def test_a_file_routed_by_another_worker_is_ingested_by_every_shard(tmp_path):
    env = environment(tmp_path, SHARDS)
    physical = land(tmp_path / "landing")
    routing = tmp_path / "routing"
    # another worker (this process) routes the JSON Lines file before the shards' runs start
    [jsonl] = [with_identity(f) for f in landed_files(tmp_path / "landing")
               if f.path.endswith("a.jsonl")]
    routed = route_file(jsonl, SHARDS, routing)
    assert routed is not None and routed.routed_here
    # the parts hold each received line once, with its shard's customers only
    assert sum(routed.lines) == physical["a.jsonl"] - 2
    manifest = json.loads((part_set_folder(routing, jsonl.file_id, SHARDS)
                           / "manifest.json").read_text())
    assert manifest == {"path": jsonl.path, "file_id": jsonl.file_id, "format": "jsonl",
                        "shards": SHARDS, "lines": list(routed.lines), "parser_rejects": 0}
    for shard in range(SHARDS):
        part = pl.read_parquet(part_set_folder(routing, jsonl.file_id, SHARDS)
                               / f"shard-{shard}" / "*.parquet")
        assert part.columns == ["line_number", "raw"] and part.height == routed.lines[shard]
        customers = {json.loads(raw).get("customer_id") for raw in part["raw"]
                     if raw.startswith('{"event_id"')}
        assert all(shard_of(c, SHARDS) == shard for c in customers if isinstance(c, str))
    output = billing(env, "ingest")
    # the shards' runs routed only the two other files and read this one from its parts
    assert sum(routed_per_shard(output)) == 2, output
    counts = tables(tmp_path, SHARDS)["counts"]
    assert [(row[0], row[2]) for row in counts] == [(n, SHARDS) for n in physical]
    assert counts[0][3] == physical["a.jsonl"] - 2
    assert part_sets(routing) == []


def _route_in_worker(landing: str, routing: str, gate: str, number: int) -> None:
    """A worker process's routing pass over the landing zone; writes how many files it routed.
    Both workers start routing together: each says it is ready and waits (at most a minute)
    for the other, so their passes overlap."""
    Path(gate, f"ready-{number}").touch()
    deadline = time.monotonic() + 60
    while len(list(Path(gate).glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    files = landed_files(landing)
    done = route_landed_files(files, 0, SHARDS, LoggedFiles(set(), set()), root=Path(routing))
    assert not done.failed, done.failed
    Path(gate, f"routed-{number}").write_text(str(done.routed_here))


def test_two_workers_routing_the_same_files_make_one_complete_part_set_each(tmp_path):
    landing, routing, gate = tmp_path / "landing", tmp_path / "routing", tmp_path / "gate"
    landing.mkdir()
    gate.mkdir()
    physical = land(landing)
    for copy in range(3):      # more files, each big enough for the workers to overlap
        write_lines(landing / f"big{copy}.jsonl",
                    [event(f"b{copy}_{i}", customer=CUSTOMERS[i % 6]) for i in range(40_000)])
    context = multiprocessing.get_context("spawn")
    # two plain processes (no pool, no manager): one that dies fails the test, never hangs it
    workers = [context.Process(target=_route_in_worker,
                               args=(str(landing), str(routing), str(gate), number))
               for number in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=600)
        if worker.is_alive():
            worker.kill()
    assert [worker.exitcode for worker in workers] == [0, 0]
    routed = [int((gate / f"routed-{number}").read_text()) for number in range(2)]
    # every file routed by exactly one of the two
    assert sum(routed) == 6
    sets = part_sets(routing)
    assert len(sets) == 6 and all(s.name == f"of-{SHARDS}" for s in sets)
    assert not list(routing.glob("*/.of-*"))       # no temporary folder left
    lines = {}
    for folder in sets:
        manifest = json.loads((folder / "manifest.json").read_text())
        parts = [pl.read_parquet(folder / f"shard-{k}" / "*.parquet") for k in range(SHARDS)]
        assert [p.height for p in parts] == manifest["lines"]
        # a Parquet file's part keeps the file's own row numbers (from 0)
        numbers = sorted(n for p in parts for n in (
            p["line_number"] if "line_number" in p.columns else p["file_row_number"] + 1
        ).to_list())
        assert len(numbers) == len(set(numbers))      # no line in two parts
        lines[Path(manifest["path"]).name] = sum(manifest["lines"]) + manifest["parser_rejects"]
    assert lines["a.jsonl"] == physical["a.jsonl"] - 2
    assert lines["b.csv"] == physical["b.csv"]
    assert lines["big0.jsonl"] == 40_000


def test_a_half_written_part_set_is_ignored_and_redone(tmp_path):
    env = environment(tmp_path, SHARDS)
    physical = land(tmp_path / "landing")
    routing = tmp_path / "routing"
    [jsonl] = [with_identity(f) for f in landed_files(tmp_path / "landing")
               if f.path.endswith("a.jsonl")]
    # a worker killed while writing: its temporary folder holds one part of three, no manifest
    leftover = routing / jsonl.file_id / f".of-{SHARDS}.4242-dead.tmp"
    (leftover / "shard-0").mkdir(parents=True)
    pl.DataFrame({"line_number": [1], "raw": ["{}"]}).write_parquet(
        leftover / "shard-0" / "part_0.parquet")
    output = billing(env, "ingest")
    assert sum(routed_per_shard(output)) == 3, output
    counts = tables(tmp_path, SHARDS)["counts"]
    assert counts[0][0] == "a.jsonl" and counts[0][2:4] == (SHARDS, physical["a.jsonl"] - 2)
    assert not leftover.exists() and part_sets(routing) == []


def test_a_bucket_landing_is_routed_from_its_staged_copies(s3_landing, billing_env):
    from tests.integration.test_s3_landing import EXPECTED, FILES

    for name, body in FILES.items():
        s3_landing.land(name, body)
    env = {**os.environ, "BILLING_SHARDS": "2", "PYTHONPATH": str(Path.cwd())}
    env.pop("DAGSTER_HOME", None)
    output = billing(env, "ingest")
    # each object, copied locally by each shard's run, was routed from a copy once
    assert sum(routed_per_shard(output)) == len(FILES), output
    os.environ["BILLING_SHARDS"] = "2"
    try:
        with connect_finance_reader(str(billing_env["warehouse"])) as con:
            counts = con.execute("""
                SELECT regexp_extract(path, '[^/]+$'), count(*), sum(received), sum(accepted),
                       sum(duplicates), sum(rejected)
                FROM raw.ingestion_log GROUP BY ALL""").fetchall()
    finally:
        del os.environ["BILLING_SHARDS"]
    assert {name: (shards, *rest) for name, shards, *rest in counts} == \
        {name: (2, *expected) for name, expected in EXPECTED.items()}
    warehouse_folder = billing_env["warehouse"].parent
    assert part_sets(warehouse_folder / "routing") == []
    assert not any((warehouse_folder / "landing_staging").iterdir()), "staged copies kept"
