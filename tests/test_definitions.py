"""The code location as Dagster loads it, against a committed snapshot of its wiring: asset
keys (group, upstream, partitioning), asset checks (blocking or not), jobs and the assets they
select, schedules (cron, timezone), sensors (the jobs they launch) and resource keys. A wiring
change shows in review as a diff of tests/snapshots/definitions.json.

After an intended change, regenerate the snapshot and commit it with the change:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_definitions.py   (or: make snapshots)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "definitions.json"


def wiring(defs: dg.Definitions) -> dict[str, Any]:
    """What the code location declares, as plain sorted data."""
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "upstream": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": type(partitions).__name__ if partitions else None,
        }
    checks = {f"{check.asset_key.to_user_string()}:{check.name}":
              {"blocking": graph.get_check_spec(check).blocking}
              for check in graph.asset_check_keys}
    jobs = {job.name: sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)
            for job in defs.resolve_all_job_defs()
            if not job.name.startswith("__")}   # Dagster's implicit all-assets job
    schedules = {schedule.name: {"cron": schedule.cron_schedule, "job": schedule.job_name,
                                 "timezone": schedule.execution_timezone,
                                 "default_status": schedule.default_status.value}
                 for schedule in repository.schedule_defs}
    sensors = {sensor.name: {"jobs": sorted(target.job_name for target in sensor.targets),
                             "minimum_interval_seconds": sensor.minimum_interval_seconds,
                             "default_status": sensor.default_status.value}
               for sensor in repository.sensor_defs}
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules,
            "sensors": sensors, "resources": sorted(defs.resources or {})}


def test_definitions_load_and_match_the_snapshot() -> None:
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    current = json.dumps(wiring(defs), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    assert json.loads(current) == json.loads(SNAPSHOT.read_text(encoding="utf-8")), (
        "the code location's wiring differs from tests/snapshots/definitions.json; if the "
        "change is intended, regenerate it with UPDATE_SNAPSHOTS=1 and commit the diff")
