"""A landing zone on object storage (`BILLING_LANDING=s3://bucket/prefix`, contract section 12),
against moto's S3 server on 127.0.0.1: the real ingestion job lists the bucket, reads each
object by its exact key, refuses what a local landing zone refuses, and leaves exactly the
tables the same files landed locally leave; the landing sensor sees new and replaced objects;
credentials come from the environment and are never logged; the events API refuses to land in
a bucket."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import dagster as dg
import httpx

from pipelines.api.store import ApiStore
from pipelines.jobs import INGEST_JOB, ingest_run_config
from tests.support.api import error, start_api, stop_api
from tests.support.dagster_runs import materialized_metadata, run_job, step_failures, succeeded
from tests.support.landing import event
from tests.support.object_store import SECRET, S3Landing, s3_landing, s3_server
from tests.support.warehouse import query

__all__ = ["s3_landing", "s3_server"]   # fixtures


def lines(*docs: object) -> str:
    return "".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs)


# name in the landing zone -> bytes; a bad line, a duplicate, an unknown customer, names that
# look like globs (`a*.jsonl` must not read `a1.jsonl`), a gzip file, a sub-folder
FILES: dict[str, bytes] = {
    "a.jsonl": lines(event("e1"), event("e1"), "garbage", event("e2", customer="nobody")).encode(),
    "a1.jsonl": lines(event("one"), event("two")).encode(),
    "a*.jsonl": lines(event("star")).encode(),
    "b[1].jsonl": lines(event("bracket")).encode(),
    "day/2026-01-21.jsonl.gz": gzip.compress(lines(event("zipped"), event("e1")).encode(),
                                             mtime=0),
}
# per file: received, accepted, duplicates, rejected (as the local tests count them)
EXPECTED = {"a.jsonl": (4, 1, 1, 2), "a1.jsonl": (2, 2, 0, 0), "a*.jsonl": (1, 1, 0, 0),
            "b[1].jsonl": (1, 1, 0, 0), "2026-01-21.jsonl.gz": (2, 1, 1, 0)}


def ingestion_log(warehouse: Path) -> dict[str, tuple]:
    rows = query(warehouse, "SELECT path, file_id, bytes, received, accepted, duplicates, "
                            "rejected FROM raw.ingestion_log")
    return {path: tuple(rest) for path, *rest in rows}


def counts_by_name(warehouse: Path) -> dict[str, tuple]:
    """received, accepted, duplicates, rejected per file name (a local path or an s3 URL)."""
    return {path.rsplit("/", 1)[1]: rest[2:] for path, rest in ingestion_log(warehouse).items()}


TABLES = {
    "raw.events": "SELECT * FROM raw.events ORDER BY file_id, line_number",
    "raw.rejected_events": "SELECT * FROM raw.rejected_events ORDER BY file_id, line_number",
    "raw.ingestion_log": "SELECT * EXCLUDE (path, run_id, mtime_ns) FROM raw.ingestion_log "
                         "ORDER BY file_id",
}


def test_the_ingest_job_reads_a_bucket_as_it_reads_a_folder(
        s3_landing: S3Landing, billing_env: dict[str, Path], monkeypatch):
    # the same files landed in a local folder, ingested by the same job: the reference
    local = billing_env["landing"]
    for name, body in FILES.items():
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(body)
    folder_warehouse = billing_env["warehouse"].with_name("from_folder.duckdb")
    monkeypatch.setenv("BILLING_LANDING", str(local))
    monkeypatch.setenv("BILLING_WAREHOUSE", str(folder_warehouse))
    succeeded(run_job(INGEST_JOB))

    for name, body in FILES.items():
        s3_landing.land(name, body)
    s3_landing.land("c.jsonl.part", lines(event("still-writing")))   # being written: ignored
    s3_landing.put("elsewhere/outside.jsonl", lines(event("outside")))  # not under the prefix
    s3_landing.land("../escape.jsonl", lines(event("escape")))       # a key with '..'
    monkeypatch.setenv("BILLING_LANDING", s3_landing.url)
    monkeypatch.setenv("BILLING_WAREHOUSE", str(billing_env["warehouse"]))
    result = succeeded(run_job(INGEST_JOB))

    warehouse = billing_env["warehouse"]
    assert counts_by_name(warehouse) == EXPECTED == counts_by_name(folder_warehouse)
    logged = ingestion_log(warehouse)
    for name, body in FILES.items():
        file_id, size = logged[f"{s3_landing.url}/{name}"][:2]
        assert (file_id, size) == (hashlib.sha256(body).hexdigest(), len(body))
    for table, text in TABLES.items():
        assert query(warehouse, text) == query(folder_warehouse, text), table
    assert query(warehouse, "SELECT reason, count(*) FROM raw.rejected_events "
                            "GROUP BY reason ORDER BY reason") == [
        ("malformed_line", 1), ("unknown_customer", 1)]
    raw = materialized_metadata(result)["raw/events"]
    assert raw["refused_files"] == {
        f"{s3_landing.url}/../escape.jsonl": "a key with an empty, '.' or '..' part: not read"}
    assert not any((warehouse.parent / "landing_staging").iterdir()), "staged copies kept"

    # landing the same objects again, or a copy under another key, changes nothing
    s3_landing.land("copy-of-a.jsonl", FILES["a.jsonl"])
    again = materialized_metadata(succeeded(run_job(INGEST_JOB)))["raw/events"]
    assert (again["files_ingested"], again["files_skipped"]) == (0, 6)
    for table, text in TABLES.items():
        assert query(warehouse, text) == query(folder_warehouse, text), table


def test_named_objects_outside_the_zone_or_missing_are_refused_not_read(
        s3_landing: S3Landing, billing_env: dict[str, Path]):
    good = s3_landing.land("good.jsonl", lines(event("good")))
    outside = s3_landing.put("elsewhere/outside.jsonl", lines(event("outside")))
    escape = s3_landing.land("../escape.jsonl", lines(event("escape")))
    local = billing_env["landing"] / "local.jsonl"
    local.write_text(lines(event("local")))
    missing = f"{s3_landing.url}/missing.jsonl"
    named = [good, outside, escape, str(local), missing, f"{s3_landing.url}/notes.txt"]

    from pipelines.definitions import defs

    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(
            instance=instance, run_config=ingest_run_config(files=named))
    raw = materialized_metadata(result)["raw/events"]
    assert raw["refused_files"] == {
        outside: f"outside the landing zone {s3_landing.url}",
        escape: "a key with an empty, '.' or '..' part: not read",
        str(local): f"outside the landing zone {s3_landing.url}",
        missing: "no such object in the landing zone",
        f"{s3_landing.url}/notes.txt": "not an event file (.jsonl, .ndjson, .gz, .csv, .parquet)",
    }
    assert query(billing_env["warehouse"], "SELECT event_id FROM raw.events") == [("good",)]


def test_the_landing_sensor_sees_new_and_replaced_objects(s3_landing: S3Landing):
    from pipelines.resources import LandingZoneResource
    from pipelines.sensors import landing_zone_sensor

    resources = {"landing": LandingZoneResource(path=s3_landing.url)}

    def tick(instance, cursor):
        return landing_zone_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                           resources=resources))

    def files(state) -> list[list[str]]:
        return [r.run_config["ops"]["raw__events"]["config"]["files"]
                for r in state.run_requests]

    with dg.instance_for_test() as instance:
        empty = tick(instance, None)
        assert not empty.run_requests
        first_url = s3_landing.land("a*.jsonl", lines(event("e1")))
        s3_landing.land("b.jsonl.part", lines(event("e2")))
        first = tick(instance, empty.cursor)
        assert files(first) == [[first_url]]
        assert not tick(instance, first.cursor).run_requests
        # replaced within the same second by as many bytes: only its ETag tells
        s3_landing.land("a*.jsonl", lines(event("e9")))
        replaced = tick(instance, first.cursor)
        assert files(replaced) == [[first_url]]
        assert replaced.run_requests[0].run_key != first.run_requests[0].run_key


def test_credentials_come_from_the_environment_and_are_never_logged(
        s3_landing: S3Landing, billing_env: dict[str, Path], monkeypatch):
    from pipelines.definitions import defs

    s3_landing.land("a.jsonl", lines(event("e1"), "garbage"))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(INGEST_JOB).execute_in_process(instance=instance)
        logged = " ".join(f"{entry.user_message} {entry.dagster_event!r}"
                          for entry in instance.all_logs(result.run_id))
    assert f"{s3_landing.url}/a.jsonl: received 2" in logged
    assert SECRET not in logged

    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3_landing.land("b.jsonl", lines(event("e2")))
    failed = run_job(INGEST_JOB)
    assert not failed.success
    [failure] = step_failures(failed)
    assert "BILLING_LANDING is on S3 but AWS_SECRET_ACCESS_KEY is not set" in failure

    # b.jsonl stays in the bucket for the next run
    assert query(billing_env["warehouse"], "SELECT event_id FROM raw.events") == [("e1",)]


def test_the_events_api_refuses_to_land_in_a_bucket(s3_landing: S3Landing, tmp_path: Path):
    store = ApiStore(str(tmp_path / "api_store.sqlite"))
    token = store.create_token("gateway", ["events:write"])
    server = start_api(tmp_path / "api_store.sqlite", tmp_path / "api.log",
                       settings={"BILLING_LANDING": s3_landing.url})
    try:
        answer = httpx.post(f"{server.url}/api/v1/events", content=json.dumps(event("e1")),
                            headers={"Content-Type": "application/json",
                                     "Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 501
        assert error(answer)["code"] == "landing_not_local"
        assert httpx.get(f"{server.url}/api/v1/health", timeout=5).status_code == 200
    finally:
        stop_api(server)
    assert "events over HTTP land only in a local landing zone" in server.output()
