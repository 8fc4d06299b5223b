"""The HTTP front of the emulator: Stripe's wire protocol, and the ``/_emulator`` control API
(answered by ``control.py``) on the same port.

Per API request, in order (as Stripe does, as far as a client can tell):

1. ``Authorization`` (Bearer or Basic with a ``sk_test_``/``rk_test_`` key) or 401;
2. the route, or 404 ``Unrecognized request URL``;
3. injected faults and the token-bucket rate limit (429/500, nothing executed, nothing saved);
4. ``Stripe-Version`` and the parameters, validated against the SDK's TypedDicts (400, not saved);
5. ``Idempotency-Key`` (POST): replay a saved answer (``Idempotent-Replayed: true``), 400
   ``idempotency_error`` when reused with other parameters or another endpoint, 409 while the
   first request with the key is still running; keys are scoped per API key, kept 24 hours;
6. injected latency and the ``while_answering`` hook (tests), then execution under the state lock,
   then the answer is saved for the key;
7. the answer, or (``drop_*`` faults) the connection closed without one after the commit.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import random
import re
import socket
import string
import sys
import threading
import time
import traceback
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stripe._api_version import _ApiVersion

from . import levers
from . import webhooks as _webhooks
from .control import handle_control
from .endpoints import match_route
from .errors import StripeAPIError, invalid
from .faults import FaultInjector, Faults
from .idempotency import IdempotencyKeys, SavedAnswer, Scope
from .params import parse_form, validate
from .routes import encode_body
from .state import RequestContext, State

DEFAULT_API_VERSION = _ApiVersion.CURRENT
_ALNUM = string.ascii_letters + string.digits
_KEY_RE = re.compile(r"^(sk|rk)_test_[A-Za-z0-9_]+$")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


def _mask(key: str) -> str:
    prefix = key[: key.index("_", key.index("_") + 1) + 1] if key.count("_") >= 2 else ""
    tail = key[-4:] if len(key) - len(prefix) > 4 else ""
    return prefix + "*" * max(0, len(key) - len(prefix) - len(tail)) + tail


class StripeEmulator:
    """A stateful Stripe-compatible HTTP server on localhost, for tests and local runs.

    >>> with StripeEmulator() as emu:
    ...     client = stripe.StripeClient("sk_test_123", base_addresses={"api": emu.base_url},
    ...                                  max_network_retries=0)
    """

    def __init__(
        self,
        faults: Faults | Mapping[str, Any] | None = None,
        *,
        api_keys: Iterable[str] | None = None,
        api_version: str = DEFAULT_API_VERSION,
        account_country: str = "US",
        default_currency: str = "usd",
        seed: int | None = None,
        webhook_retry_delays: Iterable[float] = _webhooks.DEFAULT_RETRY_DELAYS,
        log_requests: bool = False,
    ) -> None:
        self._initial_faults = self._as_faults(faults)
        self.injector = FaultInjector(self._initial_faults)
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.log_requests = log_requests
        self.state = State(
            api_version=api_version,
            account_country=account_country,
            default_currency=default_currency,
            seed=seed,
            search_lag=self.injector.search_lag,
        )
        self.deliverer = _webhooks.WebhookDeliverer(self.state, tuple(webhook_retry_delays))
        self.state.on_event = self.deliverer.fan_out
        self._idempotency = IdempotencyKeys()
        self._request_ids = random.Random()  # apart from the (seedable) object-id generator
        self._stats_lock = threading.Lock()
        self._reset_stats()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self.base_url = ""
        self.while_answering: Callable[[str, str], None] | None = None
        """For tests: called as ``(method, path)`` in each API request's thread after its
        injected latency, before it executes, while the client waits for the answer (e.g. to
        check that the client holds nothing others need meanwhile). Cleared by :meth:`reset`."""

    # ------------------------------------------------------------------ lifecycle

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a background thread; returns the base URL (``http://host:port``)."""
        if self._server is not None:
            return self.base_url
        emulator = self

        class Handler(_Handler):
            pass

        Handler.emulator = emulator
        server = _Server((host, port), Handler)
        self._server = server
        bound_host, bound_port = server.server_address[:2]
        self.base_url = f"http://{bound_host}:{bound_port}"
        self.state.base_url = self.base_url
        self.deliverer.start()
        self._thread = threading.Thread(
            target=server.serve_forever,
            name="stripe-emulator",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.deliverer.stop()

    def wait(self) -> None:
        """Block until :meth:`stop` is called (from another thread or a signal handler)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> StripeEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults, control

    @staticmethod
    def _as_faults(faults: Faults | Mapping[str, Any] | None) -> Faults:
        if faults is None:
            return Faults()
        if isinstance(faults, Faults):
            faults.check()
            return dataclasses.replace(faults)
        return Faults.from_mapping(faults)

    @property
    def faults(self) -> Faults:
        """The current fault configuration (a copy); assign a Faults or a dict to replace it."""
        return self.injector.faults

    @faults.setter
    def faults(self, value: Faults | Mapping[str, Any] | None) -> None:
        self.injector.configure(self._as_faults(value))

    def update_faults(self, **knobs: Any) -> Faults:
        """Change some knobs, keeping the others."""
        faults = Faults.from_mapping(knobs, base=self.injector.faults)
        self.injector.configure(faults)
        return faults

    def reset(self) -> None:
        """Forget every object, event, idempotency key and statistic; restore the start faults."""
        with self.state.lock:
            self.state.reset()
        self._idempotency.clear()
        self.deliverer.clear()
        self.injector.configure(self._initial_faults)
        self.injector.reset_counters()
        self.while_answering = None
        self._reset_stats()

    def advance_clock(self, seconds: float) -> list[str]:
        """Move the emulator's clock forward and run what Stripe's schedulers would."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.state.lock:
            self.state.clock_offset += seconds
            return levers.run_automations(self.state)

    def invoice_action(self, invoice_id: str, action: str, **body: Any) -> dict[str, Any]:
        """Run a test action (pay, payment_failed, payment_action_required, overdue, refund,
        void, mark_uncollectible, finalize; and, for reconciliation tests, the out-of-band
        changes Stripe's API refuses: delete, set_line_amount) on an invoice; see
        ``/_emulator/invoices/{id}/...``."""
        with self.state.lock:
            return levers.action(self.state, action, invoice_id, body)

    def add_webhook_endpoint(self, url: str, events: Iterable[str] = ("*",)) -> str:
        """Register a webhook endpoint directly; returns its ``whsec_`` signing secret."""
        with self.state.lock:
            out = _webhooks.create_webhook_endpoint(
                self.state, RequestContext(), {"url": url, "enabled_events": list(events)}
            )
        return out["secret"]

    def _reset_stats(self) -> None:
        with self._stats_lock:
            self._requests = 0
            self._by_route: Counter[str] = Counter()
            self._by_path: Counter[str] = Counter()
            self._by_status: Counter[int] = Counter()
            self._replays = 0
            self._idem_conflicts = 0
            self._log: deque[dict[str, Any]] = deque(maxlen=1000)

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            objects = self.state.count_by_kind()
            events = len(self.state.order["event"])
        with self._stats_lock:
            return {
                "requests_total": self._requests,
                "by_route": dict(self._by_route),
                "by_path": dict(self._by_path),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "idempotent_replays": self._replays,
                "idempotency_errors": self._idem_conflicts,
                "faults_injected": dataclasses.asdict(self.injector.counters),
                "objects": objects,
                "events": events,
                "webhooks": {
                    "delivered": self.deliverer.delivered,
                    "failed": self.deliverer.failed,
                    "pending": self.deliverer.pending(),
                },
            }

    def request_log(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._stats_lock:
            return list(self._log)[-limit:]

    def _record(self, entry: dict[str, Any]) -> None:
        with self._stats_lock:
            self._requests += 1
            self._by_route[entry["route"]] += 1
            self._by_path[f"{entry['method']} {entry['path']}"] += 1
            self._by_status[entry["status"]] += 1
            if entry.get("replayed"):
                self._replays += 1
            if entry.get("idempotency_error"):
                self._idem_conflicts += 1
            self._log.append(entry)

    # ------------------------------------------------------------------ the API

    def _authenticate(self, header: str | None) -> str:
        scheme, _, credential = (header or "").strip().partition(" ")
        key = credential.strip()
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(key).decode().partition(":")[0]
            except ValueError:
                key = "?"
        elif scheme.lower() != "bearer":
            key = credential.strip() or scheme
        if not key:
            raise StripeAPIError(401, _NO_KEY, headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        valid = key in self.api_keys if self.api_keys is not None else bool(_KEY_RE.match(key))
        if not valid:
            raise StripeAPIError(
                401,
                f"Invalid API Key provided: {_mask(key)}",
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'},
            )
        return key

    def handle_api(
        self, method: str, path: str, query: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, bytes, dict[str, str], bool, dict[str, Any]]:
        """Answer one /v1 request: (status, body, headers, drop_connection, log entry)."""
        request_id = "req_" + "".join(self._request_ids.choices(_ALNUM, k=14))
        out_headers = {"Request-Id": request_id}
        entry: dict[str, Any] = {
            "at": time.time(),
            "method": method,
            "path": path,
            "route": f"{method} (unknown)",
            "request_id": request_id,
        }
        saved: SavedAnswer | None = None
        scope: Scope | None = None
        try:
            api_key = self._authenticate(headers.get("Authorization"))
            found = match_route(method, path)
            if found is None:
                raise invalid(
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                    status=404,
                )
            route, path_args = found
            entry["route"] = f"{method} {route.template}"
            fault = self.injector.before(method, path, existing_object=route.targets_object)
            if fault is not None:
                entry["fault"] = fault.code or fault.type
                raise fault
            version = headers.get("Stripe-Version") or self.state.api_version
            if not _VERSION_RE.match(version):
                raise invalid(f"Invalid Stripe API version: {version}", "stripe_version")
            out_headers["Stripe-Version"] = version
            raw = parse_form(body if method == "POST" else query)
            params = validate(route.params_class, raw)
            idem_key = headers.get("Idempotency-Key") if method == "POST" else None
            if idem_key is not None:
                entry["idempotency_key"] = idem_key
                out_headers["Idempotency-Key"] = idem_key
                if len(idem_key) > 255:
                    raise invalid(
                        "Idempotency-Key must be at most 255 characters long.", "Idempotency-Key"
                    )
                scope = (api_key, idem_key)
                fingerprint = json.dumps(raw, sort_keys=True)
                record, fresh = self._idempotency.reserve(
                    scope, method, path, fingerprint, request_id, self.state.now()
                )
                if not fresh:
                    replay = record
                    assert replay.status is not None
                    entry["replayed"] = True
                    entry["status"] = replay.status
                    return (
                        replay.status,
                        replay.body,
                        {
                            **replay.headers,
                            **out_headers,
                            "Idempotent-Replayed": "true",
                            "Original-Request": replay.request_id,
                        },
                        False,
                        entry,
                    )
                saved = record
            delay = self.injector.latency()
            if delay:
                time.sleep(delay)
            hook = self.while_answering
            if hook is not None:
                hook(method, path)
            ctx = RequestContext(request_id, idem_key)
            with self.state.lock:
                try:
                    status, payload = 200, route.handler(self.state, ctx, params, **path_args)
                except StripeAPIError as exc:
                    status, payload = exc.status, exc.body()
                    out_headers.update(exc.headers)
            encoded = encode_body(payload)
            if saved is not None:
                saved.status, saved.body = status, encoded
                saved.headers = {k: v for k, v in out_headers.items() if k != "Request-Id"}
                saved = None  # done: keep it
            drop = status < 400 and self.injector.should_drop(method, path)
            entry["status"] = status
            if drop:
                entry["dropped"] = True
            return status, encoded, out_headers, drop, entry
        except StripeAPIError as exc:
            if exc.type == "idempotency_error" or exc.code == "idempotency_key_in_use":
                entry["idempotency_error"] = True
            entry["status"] = exc.status
            return exc.status, encode_body(exc.body()), {**out_headers, **exc.headers}, False, entry
        except Exception as exc:  # a bug in the emulator: answer like Stripe's 500
            entry["status"] = 500
            entry["exception"] = repr(exc)
            if self.log_requests:
                traceback.print_exc()
            body = StripeAPIError(500, f"Emulator error: {exc!r}", type="api_error").body()
            return 500, encode_body(body), out_headers, False, entry
        finally:
            if saved is not None and scope is not None:
                self._idempotency.release(scope, saved)  # never finished


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs of concurrent clients (1 s retransmit)


class _Handler(BaseHTTPRequestHandler):
    emulator: StripeEmulator
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.emulator._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.emulator._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.emulator.log_requests:
            sys.stderr.write("stripe-emulator: " + (format % args) + "\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            # the client went away mid-body (a killed process): like Stripe, act on nothing
            self.close_connection = True
            return
        body = raw.decode("utf-8", errors="replace")
        if split.path.startswith("/_emulator/") or split.path == "/_emulator":
            status, payload, ctype = handle_control(
                self.emulator, method, split.path, split.query, body
            )
            self._send(status, payload, {"Content-Type": ctype})
            return
        status, payload, headers, drop, entry = self.emulator.handle_api(
            method, split.path, split.query, body, self.headers
        )
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 2)
        self.emulator._record(entry)
        if drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, payload, {"Content-Type": "application/json", **headers})

    def _send(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, no-store")
        self.end_headers()
        self.wfile.write(payload)


def serve(port: int, host: str = "127.0.0.1", **faults: Any) -> None:
    """Run an emulator in the foreground until interrupted (``billing stripe-emulator``).

    Keyword arguments are fault knobs (see :class:`Faults`), e.g. ``serve(12111, rps=25)``.
    """
    emulator = StripeEmulator(Faults.from_mapping(faults))
    url = emulator.start(host, port)
    print(
        f"Stripe emulator listening on {url} (API version {emulator.state.api_version})", flush=True
    )
    try:
        emulator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
