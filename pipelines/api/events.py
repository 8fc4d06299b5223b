"""Usage events over HTTP (contract section 11): `POST /api/v1/events` (one event) and
`POST /api/v1/events/batch` (1 to 1,000), scope `events:write`, native or CloudEvents shape.

The API does not judge events: it checks that the body is JSON of the right shape (an object;
an array of objects for a batch) and lands each event's text, exactly as sent (line breaks
between tokens made spaces), as one line of a segment file in the landing zone
(`pipelines.api.event_segments`). Ingestion then reads those lines like any landed file, maps
CloudEvents to the native shape, deduplicates on (source, event_id) and names every rejected line
with its reason, so no event is lost to a second set of rules drifting from the first.

A 202 is sent only once the request's lines are on disk: requests arriving together are
written as one group and share one fdatasync (group commit), one group at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipelines import settings
from pipelines.api import rules
from pipelines.api.event_segments import SegmentLimits, SegmentWriter, seal_orphaned_segments
from pipelines.api.store import error_body

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from pipelines.api.app import ApiHandlers

log = logging.getLogger("billing.api")

MAX_BATCH_EVENTS = 1_000
MAX_EVENT_BYTES = 1_000_000           # one event, alone or in a batch (as other bodies)
MAX_BATCH_BODY_BYTES = 10_000_000     # a whole batch
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
_WHITESPACE = re.compile(r"[ \t\n\r]*")


class EventsRefused(Exception):
    """A body the events endpoints cannot take: the status, code, message and field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = "body"):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def _invalid(message: str, field: str | None = "body") -> EventsRefused:
    return EventsRefused(422, "validation_error", message, field)


@dataclass(frozen=True)
class EventLines:
    """The events of a request as the lines landed for them."""

    data: bytes          # one JSON event per line, each ending with a newline
    count: int


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_not_json)


def _value_at(text: str, start: int) -> tuple[Any, int]:
    """The JSON value starting at `start` and where it ends; a 422 when it is not JSON."""
    try:
        return _DECODER.raw_decode(text, start)
    except RecursionError:
        raise _invalid(f"body: nests deeper than {rules.MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise _invalid(f"body: not valid JSON ({exc})") from None


def _check_value(value: Any, index: int | None) -> None:
    """What no event can carry (too deep, a lone surrogate, a number too large to be finite):
    a 422 naming the field, `[i].` before it in a batch."""
    problem = rules.check_json_value(value, rules.MAX_JSON_DEPTH - (index is not None))
    if problem is None:
        return
    field = problem.field
    if index is not None:
        field = (f"[{index}]" if field == "body"
                 else f"[{index}]{field}" if field.startswith("[") else f"[{index}].{field}")
    raise _invalid(f"{field}: {problem.message}", field)


def _line(span: str, field: str) -> str:
    """An event's text as one line: JSON strings cannot hold a raw line break, so the breaks in
    it are whitespace between tokens and become spaces. Over MAX_EVENT_BYTES: a 413."""
    if len(span) > MAX_EVENT_BYTES // 4 and len(span.encode()) > MAX_EVENT_BYTES:
        raise EventsRefused(413, "event_too_large",
                            f"{field}: an event is limited to {MAX_EVENT_BYTES} bytes", field)
    if "\n" in span or "\r" in span:
        return span.replace("\r", " ").replace("\n", " ")
    return span


def _end_of_body(text: str, end: int) -> None:
    rest = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
    if rest != len(text):
        raise _invalid(f"body: not valid JSON (extra data at char {rest})")


def event_lines(raw: bytes, *, batch: bool) -> EventLines:
    """The lines to land for a request body: one event (a JSON object), or with `batch` 1 to
    MAX_BATCH_EVENTS events (a JSON array of objects). Raises EventsRefused: 422 naming the
    problem (not UTF-8, not JSON, the wrong shape, what `rules.check_json_value` refuses), 413
    beyond MAX_BATCH_EVENTS events or an event over MAX_EVENT_BYTES. Fields of the events are
    not looked at: ingestion does that. Runs off the event loop."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"body: not UTF-8 text ({exc})") from None
    start = _WHITESPACE.match(text).end()  # type: ignore[union-attr]
    if batch and text.startswith("[", start):
        spans = _array_elements(text, start)
    else:
        value, end = _value_at(text, start)
        _end_of_body(text, end)
        _check_value(value, None)
        if batch:
            raise _invalid("body: a batch is a JSON array of events (1 to "
                           f"{MAX_BATCH_EVENTS}), got {_json_type(value)}")
        if not isinstance(value, dict):
            raise _invalid(f"body: an event is a JSON object, got {_json_type(value)}"
                           + ("; send several to /api/v1/events/batch"
                              if isinstance(value, list) else ""))
        spans = [_line(text[start:end], "body")]
    return EventLines(("\n".join(spans) + "\n").encode(), len(spans))


def _array_elements(text: str, start: int) -> list[str]:
    """The text of each element of the JSON array at `start` (the whole body), each checked
    to be an object; at most MAX_BATCH_EVENTS (413 at the next one, before it is parsed)."""
    spans: list[str] = []
    position = _WHITESPACE.match(text, start + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", position):
        _end_of_body(text, position + 1)
        raise _invalid(f"body: a batch needs 1 to {MAX_BATCH_EVENTS} events, got none")
    while True:
        index = len(spans)
        if index == MAX_BATCH_EVENTS:
            raise EventsRefused(413, "too_many_events", f"body: a batch is limited to "
                                f"{MAX_BATCH_EVENTS} events; send the rest in another batch")
        value, end = _value_at(text, position)
        if not isinstance(value, dict):
            raise _invalid(f"[{index}]: an event is a JSON object, got {_json_type(value)}",
                           f"[{index}]")
        _check_value(value, index)
        spans.append(_line(text[position:end], f"[{index}]"))
        position = _WHITESPACE.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", position):
            position = _WHITESPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", position):
            _end_of_body(text, position + 1)
            return spans
        else:
            raise _invalid(f"body: not valid JSON (expecting ',' or ']' at char {position})")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             type(None): "null"}
    return names.get(type(value), "a number")


class GroupCommit:
    """The API's segment writer behind a group commit: lines of concurrent requests are
    written together and share one fdatasync, one group at a time; each request is answered
    once its group is on disk. The open segment is sealed when due, also when idle."""

    def __init__(self, landing: str | Path, limits: SegmentLimits) -> None:
        self.landing = Path(landing)
        self.writer = SegmentWriter(landing, limits)
        self._waiting: list[tuple[bytes, asyncio.Future[str]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def append(self, data: bytes) -> str:
        """Land `data` (whole lines) durably; the segment's final name, relative to the landing
        zone. Raises the OSError of a failed write (nothing of this group is kept)."""
        if self._closing:
            raise OSError("the API is stopping")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        self._waiting.append((data, done))
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._commit_loop())
        assert self._wake is not None
        self._wake.set()
        return await asyncio.shield(done)

    async def _commit_loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.writer.seconds_until_due())
                except TimeoutError:
                    await self._seal_if_due()
                continue
            group, self._waiting = self._waiting, []
            try:
                name = await anyio.to_thread.run_sync(
                    self.writer.write, b"".join(data for data, _ in group))
            except Exception as exc:
                log.error("could not land %d request(s) of events: %s", len(group), exc)
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in group:
                if not done.done():
                    done.set_result(name)
            await self._seal_if_due()

    async def _seal_if_due(self) -> None:
        try:
            sealed = await anyio.to_thread.run_sync(self.writer.seal_if_due)
        except Exception as exc:
            log.error("could not seal an events segment (left for the next sealer): %s", exc)
            return
        if sealed is not None:
            log.info("sealed events segment %s", sealed.name)

    async def start(self) -> None:
        """Seal the segments an API that died left behind (its lines were acknowledged)."""
        try:
            sealed = await anyio.to_thread.run_sync(seal_orphaned_segments, self.landing)
        except OSError as exc:
            log.error("could not seal events segments left in %s: %s", self.landing, exc)
            return
        for path in sealed:
            log.info("sealed events segment %s left by a stopped API", path.name)

    async def close(self) -> None:
        """Finish the groups waiting, then seal the open segment (when the API stops)."""
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            await self._task
        try:
            await anyio.to_thread.run_sync(self.writer.seal)
        except OSError as exc:
            log.error("could not seal the open events segment (left for the next sealer): %s",
                      exc)


class EventEndpoints:
    """`POST /api/v1/events` and `/api/v1/events/batch`, landing into BILLING_LANDING."""

    def __init__(self, handlers: ApiHandlers, landing: str | Path | None = None,
                 limits: SegmentLimits | None = None) -> None:
        self.handlers = handlers
        self._landing = landing
        self._limits = limits
        self._commit: GroupCommit | None = None

    def landing_on_object_store(self) -> bool:
        """Whether BILLING_LANDING is a bucket: the API lands events only in a local folder
        (segments are appended and fsynced in place), so it then refuses them."""
        return settings.is_object_store(self._landing or settings.landing_path())

    @property
    def commit(self) -> GroupCommit:
        """The group commit into the landing zone, set up on first use (reading the
        settings then, not when the app is built)."""
        if self._commit is None:
            self._commit = GroupCommit(self._landing or settings.landing_path(),
                                       self._limits or SegmentLimits.from_environment())
        return self._commit

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """The app's lifespan: seal dead APIs' segments at start, this one's when stopping."""
        if self.landing_on_object_store():
            log.error("BILLING_LANDING is object storage: POST /api/v1/events answers 501; "
                      "events over HTTP land only in a local landing zone")
            yield
            return
        await self.commit.start()
        try:
            yield
        finally:
            await self.commit.close()

    async def event(self, request: Request) -> Response:
        """One event (a JSON object); with `Content-Type: application/cloudevents-batch+json`
        an array of them, as CloudEvents' HTTP binding sends a batch."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        return await self._land(request, batch=content_type == CLOUDEVENTS_BATCH)

    async def batch(self, request: Request) -> Response:
        """1 to MAX_BATCH_EVENTS events (a JSON array)."""
        return await self._land(request, batch=True)

    async def _land(self, request: Request, *, batch: bool) -> Response:
        await self.handlers.authorize(request, (rules.SCOPE_EVENTS_WRITE,))
        if self.landing_on_object_store():
            return JSONResponse(error_body(
                "landing_not_local", "this API's landing zone is object storage (s3://); events "
                "over HTTP land only in a local landing zone: upload event files to the bucket "
                "instead"), status_code=501)
        raw = await self.handlers.read_body(request,
                                            MAX_BATCH_BODY_BYTES if batch else MAX_EVENT_BYTES)
        try:
            lines = await run_in_threadpool(event_lines, raw, batch=batch)
        except EventsRefused as refused:
            return JSONResponse(error_body(refused.code, refused.message, field=refused.field),
                                status_code=refused.status)
        try:
            landed = await self.commit.append(lines.data)
        except OSError:
            return JSONResponse(error_body(
                "landing_unavailable", "the events could not be written to the landing zone; "
                "none of them was accepted, retry the same call"),
                status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"status": "accepted", "events": lines.count,
                             "landing_file": landed}, status_code=202)
