"""How the integration API lands events (pipelines.api.event_segments, pipelines.api.events):
the lines it writes are the events as sent, a segment is never read while its API holds it, and
one left by a dead API is sealed with exactly its acknowledged lines."""

from __future__ import annotations

import asyncio
import json
import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.api import event_segments
from pipelines.api.event_segments import (
    SegmentLimits,
    SegmentWriter,
    seal_orphaned_segments,
    segment_folder,
)
from pipelines.api.events import EventsRefused, GroupCommit, event_lines
from pipelines.ingestion.landing import scan_landing


def _orphan(landing: Path, content: bytes, name: str = "events-api-x-1.jsonl.part") -> Path:
    """A segment as a killed API leaves it: a .part file nobody holds a lock on."""
    folder = segment_folder(landing)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def test_a_segment_its_api_holds_is_neither_listed_nor_sealed(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path)
    landed = writer.write(b'{"event_id": "a"}\n')
    assert scan_landing(tmp_path).files == []
    assert seal_orphaned_segments(tmp_path) == []
    [part] = segment_folder(tmp_path).iterdir()
    assert part.name == Path(landed).name + ".part"
    sealed = writer.seal()
    assert sealed == tmp_path / landed
    assert [f.path for f in scan_landing(tmp_path).files] == [str(sealed)]


def test_a_dead_apis_segment_is_sealed_with_its_whole_lines_only(tmp_path: Path) -> None:
    _orphan(tmp_path, b'{"event_id": "a"}\n{"event_id": "b"}\n{"event_id": "c", "eve')
    _orphan(tmp_path, b'{"event_id": "d"}\n\0\0\0\0{"event_id": "e"}\n',
            "events-api-x-2.jsonl.part")
    _orphan(tmp_path, b'{"event_id": "f", "ev', "events-api-x-3.jsonl.part")   # nothing whole
    _orphan(tmp_path, b"", "events-api-x-4.jsonl.new")           # died before naming it .part
    files = scan_landing(tmp_path).files
    assert [(Path(f.path).name, Path(f.path).read_bytes()) for f in files] == [
        ("events-api-x-1.jsonl", b'{"event_id": "a"}\n{"event_id": "b"}\n'),
        ("events-api-x-2.jsonl", b'{"event_id": "d"}\n')]
    assert sorted(p.name for p in segment_folder(tmp_path).iterdir()) == [
        "events-api-x-1.jsonl", "events-api-x-2.jsonl"]


def test_a_segment_is_sealed_at_its_size_and_the_next_write_opens_another(
        tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, SegmentLimits(max_bytes=20, max_age_s=3600))
    first = writer.write(b'{"event_id": "a"}\n')
    assert writer.seal_if_due() is None                 # 18 bytes: under the limit
    assert writer.write(b'{"event_id": "b"}\n') == first
    assert writer.seal_if_due() == tmp_path / first
    second = writer.write(b'{"event_id": "c"}\n')
    assert second != first
    assert (tmp_path / first).read_bytes() == b'{"event_id": "a"}\n{"event_id": "b"}\n'


def test_a_failed_write_keeps_only_what_was_acknowledged(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    writer = SegmentWriter(tmp_path)
    first = writer.write(b'{"event_id": "a"}\n')

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(event_segments, "_fdatasync", disk_full)
    with pytest.raises(OSError, match="No space"):
        writer.write(b'{"event_id": "b"}\n{"event_id": "c"}\n')
    # given up, cut back to the acknowledged line and sealed for ingestion
    assert [p.name for p in segment_folder(tmp_path).iterdir()] == [Path(first).name]
    assert (tmp_path / first).read_bytes() == b'{"event_id": "a"}\n'
    monkeypatch.undo()
    assert writer.write(b'{"event_id": "b"}\n') != first    # a new segment


def test_events_are_landed_as_sent_one_per_line() -> None:
    body = (b'[\n  {"event_id": "a",\r\n   "properties": {"amount": 0.1000000000000000055511151'
            b'231257827, "big": 123456789012345678901234567890, "text": "line\\nbreak"}},\n'
            b'  {"specversion": "1.0", "id": "c1", "data": {"x": 1.50}}\n]')
    lines = event_lines(body, batch=True)
    assert lines.count == 2
    first, second = lines.data.decode().splitlines()
    assert "0.1000000000000000055511151231257827" in first         # not rounded to a float
    assert "123456789012345678901234567890" in first
    assert json.loads(first, parse_float=Decimal)["properties"]["text"] == "line\nbreak"
    assert second == '{"specversion": "1.0", "id": "c1", "data": {"x": 1.50}}'
    single = event_lines(b' {"event_id":\n"a"} \n', batch=False)
    assert single.data == b'{"event_id": "a"}\n'


@pytest.mark.parametrize(("body", "batch", "status", "field"), [
    (b'{"a": 1}', True, 422, "body"),
    (b'[{"a": 1}]', False, 422, "body"),
    (b'[{"a": 1}, null]', True, 422, "[1]"),
    (b'[{"a": {"b": [1, {"c": "\\udc80"}]}}]', True, 422, "[0].a.b[1].c"),
    (b'[{"a": 1}] x', True, 422, "body"),
    (b"[" + b'{"a": 1},' * 1_000 + b'{"a": 1}]', True, 413, "body"),
])
def test_bodies_of_the_wrong_shape_are_refused_naming_where(body: bytes, batch: bool,
                                                            status: int, field: str) -> None:
    with pytest.raises(EventsRefused) as refused:
        event_lines(body, batch=batch)
    assert (refused.value.status, refused.value.field) == (status, field)


def test_concurrent_requests_share_one_fsync_and_are_answered_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []

    def slow_fdatasync(fd: int) -> None:
        time.sleep(0.05)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(event_segments, "_fdatasync", slow_fdatasync)
    commit = GroupCommit(tmp_path, SegmentLimits())

    async def request(n: int) -> str:
        line = f'{{"event_id": "e{n}"}}\n'.encode()
        landed = await commit.append(line)
        [part] = segment_folder(tmp_path).iterdir()
        assert line in part.read_bytes()[:synced[-1]]     # answered once fsynced, not before
        return landed

    async def requests() -> list[str]:
        await commit.start()
        answers = await asyncio.gather(*(request(n) for n in range(50)))
        await commit.close()
        return answers

    answers = asyncio.run(requests())
    assert len(set(answers)) == 1
    # the first request's group, then everything that arrived while it was on its way
    assert len(synced) <= 2
    [sealed] = segment_folder(tmp_path).iterdir()
    assert synced[-1] == sealed.stat().st_size
    assert sorted(sealed.read_text().splitlines()) == sorted(
        f'{{"event_id": "e{n}"}}' for n in range(50))
