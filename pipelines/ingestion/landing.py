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

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.api.event_segments import seal_orphaned_segments, segment_folder
from pipelines.ingestion.file_identity import (  # noqa: F401  (re-exported: the landing zone's types)
    FORMATS,
    IN_PROGRESS_MARKERS,
    LandedFile,
    LandingScan,
    file_format,
    file_sha256,
)
from pipelines.settings import is_object_store


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
