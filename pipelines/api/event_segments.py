"""Event segments: the files in which the integration API lands the usage events it answers 202
for, so the ordinary ingestion reads them like any other landed file (contract section 11).

A segment is one JSON Lines file in `<landing>/api-events/`. While the API appends to it, it is
named `events-api-<UTC time>-<random>-<seq>.jsonl.part`, a name ingestion never reads, and the API
holds an exclusive `flock` on it; each group of requests' lines is written and `fdatasync`ed
before any of them is answered. When it is big or old enough it is sealed: renamed to its final
`.jsonl` name (the directory fsynced), never written again. Its lines are exactly what the
requests sent, one event per line, so ingestion accounts for every one of them (received =
accepted + duplicates + rejected).

A segment whose API died (no process holds its lock) is sealed by the next one to look: the
API when it starts, and ingestion before it lists the landing zone. Sealing keeps every complete
line and drops a trailing incomplete one, which was never acknowledged (a group is answered only
once all its lines are on disk). So nothing answered 202 is ever missed, and no segment is
read while it can still grow.

Pure file handling (no HTTP, no warehouse): the API's group commit (`pipelines.api.events`)
drives a `SegmentWriter` from one thread at a time; ingestion calls
`seal_orphaned_segments`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines import settings

SEGMENT_FOLDER = "api-events"
OPEN_SUFFIX = ".part"        # ingestion skips it (pipelines.ingestion.landing)
NEW_SUFFIX = ".new"          # created and locked under this name, then given its .part name
SEGMENT_SUFFIX = ".jsonl"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024     # BILLING_API_SEGMENT_MAX_BYTES
DEFAULT_MAX_AGE_S = 60.0                 # BILLING_API_SEGMENT_MAX_AGE_S
_READ_CHUNK = 8 * 1024 * 1024
_fdatasync = getattr(os, "fdatasync", os.fsync)


def segment_folder(landing: str | Path) -> Path:
    """The folder of the API's segments inside the landing zone."""
    return Path(landing) / SEGMENT_FOLDER


def fsync_directory(folder: str | Path) -> None:
    """Make the entries of `folder` (files created, renamed or removed in it) durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folder(folder: Path) -> None:
    """Create `folder` and its missing parents, each new entry made durable."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        with suppress(FileExistsError):
            created.mkdir()
        fsync_directory(created.parent)


@dataclass(frozen=True)
class SegmentLimits:
    """When the API seals its open segment: at `max_bytes`, or `max_age_s` after its first
    line (so events reach ingestion within that time even when few arrive)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_age_s: float = DEFAULT_MAX_AGE_S

    @classmethod
    def from_environment(cls) -> SegmentLimits:
        """The limits BILLING_API_SEGMENT_MAX_BYTES and BILLING_API_SEGMENT_MAX_AGE_S set; a
        ValueError names a variable that is not a positive number."""
        return cls(int(settings.positive_number("BILLING_API_SEGMENT_MAX_BYTES",
                                                DEFAULT_MAX_BYTES)),
                   settings.positive_number("BILLING_API_SEGMENT_MAX_AGE_S", DEFAULT_MAX_AGE_S))


@dataclass
class _OpenSegment:
    fd: int
    path: Path           # the .jsonl.part name it is written under
    final: Path          # the .jsonl name it gets when sealed
    size: int            # bytes written and fsynced: everything acknowledged
    opened_at: float     # time.monotonic()


class SegmentWriter:
    """This process's open segment in `landing`: lines appended durably, sealed when due.
    Not thread-safe: one caller at a time (the API's committer)."""

    def __init__(self, landing: str | Path, limits: SegmentLimits | None = None) -> None:
        self.folder = segment_folder(landing)
        self.limits = limits or SegmentLimits()
        self._open: _OpenSegment | None = None
        self._run = secrets.token_hex(4)
        self._sequence = 0

    def write(self, data: bytes) -> str:
        """Append `data` (whole lines) to the open segment, opening one if needed, and return
        once data and directory entry are on disk: the segment's final name, relative to the
        landing zone. On an OSError nothing of `data` stays in the segment (it is cut back to
        what was acknowledged and left for sealing) and the error is raised."""
        segment = self._open or self._start()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(segment.fd, view):]
            _fdatasync(segment.fd)
        except OSError:
            self._abandon(segment)
            raise
        segment.size += len(data)
        return f"{SEGMENT_FOLDER}/{segment.final.name}"

    def seconds_until_due(self) -> float | None:
        """Seconds until the open segment is old enough to seal (0 when due), None when none
        is open."""
        if self._open is None:
            return None
        return max(0.0, self._open.opened_at + self.limits.max_age_s - time.monotonic())

    def seal_if_due(self) -> Path | None:
        """Seal the open segment when it has reached its size or its age: its final path."""
        segment = self._open
        if segment is None:
            return None
        if segment.size < self.limits.max_bytes and self.seconds_until_due():
            return None
        return self.seal()

    def seal(self) -> Path | None:
        """Seal the open segment now (when the API stops): renamed to its final name, the
        directory fsynced, the lock released. Should that fail, the segment is left as it is
        for the next sealer and the error raised."""
        segment = self._open
        if segment is None:
            return None
        self._open = None
        try:
            os.rename(segment.path, segment.final)
            fsync_directory(self.folder)
        finally:
            os.close(segment.fd)
        return segment.final

    def _start(self) -> _OpenSegment:
        """A new segment: created and locked under a `.new` name, then renamed to its `.part`
        name (so no sealer ever sees it unlocked), its directory entry made durable."""
        _make_folder(self.folder)
        while True:
            self._sequence += 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            final = self.folder / (f"events-api-{stamp}-{self._run}-{self._sequence:06d}"
                                   f"{SEGMENT_SUFFIX}")
            part = final.with_name(final.name + OPEN_SUFFIX)
            new = final.with_name(final.name + NEW_SUFFIX)
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(new, part)
                fsync_directory(self.folder)
            except FileNotFoundError:
                # a sealer took the unlocked .new file for a dead one's: start another
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._open = _OpenSegment(fd, part, final, 0, time.monotonic())
            return self._open

    def _abandon(self, segment: _OpenSegment) -> None:
        """After a failed write: cut the segment back to what was acknowledged, give up on it
        and seal it as a dead one's (best effort; else ingestion's sealer will)."""
        self._open = None
        with suppress(OSError):
            os.ftruncate(segment.fd, segment.size)
        with suppress(OSError):
            os.close(segment.fd)
        with suppress(OSError):
            _seal_if_orphaned(segment.path)


def seal_orphaned_segments(landing: str | Path) -> list[Path]:
    """Seal every segment in `landing` whose writer is gone (its lock is free): complete lines
    kept, a trailing incomplete one dropped, renamed to its final name; an empty one removed.
    Segments an API still holds are left alone. Returns the sealed files' paths. An OSError on
    one segment is raised (the caller names the folder)."""
    folder = segment_folder(landing)
    if not folder.is_dir() or folder.is_symlink():
        return []
    sealed = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file(follow_symlinks=False):
            continue
        if entry.name.endswith(SEGMENT_SUFFIX + OPEN_SUFFIX):
            done = _seal_if_orphaned(Path(entry.path))
            if done is not None:
                sealed.append(done)
        elif entry.name.endswith(SEGMENT_SUFFIX + NEW_SUFFIX):
            _remove_if_orphaned(Path(entry.path))
    return sealed


def _locked_if_orphaned(path: Path) -> int | None:
    """An open descriptor of `path` holding its lock, when no one else holds it and the name
    still refers to that file; None when its writer is alive or it is gone."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held = os.fstat(fd)
        now = os.stat(path, follow_symlinks=False)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES, errno.ENOENT):
            return None
        raise
    if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
        os.close(fd)     # sealed (renamed) by its writer or another sealer meanwhile
        return None
    return fd


def _seal_if_orphaned(path: Path) -> Path | None:
    fd = _locked_if_orphaned(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        keep = _acknowledged_length(fd, size)
        if keep != size:
            os.ftruncate(fd, keep)
        if keep == 0:
            os.unlink(path)
            fsync_directory(path.parent)
            return None
        os.fsync(fd)
        final = path.with_name(path.name[:-len(OPEN_SUFFIX)])
        os.rename(path, final)
        fsync_directory(path.parent)
        return final
    finally:
        os.close(fd)


def _remove_if_orphaned(path: Path) -> None:
    """A `.new` file left by a writer that died before naming it `.part`: never written to,
    removed. (A writer alive in that instant holds its lock; should it not yet, its rename
    fails and it starts another segment.)"""
    fd = _locked_if_orphaned(path)
    if fd is None:
        return
    try:
        if os.fstat(fd).st_size == 0:
            os.unlink(path)
    finally:
        os.close(fd)


def _acknowledged_length(fd: int, size: int) -> int:
    """How much of a dead writer's segment is whole lines: up to its last newline, and before
    any NUL byte (never in a JSON line; what a crash of the machine leaves where a write had not
    reached the disk). Everything acknowledged was fsynced whole, so it is all kept."""
    keep = 0
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(_READ_CHUNK, size - offset), offset)
        if not chunk:
            break
        nul = chunk.find(b"\0")
        if nul >= 0:
            chunk = chunk[:nul]
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = offset + newline + 1
        if nul >= 0:
            break
        offset += len(chunk)
    return keep
