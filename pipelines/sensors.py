"""Sensors: react to what lands, without opening the warehouse."""


import hashlib
import json

import dagster as dg

from pipelines.ingestion.landing import landed_files
from pipelines.jobs import INGEST_JOB
from pipelines.resources import LandingZoneResource


@dg.sensor(job_name=INGEST_JOB, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Launches ingestion for files that are new or changed in the landing zone.")
def landing_zone_sensor(context: dg.SensorEvaluationContext,
                        landing: LandingZoneResource) -> dg.SensorResult:
    """The cursor remembers each file's size and mtime; content identity (sha256) is decided
    by the ingestion itself, so a file renamed or touched is launched but ingested only once."""
    seen: dict[str, list[int]] = json.loads(context.cursor) if context.cursor else {}
    current = {f.path: [f.size, f.mtime_ns] for f in landed_files(landing.location)}
    new = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
    if not new:
        return dg.SensorResult(skip_reason="no new files in the landing zone",
                               cursor=json.dumps(current, sort_keys=True))
    run_key = hashlib.sha256(
        json.dumps([[p, *current[p]] for p in new]).encode()).hexdigest()[:32]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=run_key,
            run_config={"ops": {"raw__events": {"config": {"files": new}}}},
            tags={"billing/files": str(len(new))},
        )],
        cursor=json.dumps(current, sort_keys=True),
    )
