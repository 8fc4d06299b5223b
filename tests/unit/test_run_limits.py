"""The shipped dagster.yaml limits the run queue to one run per customer shard (a shard's
warehouse file has one writer), validated with Dagster's own instance schema and applied by
Dagster's own queue counter; and every run launched for a shard carries the tag the limit
reads."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import yaml
from dagster._core.instance.config import dagster_instance_config_schema
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._utils.tags import TagConcurrencyLimitsCounter

from pipelines.sharding import SHARD_DIMENSION, SHARD_TAG
from tests.support.environment import REPO
from tests.unit.test_deploy import assert_valid


def shipped() -> dict:
    return yaml.safe_load((REPO / "dagster.yaml").read_text())


def test_the_shipped_instance_config_is_valid_and_limits_one_run_per_shard(tmp_path):
    config = shipped()
    assert_valid(dagster_instance_config_schema(), config)
    (tmp_path / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None      # the instance's run coordinator is the run queue
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    for key in (SHARD_TAG, f"dagster/partition/{SHARD_DIMENSION}", "dagster/partition"):
        assert limits[key] == {"key": key, "value": {"applyLimitPerUniqueValue": True},
                               "limit": 1}
    assert config["concurrency"]["pools"] == {"default_limit": 1}


def _run(tags: dict[str, str],
         status: DagsterRunStatus = DagsterRunStatus.NOT_STARTED) -> DagsterRun:
    return DagsterRun(job_name="billing_run", run_id=os.urandom(8).hex(), tags=tags,
                      status=status)


def test_the_queue_holds_a_second_run_of_a_shard_and_lets_other_shards_start():
    limits = shipped()["concurrency"]["runs"]["tag_concurrency_limits"]
    cases = [
        ({SHARD_TAG: "1"}, {SHARD_TAG: "1"}, True),
        ({SHARD_TAG: "1"}, {SHARD_TAG: "0"}, False),
        ({"dagster/partition/shard": "2", "dagster/partition/month": "2026-02-01",
          "dagster/partition": "2026-02-01|2"},
         {"dagster/partition/shard": "2", "dagster/partition/month": "2026-03-01",
          "dagster/partition": "2026-03-01|2"}, True),
        ({"dagster/partition": "3"}, {"dagster/partition": "3"}, True),
        ({"dagster/partition": "3"}, {"dagster/partition": "1"}, False),
    ]
    for running, queued, blocked in cases:
        counter = TagConcurrencyLimitsCounter(
            limits, [_run(running, DagsterRunStatus.STARTED)])
        assert counter.is_blocked(_run(queued)) is blocked, (running, queued)


TAGGED_RUNS = """
import datetime, json
import dagster as dg
from pipelines.definitions import defs
from pipelines.cli import launch
seen = []
launch.run_job = lambda job, config=None, *, partition_key=None, tags=None: seen.append(
    ("cli:" + job, dict(tags or {})))
launch._summary = lambda result: result
for job in ("ingest_events", "billing_run", "sync_run", "reconcile_run"):
    launch._run_one(job, None, 1, "2026-02" if job == "billing_run" else None, {})
tick = datetime.datetime(2026, 2, 3, 6, tzinfo=datetime.timezone.utc)
for schedule in defs.schedules:
    with dg.build_schedule_context(scheduled_execution_time=tick,
                                   repository_def=defs.get_repository_def()) as context:
        data = schedule.evaluate_tick(context)
    for request in data.run_requests or []:
        seen.append((schedule.name, dict(request.tags)))
print(json.dumps(seen))
"""


def test_every_shard_run_the_cli_and_schedules_launch_carries_its_shard_tag():
    import json

    env = {**os.environ, "BILLING_SHARDS": "3"}
    done = subprocess.run([sys.executable, "-c", TAGGED_RUNS], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    schedules = {name for name, _ in seen if not name.startswith("cli:")}
    assert schedules and len([1 for name, _ in seen if name.startswith("cli:")]) == 4
    for name in schedules:    # one run per shard, each tagged with its shard
        assert sorted(tags[SHARD_TAG] for n, tags in seen if n == name) == ["0", "1", "2"]
    assert all(tags[SHARD_TAG] == "1" for name, tags in seen if name.startswith("cli:"))
