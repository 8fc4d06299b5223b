"""Sensors: react to what lands and to what integrations send, without opening the warehouse."""

import hashlib
import json

import dagster as dg

from pipelines.ingestion.landing import landed_files
from pipelines.jobs import INGEST_JOB, SYNC_JOB, ingest_run_config
from pipelines.resources import ApiStoreResource, LandingZoneResource
from pipelines.run_history import FAILED, run_status

MAX_ATTEMPTS = 3
"""Launches per set of files: a run that failed (warehouse busy, a bad file) is launched again
up to this many times; after that the failed runs stay visible in Dagster for someone to act."""


def _request(files: list[str], run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key,
                         run_config=ingest_run_config(files=files),
                         tags={"billing/files": str(len(files))})


@dg.sensor(job_name=INGEST_JOB, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches ingestion for files that are new or changed in the landing zone, "
                       "and launches again files whose ingestion run failed.")
def landing_zone_sensor(context: dg.SensorEvaluationContext,
                        landing: LandingZoneResource) -> dg.SensorResult:
    """The cursor remembers each file's stamp (size and mtime, an object's ETag too) and the
    runs launched and not yet succeeded. Content identity (sha256) is decided by the ingestion
    itself, so a file renamed or touched is launched but ingested only once."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, list[int | str]] = cursor.get("seen", {})
    launched: dict[str, dict] = cursor.get("launched", {})
    current = {f.path: f.stamp for f in landed_files(landing.location)}

    requests: list[dg.RunRequest] = []
    for run_key, launch in sorted(launched.items()):
        status = run_status(context.instance, run_key)
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


@dg.sensor(job_name=SYNC_JOB, minimum_interval_seconds=15,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches the sync job when the integration API has accepted calls not "
                       "yet applied to the warehouse (read from the API's store, never DuckDB).")
def api_inbox_sensor(context: dg.SensorEvaluationContext,
                     api_store: ApiStoreResource) -> dg.SensorResult | dg.SkipReason:
    """One run per first pending item: while a run applies the inbox the same key is not
    launched again; a run that failed is launched again up to MAX_ATTEMPTS times, after that the
    15-minute sync schedule keeps trying."""
    store = api_store.open()
    pending = store.pending_items(limit=1)
    if not pending:
        return dg.SkipReason("the integration API's inbox is empty")
    first = pending[0].item_id
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run_key = f"inbox-{first}-{attempt}"
        status = run_status(context.instance, run_key)
        if status is None:
            return dg.SensorResult(run_requests=[dg.RunRequest(
                run_key=run_key, tags={"billing/inbox_first_item": str(first)})])
        if status not in FAILED:
            return dg.SkipReason(f"run {run_key} is applying the inbox from item {first}")
    return dg.SkipReason(f"{MAX_ATTEMPTS} runs from inbox item {first} failed; see them in Dagster")
