"""Webhook endpoints (``/v1/webhook_endpoints``) and signed event delivery.

Deliveries are POSTed from a background thread with Stripe's ``Stripe-Signature: t=...,v1=...``
header (HMAC-SHA256 of ``"{t}.{body}"`` with the endpoint's ``whsec_`` secret), so receivers can
verify them with ``stripe.Webhook.construct_event``. Non-2xx answers and network errors are
retried after the configured delays; every attempt is logged.
"""

from __future__ import annotations

import heapq
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from hashlib import sha256
from typing import Any

from .errors import invalid
from .fields import merge_metadata, new_metadata, nullable
from .routes import Body, Params, route
from .state import RequestContext, State
from .templates import delete_endpoint, list_endpoint, rendered, retrieve_endpoint

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 30.0)


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), sha256).hexdigest()
    return f"t={t},v1={mac}"


def _check_url(url: str, param: str = "url") -> str:
    if not url.startswith(("http://", "https://")):
        raise invalid(f"Invalid URL: {url}. URLs must begin with http:// or https://", param)
    return url


def _check_events(events: list[str]) -> list[str]:
    if not events:
        raise invalid("enabled_events must contain at least one event type.", "enabled_events")
    return list(events)


@route("POST", "/v1/webhook_endpoints", "WebhookEndpointCreateParams")
def create_webhook_endpoint(state: State, ctx: RequestContext, p: Params) -> Body:
    if p.get("connect"):
        raise invalid("The Stripe emulator has no connected accounts.", "connect")
    obj = {
        "id": state.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": p.get("api_version"),
        "application": None,
        "created": state.now(),
        "description": nullable(p.get("description")),
        "enabled_events": _check_events(p["enabled_events"]),
        "livemode": False,
        "metadata": new_metadata(p),
        "status": "enabled",
        "url": _check_url(p["url"]),
    }
    state.add(obj)
    secret = "whsec_" + state.token(32)
    state.webhook_secrets[obj["id"]] = secret
    out = rendered(state, obj["id"], p)
    out["secret"] = secret  # only ever shown in the create response, as on Stripe
    return out


retrieve_endpoint("webhook_endpoint", "/v1/webhook_endpoints", "WebhookEndpoint")


@route("POST", "/v1/webhook_endpoints/{id}", "WebhookEndpointUpdateParams")
def update_webhook_endpoint(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
    obj = state.get("webhook_endpoint", id)
    if "url" in p:
        obj["url"] = _check_url(p["url"])
    if "enabled_events" in p:
        obj["enabled_events"] = _check_events(p["enabled_events"])
    if "disabled" in p:
        obj["status"] = "disabled" if p["disabled"] else "enabled"
    if "description" in p:
        obj["description"] = nullable(p["description"])
    if "metadata" in p:
        obj["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    return rendered(state, id, p)


delete_endpoint(
    "webhook_endpoint",
    "/v1/webhook_endpoints",
    "WebhookEndpoint",
    forget=lambda state, id: state.webhook_secrets.pop(id, None),
)


list_endpoint("webhook_endpoint", "/v1/webhook_endpoints", "WebhookEndpoint")


class WebhookDeliverer:
    """Fans events out to enabled endpoints and delivers them from one background thread."""

    def __init__(self, state: State, retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS) -> None:
        self.state = state
        self.retry_delays = tuple(retry_delays)
        self.log: deque[dict[str, Any]] = deque(maxlen=1000)
        self.delivered = 0
        self.failed = 0
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="stripe-emulator-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()
            self.log.clear()
            self.delivered = self.failed = 0

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def fan_out(self, event: dict[str, Any]) -> int:
        """Called (under the state lock) for each new event; returns the number of deliveries."""
        endpoints = [
            self.state.objects[i]
            for i in self.state.ids_of("webhook_endpoint")
            if self.state.objects[i]["status"] == "enabled"
            and (
                "*" in self.state.objects[i]["enabled_events"]
                or event["type"] in self.state.objects[i]["enabled_events"]
            )
        ]
        payload = json.dumps({**event, "pending_webhooks": len(endpoints)}, indent=2)
        jobs = [
            {
                "event": event["id"],
                "type": event["type"],
                "endpoint": endpoint["id"],
                "url": endpoint["url"],
                "secret": self.state.webhook_secrets[endpoint["id"]],
                "payload": payload,
                "attempt": 0,
            }
            for endpoint in endpoints
        ]
        with self._cond:
            for job in jobs:
                heapq.heappush(self._queue, (time.monotonic(), next(self._ids), job))
            self._cond.notify_all()
        return len(jobs)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, job = heapq.heappop(self._queue)
            self._attempt(job)

    def _attempt(self, job: dict[str, Any]) -> None:
        job["attempt"] += 1
        payload = job["payload"]
        request = urllib.request.Request(
            job["url"],
            data=payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": signature_header(payload, job["secret"]),
            },
        )
        status: int | None = None
        error = None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            error = str(exc)
        ok = status is not None and 200 <= status < 300
        self.log.append(
            {
                "event": job["event"],
                "type": job["type"],
                "endpoint": job["endpoint"],
                "url": job["url"],
                "attempt": job["attempt"],
                "status": status,
                "error": error,
                "ok": ok,
                "at": time.time(),
            }
        )
        if not ok and job["attempt"] <= len(self.retry_delays):
            delay = self.retry_delays[job["attempt"] - 1]
            with self._cond:
                heapq.heappush(self._queue, (time.monotonic() + delay, next(self._ids), job))
                self._cond.notify_all()
            return
        with self.state.lock:
            event = self.state.objects.get(job["event"])
            if event is not None and event["pending_webhooks"] > 0:
                event["pending_webhooks"] -= 1
        with self._cond:
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
