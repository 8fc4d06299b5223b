"""`billing reshard`: the golden month's warehouse (tests/integration/test_shards.py) moved from
one file to 4 shards mid-month holds, shard by shard, the tables that ingesting with 4 shards
from the start gives, and the month then goes on (late events, supplementary invoices numbered
after the ones issued before the move) exactly as with 4 shards; the move refuses while a run
holds a writer, and an interrupted move leaves the source as it was and can be run again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines import resharding
from pipelines.sharding import warehouse_paths
from pipelines.warehouse import warehouse_lock
from tests.integration.test_shards import (
    CUSTOMERS,
    TABLES,
    billing,
    golden_setup,
    late,
)
from tests.support.landing import write_lines

PER_SHARD = {**TABLES,
             "raw.ingestion_log": "SELECT file_id, accepted, rejected, conflicts "
                                  "FROM raw.ingestion_log"}


def _first_half(env: dict[str, str]) -> None:
    billing(env, "ingest")
    billing(env, "run", "--month", "2026-02")


def _second_half(env: dict[str, str], root: Path) -> None:
    late_lines: list[object] = []
    for index, (customer, _) in enumerate(CUSTOMERS):
        late_lines += late(customer, index)
    write_lines(root / "landing" / "late.jsonl", late_lines)
    env["BILLING_NOW"] = "2026-02-05T00:00:00Z"
    billing(env, "ingest")
    billing(env, "run", "--month", "2026-02")
    env["BILLING_NOW"] = "2026-02-06T00:00:00Z"
    billing(env, "run", "--month", "2026-02")


def _shard_tables(root: Path, shards: int) -> list[dict[str, list[tuple]]]:
    tables = []
    for path in warehouse_paths(str(root / "warehouse.duckdb"), shards):
        with duckdb.connect(path, read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            tables.append({name: sorted(con.execute(query).fetchall(), key=repr)
                           for name, query in PER_SHARD.items()})
    return tables


def test_reshard_one_to_four_equals_four_shards_from_the_start(tmp_path):
    four_root, moved_root = tmp_path / "four", tmp_path / "moved"
    four = golden_setup(four_root, 4)
    _first_half(four)
    four_before = _shard_tables(four_root, 4)

    moved = golden_setup(moved_root, 1)
    _first_half(moved)
    source = moved_root / "warehouse.duckdb"
    source_bytes = source.read_bytes()
    # refused while a run holds the writer
    with warehouse_lock(str(source), exclusive=True):
        done = subprocess.run([sys.executable, "-m", "pipelines.cli", "reshard", "--to", "4"],
                              env=moved, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "a run holds the writer" in done.stderr
    assert not list(moved_root.glob("warehouse.shard-*"))

    out = billing(moved, "reshard", "--to", "4")
    assert "tables verified" in out and "BILLING_SHARDS=4" in out
    assert source.read_bytes() == source_bytes          # the source is kept as it was
    assert not list(moved_root.glob("*.resharding.duckdb"))
    assert _shard_tables(moved_root, 4) == four_before
    # moving again to the same files is refused; nothing is overwritten
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "reshard", "--to", "4"],
                          env=moved, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "exist already" in done.stderr

    moved["BILLING_SHARDS"] = "4"
    _second_half(four, four_root)
    _second_half(moved, moved_root)
    after = _shard_tables(moved_root, 4)
    assert after == _shard_tables(four_root, 4)
    numbers = sorted(row[1] for shard in after for row in shard["billing.invoices"] if row[1])
    assert numbers == [f"INV-202602-{n:05d}" for n in range(1, len(numbers) + 1)]
    assert len(numbers) > len(CUSTOMERS)

    # and back to one warehouse (another name, since the first file is kept): the same rows,
    # each file's counts whole again
    moved_back = tmp_path / "back"
    moved_back.mkdir()
    for path in warehouse_paths(str(moved_root / "warehouse.duckdb"), 4):
        shutil.copy(path, moved_back / Path(path).name)
    result = resharding.reshard(str(moved_back / "warehouse.duckdb"), 4, 1)
    with duckdb.connect(result.targets[0], read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        one = {name: sorted(con.execute(query).fetchall(), key=repr)
               for name, query in TABLES.items()}
        log = con.execute("SELECT received, accepted, duplicates, rejected FROM "
                          "raw.ingestion_log ORDER BY path").fetchall()
        sequence = con.execute("SELECT last_number FROM billing.invoice_number_sequences "
                               "WHERE billing_month = '2026-02'").fetchall()
    for name in TABLES:
        assert one[name] == sorted((row for shard in after for row in shard[name]), key=repr)
    january_lines = sum(1500 * (i + 1) + 40 * i for i in range(8)) + 4
    assert log[0] == (january_lines, january_lines - 4, 1, 3)
    assert sequence == [(len(numbers),)]


def test_an_interrupted_reshard_leaves_the_source_and_runs_again(tmp_path, monkeypatch):
    env = golden_setup(tmp_path, 1)
    billing(env, "ingest")
    source = tmp_path / "warehouse.duckdb"
    before = source.read_bytes()

    def interrupted(sources: list[str], targets: list[str]) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(resharding, "_verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resharding.reshard(str(source), 1, 2)
    assert source.read_bytes() == before
    assert not [p for p in tmp_path.glob("warehouse.shard-*-of-2.duckdb")]   # nothing switched
    monkeypatch.undo()
    result = resharding.reshard(str(source), 1, 2)
    assert sum(result.rows_per_shard) > 0
    assert all(Path(p).exists() for p in result.targets)
