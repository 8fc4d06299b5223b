"""Sensors: react to what lands, without opening the warehouse."""

import hashlib
import json

import dagster as dg

from pipelines.ingestion.landing import landed_files
from pipelines.jobs import INGEST_JOB
from pipelines.resources import LandingZoneResource

MAX_ATTEMPTS = 3
"""Launches per set of files: a run that failed (warehouse busy, a bad file) is launched again
up to this many times; after that the failed runs stay visible in Dagster for someone to act."""

FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def _request(files: list[str], run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key,
                         run_config={"ops": {"raw__events": {"config": {"files": files}}}},
                         tags={"billing/files": str(len(files))})


def _run_status(instance: dg.DagsterInstance, run_key: str) -> dg.DagsterRunStatus | None:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1)
    return runs[0].status if runs else None


@dg.sensor(job_name=INGEST_JOB, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches ingestion for files that are new or changed in the landing zone, "
                       "and launches again files whose ingestion run failed.")
def landing_zone_sensor(context: dg.SensorEvaluationContext,
                        landing: LandingZoneResource) -> dg.SensorResult:
    """The cursor remembers each file's size and mtime, and the runs launched and not yet
    succeeded. Content identity (sha256) is decided by the ingestion itself, so a file renamed or
    touched is launched but ingested only once."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, list[int]] = cursor.get("seen", {})
    launched: dict[str, dict] = cursor.get("launched", {})
    current = {f.path: [f.size, f.mtime_ns] for f in landed_files(landing.location)}

    requests: list[dg.RunRequest] = []
    for run_key, launch in sorted(launched.items()):
        status = _run_status(context.instance, run_key)
        if status == dg.DagsterRunStatus.SUCCESS:
            del launched[run_key]
        elif status in FAILED:
            del launched[run_key]
            files = [path for path in launch["files"] if path in current]
            if files and launch["attempt"] < MAX_ATTEMPTS:
                retry_key = f"{launch['base']}-attempt{launch['attempt'] + 1}"
                requests.append(_request(files, retry_key))
                launched[retry_key] = {"base": launch["base"], "files": files,
                                       "attempt": launch["attempt"] + 1}

    new = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
    if new:
        base = hashlib.sha256(
            json.dumps([[p, *current[p]] for p in new]).encode()).hexdigest()[:32]
        requests.append(_request(new, base))
        launched[base] = {"base": base, "files": new, "attempt": 1}

    next_cursor = json.dumps({"seen": current, "launched": launched}, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason="no new files in the landing zone",
                               cursor=next_cursor)
    return dg.SensorResult(run_requests=requests, cursor=next_cursor)
