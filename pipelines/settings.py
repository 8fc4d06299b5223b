"""Settings users give through the environment (contract section 8).

Every path has a default inside the working folder so a fresh checkout runs as is; `BILLING_NOW`
pins "now" so that runs and tests are reproducible.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LANDING = "data/landing"
DEFAULT_CATALOG = "catalog"


def warehouse_path() -> str:
    """The DuckDB file holding every warehouse table."""
    return os.environ.get("BILLING_WAREHOUSE") or DEFAULT_WAREHOUSE


def shard_count() -> int:
    """How many customer shards the warehouse is split into (`BILLING_SHARDS`, default 1: one
    file, today's wiring). Read when the code location loads: partitions depend on it."""
    text = os.environ.get("BILLING_SHARDS") or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"BILLING_SHARDS={text!r} is not a positive whole number")
    return int(text)


def landing_path() -> str:
    """The folder where usage event files land."""
    return os.environ.get("BILLING_LANDING") or DEFAULT_LANDING


def is_object_store(location: str | os.PathLike[str]) -> bool:
    """Whether a landing location names object storage (`s3://bucket/prefix`) rather than a
    local folder; any other `scheme://` is refused by name (a ValueError)."""
    text = str(location)
    if "://" not in text:
        return False
    scheme = text.split("://", 1)[0].lower()
    if scheme != "s3":
        raise ValueError(f"BILLING_LANDING: {scheme}:// is not supported; the landing zone is "
                         f"a local folder or s3://bucket/prefix")
    return True


S3_REQUIRED_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""What an s3:// landing zone needs in the environment (with `AWS_SESSION_TOKEN` for temporary
credentials, `AWS_REGION` or `AWS_DEFAULT_REGION`); read when used, never logged."""


def s3_endpoint_url() -> str | None:
    """The S3-compatible server of an s3:// landing zone (`BILLING_S3_ENDPOINT_URL`, else the
    AWS SDK's `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`); None means AWS itself."""
    for name in ("BILLING_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def landing_staging_path() -> str:
    """Where a run copies the objects of an s3:// landing zone before DuckDB reads them
    (`BILLING_LANDING_STAGING`; default a `landing_staging` folder beside the warehouse); each
    run's copies are removed when it is done."""
    explicit = os.environ.get("BILLING_LANDING_STAGING")
    if explicit:
        return explicit
    return str(Path(warehouse_path()).expanduser().parent / "landing_staging")


def routing_path() -> str:
    """Where landed files are split by customer shard before each shard ingests its part
    (`BILLING_ROUTING`; default a `routing` folder beside the warehouse). With N > 1 shards every
    worker that ingests must see the same folder (on a cluster: a shared volume)."""
    explicit = os.environ.get("BILLING_ROUTING")
    if explicit:
        return explicit
    return str(Path(warehouse_path()).expanduser().parent / "routing")


def catalog_path() -> str:
    """The folder (or single YAML file) holding meters, plans, customers and subscriptions."""
    return os.environ.get("BILLING_CATALOG") or DEFAULT_CATALOG


def catalog_cache_path() -> str:
    """Where parsed catalog files are kept by content (`BILLING_CATALOG_CACHE`; default a
    `catalog_cache` folder beside the warehouse): loading an unchanged large catalog then skips
    the YAML parsing."""
    explicit = os.environ.get("BILLING_CATALOG_CACHE")
    if explicit:
        return explicit
    return str(Path(warehouse_path()).expanduser().parent / "catalog_cache")


def api_store_path() -> str:
    """The integration API's embedded store (tokens, inbox, published invoices): a SQLite file
    beside the warehouse unless `BILLING_API_STORE` names another."""
    explicit = os.environ.get("BILLING_API_STORE")
    if explicit:
        return explicit
    return str(Path(warehouse_path()).expanduser().parent / "api_store.sqlite")


def api_retention_days() -> float:
    """How many days the integration API's store keeps decided inbox items and the answers
    replays get (`BILLING_API_RETENTION_DAYS`, default 30): older ones are pruned after each
    inbox pass."""
    return positive_number("BILLING_API_RETENTION_DAYS", 30)


def positive_number(name: str, default: float) -> float:
    """The positive number in the environment variable `name`, else `default`; a ValueError
    names the variable when it holds anything else."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name}={text!r} is not a positive number")
    return value


def api_url() -> str:
    """Where integrations reach the integration API (`BILLING_API_URL`)."""
    return os.environ.get("BILLING_API_URL") or "http://127.0.0.1:8780"


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant with an explicit UTC offset, as an aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"instant {text!r} has no UTC offset")
    return value.astimezone(UTC)


def now() -> datetime:
    """The run's "now": `BILLING_NOW` when set, else the wall clock (always UTC)."""
    pinned = os.environ.get("BILLING_NOW")
    if pinned:
        try:
            return parse_instant(pinned)
        except ValueError as exc:
            raise ValueError(
                f"BILLING_NOW={pinned!r} is not an ISO-8601 instant with offset") from exc
    return datetime.now(UTC)


def ensure_parent(path: str) -> None:
    """Create the folder a local file will be written into."""
    Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
