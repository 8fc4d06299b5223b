"""The landing zone: which files are there, what format each is, and its content identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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
    """A file in the landing zone, identified by the hash of its bytes."""

    path: str
    format: str
    size: int
    mtime_ns: int

    @property
    def file_id(self) -> str:
        return file_sha256(self.path)


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


def landed_files(landing: str | Path) -> list[LandedFile]:
    """Every event file in the landing zone (recursively), in a stable order."""
    root = Path(landing)
    if not root.exists():
        return []
    found: list[LandedFile] = []
    for path in sorted(root.rglob("*")):
        fmt = file_format(path)
        if fmt is None or not path.is_file():
            continue
        stat = path.stat()
        found.append(LandedFile(str(path), fmt, stat.st_size, stat.st_mtime_ns))
    return found


def selected_files(root: str | Path, files: list[str] | None) -> list[LandedFile]:
    """The files a run ingests: those named (the sensor's new files), or with None every event
    file now in the landing zone. A named file that is not an event file is refused."""
    if files is None:
        return landed_files(root)
    selected = []
    for path in files:
        fmt = file_format(path)
        if fmt is None:
            raise ValueError(f"{path}: not an event file (.jsonl, .ndjson, .gz, .csv, .parquet)")
        stat = Path(path).stat()
        selected.append(LandedFile(path, fmt, stat.st_size, stat.st_mtime_ns))
    return selected
