"""Customer shards: the stable hash (the same in Python and DuckDB), the shard files' names, and
routing a landed file by shard with its accounting exact across shards."""

from __future__ import annotations

import duckdb

from pipelines.ingestion import ingest_landed_files, landed_files, prepare_session
from pipelines.ingestion.routing import route_file
from pipelines.sharding import shard_of, shard_of_sql, shard_warehouse_path
from pipelines.warehouse import connect_writer
from tests.support.environment import NOW
from tests.support.landing import event, write_lines


def test_shard_is_sha256_prefix_mod_n_in_python_and_duckdb():
    ids = [f"customer_{i}" for i in range(200)] + ["ünïcode_ø", "acme_corp_001"]
    # the rule, stated: first 8 bytes of sha256(utf-8) as big-endian unsigned, mod N
    assert shard_of("acme_corp_001", 4) == 3
    for shards in (1, 2, 4, 7):
        in_sql = duckdb.sql(f"SELECT c, {shard_of_sql('c', shards)} FROM unnest($ids) t(c)",
                            params={"ids": ids}).fetchall()
        assert {c: s for c, s in in_sql} == {c: shard_of(c, shards) for c in ids}
    counts = [sum(shard_of(f"customer_{i}", 4) == k for i in range(200)) for k in range(4)]
    assert min(counts) > 30    # spread, not piled on one shard
    assert duckdb.sql(f"SELECT {shard_of_sql('NULL::VARCHAR', 4)}").fetchall() == [(0,)]


def test_shard_files_sit_beside_the_configured_warehouse():
    assert shard_warehouse_path("/d/warehouse.duckdb", 2, 4) == "/d/warehouse.shard-2-of-4.duckdb"
    assert shard_warehouse_path("/d/warehouse.duckdb", 0, 1) == "/d/warehouse.duckdb"


def test_routing_keeps_every_line_once_with_its_number(billing_env):
    customers = ["acme_corp_001", "initech_003", "hooli_005", "globex_002"]
    lines: list[object] = [event(f"e{i}", customer=customers[i % 4]) for i in range(40)]
    lines += ["{broken", "", event("e0", customer="acme_corp_001"),   # duplicate in the file
              {"event_id": "x", "event_name": "api.request", "timestamp": "2026-01-01T00:00:00Z"},
              event("u1", customer="nobody_999")]
    write_lines(billing_env["landing"] / "mixed.jsonl", lines)
    [landed] = landed_files(billing_env["landing"])

    routed = route_file(landed, 4, billing_env["warehouse"].parent / "routing")
    assert routed is not None and routed.routed_here
    # every received line in exactly one part (the blank line in none)
    assert sum(routed.lines) == len(lines) - 1

    def ingest(path: str, shard: int | None):
        parts = None if shard is None else {landed.path: routed.part(shard)}
        with connect_writer(path) as con:
            prepare_session(con, customers, NOW)
            [counts] = ingest_landed_files(con, [landed], now=NOW, run_id="t",
                                           parts=parts).ingested
            events = con.execute("SELECT event_id, customer_id, line_number, file_id "
                                 "FROM raw.events").fetchall()
            rejects = con.execute("SELECT line_number, reason FROM raw.rejected_events").fetchall()
        return counts, events, rejects

    one = ingest(str(billing_env["warehouse"]), None)
    parts = [ingest(shard_warehouse_path(str(billing_env["warehouse"]), k, 4), k)
             for k in range(4)]
    for field in ("received", "accepted", "duplicates", "rejected"):
        assert sum(getattr(p[0], field) for p in parts) == getattr(one[0], field), field
    assert sorted(e for p in parts for e in p[1]) == sorted(one[1])
    assert sorted(r for p in parts for r in p[2]) == sorted(one[2])
    for k, (_, events, _) in enumerate(parts):
        assert all(shard_of(customer, 4) == k for _, customer, _, _ in events)
    # lines without a customer (the broken one, the one lacking customer_id) are shard 0's
    assert {r[0] for r in parts[0][2]} >= {41, 44}
