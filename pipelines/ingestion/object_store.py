"""A landing zone on object storage (`BILLING_LANDING=s3://bucket/prefix`, contract section 12).

When workers run on several machines, usage files land in a bucket rather than a local folder.
The bucket is listed and each object read through fsspec/s3fs, by its exact key (a key such as
`a*.jsonl` is never expanded as a pattern). DuckDB does not read the bucket itself: each object
a run ingests is first copied into a local staging folder, hashed on the way (its sha256 is the
file's identity, as for a local file), before the run takes the warehouse's writer, so the
warehouse is never held while waiting on the network; DuckDB then reads the local copy. This
needs no DuckDB extension (httpfs would be downloaded from the internet at run time) and no
network but the configured endpoint.

Credentials come only from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
optionally `AWS_SESSION_TOKEN`) and are handed to s3fs, never logged nor put in an error: a
missing one is refused by name before anything is read. The endpoint is `BILLING_S3_ENDPOINT_URL`
(else `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`; none means AWS itself), the region
`AWS_REGION` or `AWS_DEFAULT_REGION`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import settings
from pipelines.ingestion.file_identity import FORMATS, LandedFile, LandingScan, file_format

if TYPE_CHECKING:
    import s3fs

CHUNK_BYTES = 8 * 1024 * 1024


class LandingLocationError(ValueError):
    """The landing zone's location or its credentials cannot be used (named, never a secret)."""


def _split(location: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at its ends) of an s3:// URL."""
    rest = location.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not bucket or "@" in bucket or ":" in bucket:
        # never echo the location: a URL with user info would carry a secret
        raise LandingLocationError("BILLING_LANDING: an s3 landing zone is s3://bucket/prefix, "
                                   "with credentials only in the environment")
    return bucket, prefix.strip("/")


def landing_root(location: str) -> str:
    """The landing zone as `bucket/prefix` (the form s3fs lists), without a trailing slash."""
    bucket, prefix = _split(location)
    return f"{bucket}/{prefix}" if prefix else bucket


def filesystem() -> s3fs.S3FileSystem:
    """A fresh S3 client configured from the environment only. Listings are not cached, so a
    sensor sees every new object on every tick; a missing credential is refused by name."""
    import s3fs

    missing = [name for name in settings.S3_REQUIRED_CREDENTIALS if not os.environ.get(name)]
    if missing:
        raise LandingLocationError(
            f"BILLING_LANDING is on S3 but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set in the environment")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return s3fs.S3FileSystem(
        key=os.environ["AWS_ACCESS_KEY_ID"], secret=os.environ["AWS_SECRET_ACCESS_KEY"],
        token=os.environ.get("AWS_SESSION_TOKEN") or None,
        endpoint_url=settings.s3_endpoint_url(),
        client_kwargs={"region_name": region} if region else {},
        skip_instance_cache=True, use_listings_cache=False)


def _key_refusal(root: str, name: str) -> str | None:
    """Why the object `name` (bucket/key) may not be read as a landed file under `root`."""
    if not name.startswith(root + "/"):
        return f"outside the landing zone s3://{root}"
    parts = name[len(root) + 1:].split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "a key with an empty, '.' or '..' part: not read"
    return None


def _landed(name: str, fmt: str, info: dict) -> LandedFile:
    modified = info.get("LastModified")
    mtime_ns = int(modified.timestamp() * 1_000_000_000) if modified is not None else 0
    version = str(info.get("ETag") or "").strip('"') or None
    return LandedFile(f"s3://{name}", fmt, int(info["size"]), mtime_ns, version=version)


def scan_objects(location: str) -> LandingScan:
    """Every event file under the landing prefix (all depths), in a stable order, and the event
    file keys refused with their reason (never read)."""
    root = landing_root(location)
    found: list[LandedFile] = []
    refused: dict[str, str] = {}
    for name, info in filesystem().find(root, detail=True).items():
        fmt = file_format(name)
        if fmt is None or info.get("type") != "file":
            continue
        reason = _key_refusal(root, name)
        if reason:
            refused[f"s3://{name}"] = reason
            continue
        found.append(_landed(name, fmt, info))
    return LandingScan(sorted(found, key=lambda f: f.path), dict(sorted(refused.items())))


def select_objects(location: str, files: list[str]) -> LandingScan:
    """The named objects (`s3://bucket/key`, as the sensor names them) that may be read; any
    other name is refused with its reason."""
    root = landing_root(location)
    fs = filesystem()
    selected: list[LandedFile] = []
    refused: dict[str, str] = {}
    for path in files:
        fmt = file_format(path)
        if fmt is None:
            refused[path] = "not an event file (.jsonl, .ndjson, .gz, .csv, .parquet)"
            continue
        name = path.split("://", 1)[1] if path.lower().startswith("s3://") else None
        reason = (_key_refusal(root, name) if name is not None
                  else f"outside the landing zone s3://{root}")
        if reason is None and name is not None:
            try:
                info = fs.info(name)
            except FileNotFoundError:
                reason = "no such object in the landing zone"
            else:
                if info.get("type") != "file":
                    reason = "not a regular file"
        if reason or name is None:
            refused[path] = reason or "not an object"
            continue
        selected.append(_landed(name, fmt, info))
    return LandingScan(selected, refused)


def _suffix(path: str) -> str:
    """The format suffix of `path` (`.jsonl.gz`, ...), kept on the copy so DuckDB decompresses
    it as it would the original."""
    lower = path.lower()
    return max((s for s in FORMATS if lower.endswith(s)), key=len, default="")


def stage_object(fs: s3fs.S3FileSystem, landed: LandedFile, folder: Path,
                 number: int) -> LandedFile:
    """Copy one object, by its exact key, to `folder` and hash it on the way: the landed file
    with its local copy and identity. Its size is what was read (the object may have been
    replaced since it was listed; the sensor sees that as a change)."""
    target = folder / f"{number:06d}{_suffix(landed.path)}"
    digest = hashlib.sha256()
    size = 0
    with fs.open(landed.path, "rb", block_size=CHUNK_BYTES) as source, open(target, "wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return replace(landed, size=size, local_copy=str(target), sha256=digest.hexdigest())


@contextmanager
def staged_objects(files: list[LandedFile]) -> Iterator[tuple[list[LandedFile], dict[str, str]]]:
    """Local copies of the landed objects (a staging folder under `BILLING_LANDING_STAGING`,
    removed afterwards) and the objects that could not be read (path -> error), which stay in
    the landing zone for the next run, as a local file DuckDB cannot read does."""
    root = Path(settings.landing_staging_path()).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    try:
        staged: list[LandedFile] = []
        failed: dict[str, str] = {}
        fs = filesystem() if files else None
        for number, landed in enumerate(files, start=1):
            assert fs is not None
            try:
                staged.append(stage_object(fs, landed, folder, number))
            except OSError as exc:
                failed[landed.path] = (f"{landed.path}: {type(exc).__name__}: "
                                       f"{exc}").splitlines()[0]
        yield staged, failed
    finally:
        shutil.rmtree(folder, ignore_errors=True)
