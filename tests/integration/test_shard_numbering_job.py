"""With customer shards, documents issued by a shard's run outside `billing run` (a provider's
invoice after a sync, a reconciliation's correction) are numbered by the numbering job that a
run-status sensor launches after any shard's successful run: here two shards' billing runs
issue the month's invoices without numbers (as a sync run issues a provider's), the sensor asks
for the numbering job after one of them, and the job numbers every shard's documents gap-free in
the order of issue; run again, or asked again for the same run, it changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg

from tests.integration.test_shards import billing, golden_setup
from tests.support.environment import REPO

SCRIPT = """
import json
import dagster as dg
from pipelines.definitions import defs
from pipelines.cli.launch import run_every_shard, run_job
from pipelines.jobs import BILLING_JOB, NUMBERING_JOB
from pipelines.run_context import now_tags
from pipelines.sharding import connect_finance_reader
from pipelines import settings

def numbers():
    with connect_finance_reader() as con:
        return con.execute('''SELECT invoice_number FROM billing.invoices
            WHERE issued_at IS NOT NULL ORDER BY issued_at, boundary, customer_id, invoice_id
            ''').fetchall()

runs = run_every_shard(BILLING_JOB, month="2026-02", tags=now_tags(settings.now()))
before = numbers()
sensor = defs.get_sensor_def("numbering_after_shard_runs")
requests = []
with dg.DagsterInstance.get() as instance:
    for shard_run in runs:
        run = instance.get_run_by_id(shard_run.run_id)
        success = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0]
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success.dagster_event,
            dagster_instance=instance, dagster_run=run,
            repository_def=defs.get_repository_def())
        request = sensor(context)
        requests.append((request.run_key, request.job_name or sensor.job_name))
first = run_job(NUMBERING_JOB)
after = numbers()
again = run_job(NUMBERING_JOB)
print(json.dumps({"before": before, "after": after, "requests": requests,
                  "first": [e.event_specific_data.metadata["invoices_numbered"].value
                            for e in first.all_events if e.event_type_value == "STEP_OUTPUT"],
                  "again": [e.event_specific_data.metadata["invoices_numbered"].value
                            for e in again.all_events if e.event_type_value == "STEP_OUTPUT"],
                  "again_after": numbers()}, default=str))
"""


def test_the_numbering_job_after_any_shard_run_numbers_gap_free_and_once(tmp_path):
    env = golden_setup(tmp_path, 2)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)):
        pass     # storage created once, before the shards' worker processes open it
    billing(env, "ingest")
    env["DAGSTER_HOME"] = str(home)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] and all(number is None for (number,) in seen["before"])
    numbers = [number for (number,) in seen["after"]]
    assert numbers == [f"INV-202602-{n:05d}" for n in range(1, len(numbers) + 1)]
    assert len(numbers) == 8                   # the eight customers of both shards
    # one request per shard run, each keyed by its run (a sensor tick asked twice for the same
    # run is one run), for the numbering job
    keys = [key for key, _ in seen["requests"]]
    assert len(set(keys)) == 2 and all(key.startswith("numbering-after-") for key in keys)
    assert {job for _, job in seen["requests"]} == {"number_documents"}
    assert seen["first"] == [8] and seen["again"] == [0]
    assert seen["again_after"] == seen["after"]
    assert os.path.exists(tmp_path / "warehouse.numbers.duckdb")
