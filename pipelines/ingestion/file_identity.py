"""What a landed event file is, wherever the landing zone is (a folder or a bucket): its format
by name, its identity (sha256 of its bytes), and what a look at the landing zone found. Shared by
the local landing zone (`landing`) and object storage (`object_store`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

FORMATS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
}
# Files still being written by a producer that follows the write-then-rename convention.
IN_PROGRESS_MARKERS = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing zone, identified by the hash of its bytes. On object storage,
    `path` is the object's `s3://` URL, `version` its ETag, and once staged `local_copy` is
    the local file DuckDB reads and `sha256` its identity, computed while copying."""

    path: str
    format: str
    size: int
    mtime_ns: int
    version: str | None = None
    local_copy: str | None = None
    sha256: str | None = None

    @property
    def readable_path(self) -> str:
        """The local file DuckDB reads: the file itself, or an object's staged copy."""
        return self.local_copy or self.path

    @property
    def file_id(self) -> str:
        return self.sha256 or file_sha256(self.readable_path)

    @property
    def stamp(self) -> list[int | str]:
        """What tells the landing sensor a file changed: size and mtime, and an object's ETag
        (object storage keeps times to the second only)."""
        return [self.size, self.mtime_ns, *([self.version] if self.version else [])]


def file_format(path: str | Path) -> str | None:
    """The ingestion format of a file by its name, or None when it is not an event file."""
    name = Path(path).name.lower()
    if name.startswith(".") or name.endswith(IN_PROGRESS_MARKERS):
        return None
    for suffix, fmt in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
        if name.endswith(suffix):
            return fmt
    return None


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes: the same file landed twice, under any name, is one file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class LandingScan:
    """What a look at the landing zone found: the event files to ingest, and the paths refused
    (path -> reason), which are never read."""

    files: list[LandedFile]
    refused: dict[str, str] = field(default_factory=dict)
