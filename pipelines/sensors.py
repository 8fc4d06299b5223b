"""Sensors: react to what lands and to what integrations send, without opening the warehouse.

With customer shards (BILLING_SHARDS = N > 1) each launch is one run per shard: its shard
partition and its `billing/shard` tag, and a run key of its own (`...-shard-K`), so a shard's
failed run is launched again alone. One warehouse launches one run, as before shards.
"""

import hashlib
import json

import dagster as dg

from pipelines import settings
from pipelines.api.store import ApiStore
from pipelines.api.store.inbox import PENDING_PAGE
from pipelines.custom_invoicing.inbox import item_shards
from pipelines.ingestion.landing import landed_files
from pipelines.jobs import INGEST_JOB, SYNC_JOB, ingest_run_config
from pipelines.resources import ApiStoreResource, LandingZoneResource
from pipelines.run_context import run_shards, shard_tags
from pipelines.run_history import FAILED, run_status

MAX_ATTEMPTS = 3
"""Launches per set of files: a run that failed (warehouse busy, a bad file) is launched again
up to this many times; after that the failed runs stay visible in Dagster for someone to act."""


def shard_run_key(base: str, shard: int | None) -> str:
    """The run key of one shard's run (the base key itself with one warehouse)."""
    return base if shard is None else f"{base}-shard-{shard}"


def shard_request(run_key: str, shard: int | None, *, tags: dict[str, str] | None = None,
                  run_config: dict | None = None) -> dg.RunRequest:
    """A run request for one shard (its partition and tag), or for the one warehouse."""
    return dg.RunRequest(run_key=shard_run_key(run_key, shard),
                         partition_key=None if shard is None else str(shard),
                         run_config=run_config or {},
                         tags={**(tags or {}), **shard_tags(shard)})


def _request(files: list[str], run_key: str, shard: int | None) -> dg.RunRequest:
    return shard_request(run_key, shard, run_config=ingest_run_config(files=files),
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
                shard = launch.get("shard")
                retry_key = f"{launch['base']}-attempt{launch['attempt'] + 1}"
                requests.append(_request(files, retry_key, shard))
                launched[shard_run_key(retry_key, shard)] = {
                    "base": launch["base"], "files": files, "attempt": launch["attempt"] + 1,
                    "shard": shard}

    new = sorted(path for path, stamp in current.items() if seen.get(path) != stamp)
    if new:
        base = hashlib.sha256(
            json.dumps([[p, *current[p]] for p in new]).encode()).hexdigest()[:32]
        for shard in run_shards():
            requests.append(_request(new, base, shard))
            launched[shard_run_key(base, shard)] = {"base": base, "files": new, "attempt": 1,
                                                    "shard": shard}

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
    15-minute sync schedule keeps trying. With customer shards, the same per shard for the
    items routed to it or whose share it has not taken (`item_shards`)."""
    store = api_store.open()
    shards = settings.shard_count()
    if shards > 1:
        return _inbox_runs_by_shard(context, store, shards)
    pending = store.pending_items(limit=1)
    if not pending:
        return dg.SkipReason("the integration API's inbox is empty")
    decision = _inbox_request(context, pending[0].item_id, None)
    return (dg.SensorResult(run_requests=[decision]) if isinstance(decision, dg.RunRequest)
            else dg.SkipReason(decision))


def _inbox_request(context: dg.SensorEvaluationContext, first: int,
                   shard: int | None) -> dg.RunRequest | str:
    """The run applying the inbox from item `first` (on `shard`), or why none is launched: one
    is running, or MAX_ATTEMPTS failed."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run_key = shard_run_key(f"inbox-{first}-{attempt}", shard)
        status = run_status(context.instance, run_key)
        if status is None:
            return shard_request(f"inbox-{first}-{attempt}", shard,
                                 tags={"billing/inbox_first_item": str(first)})
        if status not in FAILED:
            return f"run {run_key} is applying the inbox from item {first}"
    return f"{MAX_ATTEMPTS} runs from inbox item {first} failed; see them in Dagster"


def _inbox_runs_by_shard(context: dg.SensorEvaluationContext, store: ApiStore,
                         shards: int) -> dg.SensorResult | dg.SkipReason:
    """With customer shards: a run for each shard that has items waiting (the first page of
    pending items, routed by their document; a statement or Stripe event to every shard that
    has not taken its share), keyed by that shard's first item."""
    first_by_shard: dict[int, int] = {}
    for item in store.pending_items(limit=PENDING_PAGE):
        for shard in item_shards(store, item, shards):
            first_by_shard.setdefault(shard, item.item_id)
    if not first_by_shard:
        return dg.SkipReason("no item of the integration API's inbox is routed to a shard")
    decisions = [_inbox_request(context, first, shard)
                 for shard, first in sorted(first_by_shard.items())]
    requests = [d for d in decisions if isinstance(d, dg.RunRequest)]
    if not requests:
        return dg.SkipReason("; ".join(str(d) for d in decisions))
    return dg.SensorResult(run_requests=requests)
