"""The landing zone: which files are there, what format each is, and its content identity.

Only regular files inside the landing folder are ever read: a symbolic link (to a file or a
folder) or a path resolving outside the folder is refused with its reason, so a link planted in
the landing zone cannot make ingestion copy another file's lines into the warehouse. The
integration API lands the events it receives as segment files (`pipelines.api.event_segments`),
read once sealed; looking at the landing zone seals those whose API died.

The landing zone may also be a bucket (`s3://bucket/prefix`): `pipelines.ingestion.object_store`
lists it and copies each object a run reads to a local staging folder first (`readable_copies`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.api.event_segments import seal_orphaned_segments, segment_folder
from pipelines.settings import is_object_store

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


def refusal(root: str | Path, path: str | Path) -> str | None:
    """Why `path` may not be read as a landed file of `root`, or None when it may: a symbolic
    link, a path resolving outside the landing folder, or not a regular file."""
    candidate = Path(path)
    if candidate.is_symlink():
        return "a symbolic link: only regular files in the landing zone are read"
    resolved = candidate.resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        return f"outside the landing zone {Path(root).resolve()}"
    if not resolved.is_file():
        return "not a regular file"
    return None


def scan_landing(landing: str | Path) -> LandingScan:
    """Every event file in the landing zone (recursively, not following links), in a stable
    order, and the event-file names refused. Segments of the integration API that died while
    writing them are sealed first, so the events it acknowledged are among the files."""
    if is_object_store(landing):
        from pipelines.ingestion.object_store import scan_objects

        return scan_objects(str(landing))
    root = Path(landing)
    if not root.exists():
        return LandingScan([])
    found: list[LandedFile] = []
    refused: dict[str, str] = {}
    try:
        seal_orphaned_segments(root)
    except OSError as exc:
        refused[str(segment_folder(root))] = (f"segments of a stopped integration API could "
                                              f"not be sealed: {exc}")
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in dirs:
            if (Path(folder) / name).is_symlink():
                refused[str(Path(folder) / name)] = "a symbolic link to a folder: not followed"
        for name in names:
            path = Path(folder) / name
            fmt = file_format(path)
            if fmt is None:
                continue
            reason = refusal(root, path)
            if reason:
                refused[str(path)] = reason
                continue
            stat = path.stat()
            found.append(LandedFile(str(path), fmt, stat.st_size, stat.st_mtime_ns))
    return LandingScan(sorted(found, key=lambda f: f.path), dict(sorted(refused.items())))


def landed_files(landing: str | Path) -> list[LandedFile]:
    """Every event file in the landing zone that may be read (see `scan_landing`)."""
    return scan_landing(landing).files


def selected_files(root: str | Path, files: list[str] | None) -> LandingScan:
    """The files a run ingests: those named (the sensor's new files), or with None every event
    file now in the landing zone. A named path that is not an event file, a link, or outside
    the landing zone is refused with its reason."""
    if files is None:
        return scan_landing(root)
    if is_object_store(root):
        from pipelines.ingestion.object_store import select_objects

        return select_objects(str(root), files)
    selected = []
    refused: dict[str, str] = {}
    for path in files:
        fmt = file_format(path)
        reason = ("not an event file (.jsonl, .ndjson, .gz, .csv, .parquet)" if fmt is None
                  else refusal(root, path))
        if reason or fmt is None:
            refused[path] = reason or "not an event file"
            continue
        stat = Path(path).stat()
        selected.append(LandedFile(path, fmt, stat.st_size, stat.st_mtime_ns))
    return LandingScan(selected, refused)


@contextmanager
def readable_copies(location: str | Path,
                    files: list[LandedFile]) -> Iterator[tuple[list[LandedFile], dict[str, str]]]:
    """The files as DuckDB can read them, and those that could not be fetched (path -> error):
    local files as they are; objects of an s3 landing zone copied to a local staging folder
    (removed on exit). Call it before taking the warehouse's writer: the copying waits on the
    network."""
    if not is_object_store(location):
        yield files, {}
        return
    from pipelines.ingestion.object_store import staged_objects

    with staged_objects(files) as staged:
        yield staged


_GLOB_CHARACTERS = re.compile(r"([*?\[])")


def exact_path_pattern(path: str) -> str:
    """`path` as a DuckDB file pattern matching that one file: DuckDB reads file names as globs,
    so a file named `a*.jsonl` would also read `a1.jsonl`; each glob character is put in a
    character class of its own (`a[*].jsonl`)."""
    return _GLOB_CHARACTERS.sub(r"[\1]", path)
