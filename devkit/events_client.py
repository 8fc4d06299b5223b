"""The example Python client for sending usage events over HTTP (docs/events-api.md), as a
gateway or an application would: one event, a batch, or any number of events through a batcher
that sends full batches of up to 1,000.

It lives beside `devkit.api_client` (the custom invoicing client), outside the product's wheel:
an integration needs only httpx, not the pipeline's dependencies, and the product never calls
its own API. `ApiError` is the same.

Retrying is safe: every event carries its identity (`source`, `event_id`), and ingestion counts
an event landed twice as a duplicate, never twice. Transport errors, 408 and 503 answers are
retried a few times; any other non-2xx raises ApiError (422 names the problem, 413 the limit).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from devkit.api_client import BearerClient, call_with_retries

EVENTS = "/api/v1/events"
EVENTS_BATCH = "/api/v1/events/batch"
MAX_BATCH_EVENTS = 1_000            # the API's limit per batch
MAX_BATCH_BYTES = 9_000_000         # under the API's 10 MB body limit, with room to spare


def usage_event(event_name: str, customer_id: str, *, timestamp: str | datetime,
                properties: Mapping[str, Any] | None = None, event_id: str | None = None,
                source: str | None = None,
                subscription_id: str | None = None) -> dict[str, Any]:
    """A native-shape event (contract section 1). Without `event_id` one is made up (a UUID)
    now, so sending the same dict again is recognised as the same event. `timestamp` is an
    aware datetime or an ISO-8601 instant with offset."""
    event: dict[str, Any] = {
        "event_id": event_id or str(uuid.uuid4()), "event_name": event_name,
        "customer_id": customer_id, "timestamp": _instant(timestamp),
        "properties": dict(properties or {})}
    if source is not None:
        event["source"] = source
    if subscription_id is not None:
        event["subscription_id"] = subscription_id
    return event


def _instant(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no UTC offset")
        return value.isoformat()
    return value


def _json(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return _instant(item)
        raise TypeError(f"{type(item).__name__} is not JSON: send numbers, strings, "
                        "lists and objects")

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default)


class EventsClient(BearerClient):
    """Sends events with a bearer token of scope `events:write`. A 202 means the events are
    on disk in the landing zone; the next ingestion accepts, deduplicates or rejects each one
    (see `raw.ingestion_log` and `raw.rejected_events` for the file named in the answer)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 retries: int = 3) -> None:
        super().__init__(base_url, token, timeout=timeout, retries=retries)

    def send(self, event: Mapping[str, Any], *, cloudevent: bool = False) -> dict[str, Any]:
        """One event (native, or a CloudEvent in structured mode with `cloudevent`)."""
        media = "application/cloudevents+json" if cloudevent else "application/json"
        return self._post(EVENTS, _json(event).encode(), media)

    def send_batch(self, events: Sequence[Mapping[str, Any]], *,
                   cloudevents: bool = False) -> dict[str, Any]:
        """1 to 1,000 events in one call (CloudEvents batch mode with `cloudevents`)."""
        if not 1 <= len(events) <= MAX_BATCH_EVENTS:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {len(events)}")
        return self._send_encoded([_json(e) for e in events], cloudevents)

    def send_all(self, events: Iterable[Mapping[str, Any]], *,
                 batch_size: int = MAX_BATCH_EVENTS, cloudevents: bool = False) -> int:
        """Any number of events, in batches of up to `batch_size`; how many were accepted."""
        with self.batcher(batch_size=batch_size, cloudevents=cloudevents) as batcher:
            for event in events:
                batcher.add(event)
        return batcher.accepted

    def batcher(self, *, batch_size: int = MAX_BATCH_EVENTS,
                cloudevents: bool = False) -> EventBatcher:
        """A batcher over this client: `add` events, full batches are sent as they fill up,
        the rest on `flush` or when the `with` block ends."""
        return EventBatcher(self, batch_size=batch_size, cloudevents=cloudevents)

    def _send_encoded(self, encoded: Sequence[str], cloudevents: bool) -> dict[str, Any]:
        media = "application/cloudevents-batch+json" if cloudevents else "application/json"
        return self._post(EVENTS_BATCH, ("[" + ",".join(encoded) + "]").encode(), media)

    def _post(self, path: str, body: bytes, media: str) -> dict[str, Any]:
        return call_with_retries(self.http, "POST", path, retries=self.retries, content=body,
                                 headers={"Content-Type": media})

    # -- customers and subscriptions from a CRM (scope catalog:write; docs/crm.md) ----------
    def put_customer(self, customer_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create or change a customer with the YAML catalog's fields (name, email,
        billing_profile, metadata); the next run bills with it. The answer is the current
        version and `change`: created, updated, or unchanged (the same fields again add no
        version, so sending the whole CRM state again is safe). A 422 ApiError names the field
        (`.field`); a 409 says the id is defined in the catalog's files."""
        return self._catalog_call("PUT", f"/api/v1/customers/{_segment(customer_id)}",
                                  dict(fields))

    def put_subscription(self, subscription_id: str,
                         fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create or change a subscription with the YAML catalog's fields (customer, plan,
        start_date, end_date, billing_anchor, collection_method, days_until_due, discounts);
        dates as YYYY-MM-DD, amounts and percents as decimal strings. As `put_customer`."""
        return self._catalog_call("PUT", f"/api/v1/subscriptions/{_segment(subscription_id)}",
                                  dict(fields))

    def customer_versions(self, customer_id: str) -> list[dict[str, Any]]:
        """Every version of a customer the API holds, newest first (time, token, fields)."""
        return self._catalog_call(
            "GET", f"/api/v1/customers/{_segment(customer_id)}/versions")["versions"]

    def subscription_versions(self, subscription_id: str) -> list[dict[str, Any]]:
        """Every version of a subscription the API holds, newest first."""
        return self._catalog_call(
            "GET", f"/api/v1/subscriptions/{_segment(subscription_id)}/versions")["versions"]

    def _catalog_call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One customers/subscriptions call, retried like the others (a PUT of the same
        fields is answered the same way again, so retrying it is safe)."""
        content = None if body is None else _json(body).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        return call_with_retries(self.http, method, path, retries=self.retries,
                                 content=content, headers=headers)


def _segment(entry_id: str) -> str:
    """An id as one path segment (a slash or a space in a CRM id stays inside it)."""
    return quote(entry_id, safe="")


class EventBatcher:
    """Collects events and sends them in batches of up to `batch_size` events and
    MAX_BATCH_BYTES bytes. Not thread-safe: one batcher per thread."""

    def __init__(self, client: EventsClient, *, batch_size: int = MAX_BATCH_EVENTS,
                 cloudevents: bool = False) -> None:
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_EVENTS}, got {batch_size}")
        self.client = client
        self.batch_size = batch_size
        self.cloudevents = cloudevents
        self.accepted = 0                     # events answered 202 so far
        self.landing_files: set[str] = set()  # where they landed (for ingestion's log)
        self._pending: list[str] = []
        self._bytes = 0

    def add(self, event: Mapping[str, Any]) -> None:
        """Queue one event; sends the batch first when this one would not fit in it."""
        encoded = _json(event)
        size = len(encoded.encode()) + 1
        if self._pending and self._bytes + size > MAX_BATCH_BYTES:
            self.flush()
        self._pending.append(encoded)
        self._bytes += size
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Send the queued events now (nothing when none are queued). On an error they stay
        queued, so a later `flush` sends them again."""
        if not self._pending:
            return
        answer = self.client._send_encoded(self._pending, self.cloudevents)
        self.accepted += int(answer.get("events", len(self._pending)))
        if answer.get("landing_file"):
            self.landing_files.add(answer["landing_file"])
        self._pending = []
        self._bytes = 0

    def __enter__(self) -> EventBatcher:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.flush()
