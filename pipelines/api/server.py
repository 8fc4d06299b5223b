"""How `billing api` serves the integration API: uvicorn over HTTP/1.1 (h11) with limits, so no
client can hold the server by being slow or by opening connections.

- at most `max_concurrency` connections and requests at once; beyond that uvicorn answers 503;
- a request's head (request line and headers) must arrive within `header_timeout_s` of the
  connection opening or of the previous answer (uvicorn has no such deadline of its own); at
  most MAX_HEAD_BYTES of it are held while it is incomplete (h11's limit, answered 400);
- an idle keep-alive connection is closed after `keep_alive_s`;
- a body must arrive within `body_timeout_s` (408, the app's deadline) and stay within its
  size limit (413, as soon as it is passed).

It serves plain HTTP: beyond the loopback interface a reverse proxy belongs in front (TLS, and
limits per client), and `billing api` says so when `--host` is not a loopback address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from contextlib import suppress
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipelines import settings
from pipelines.api.app import BODY_TIMEOUT_S

log = logging.getLogger("billing.api")

MAX_HEAD_BYTES = 16_384     # request line and headers together
GRACEFUL_SHUTDOWN_S = 10


@dataclass(frozen=True)
class ServerLimits:
    """What the server allows one client: each from its environment variable."""

    max_concurrency: int = 64          # BILLING_API_MAX_CONCURRENCY
    header_timeout_s: float = 10.0     # BILLING_API_HEADER_TIMEOUT_S
    keep_alive_s: float = 5.0          # BILLING_API_KEEP_ALIVE_S
    body_timeout_s: float = BODY_TIMEOUT_S   # BILLING_API_BODY_TIMEOUT_S

    @classmethod
    def from_environment(cls) -> ServerLimits:
        """The limits the environment sets, the defaults for the others; a ValueError names a
        variable that is not a positive number."""
        default = cls()
        return cls(
            max_concurrency=int(settings.positive_number("BILLING_API_MAX_CONCURRENCY",
                                                         default.max_concurrency)),
            header_timeout_s=settings.positive_number("BILLING_API_HEADER_TIMEOUT_S",
                                                      default.header_timeout_s),
            keep_alive_s=settings.positive_number("BILLING_API_KEEP_ALIVE_S",
                                                  default.keep_alive_s),
            body_timeout_s=settings.positive_number("BILLING_API_BODY_TIMEOUT_S",
                                                    default.body_timeout_s))


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every request head: while a connection waits
    for one (just opened, or after an answer), it has `head_timeout_s` to send it complete, or
    it is closed. uvicorn's keep-alive timer stops at the first byte, so without this a client
    sending a header byte now and then holds its connection, and a place under the concurrency
    limit, for ever."""

    head_timeout_s: float = ServerLimits.header_timeout_s
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch_head()

    def handle_events(self) -> None:
        super().handle_events()
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def _watch_head(self) -> None:
        """Run the deadline while the connection waits for a request head, and only then."""
        waiting = (self.conn.their_state is h11.IDLE
                   and (self.cycle is None or self.cycle.response_complete))
        if not waiting:
            self._stop_head_deadline()
        elif self._head_deadline is None and not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.transport.is_closing():
            return
        log.info("closed a connection from %s: no complete request head within %g s",
                 self.client[0] if self.client else "?", self.head_timeout_s)
        with suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def protocol_with_head_deadline(head_timeout_s: float) -> type[HeadDeadlineProtocol]:
    """The protocol class uvicorn builds each connection with, with this head deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,),
                {"head_timeout_s": head_timeout_s})


def exposure_warning(host: str) -> str | None:
    """What to tell an operator serving on `host`: nothing on a loopback address; beyond it,
    that a reverse proxy belongs in front."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass
    return (f"the integration API listens on {host}, beyond this machine's loopback: it "
            "serves plain HTTP with per-server limits only; put a reverse proxy in front of it "
            "(TLS, request and connection limits per client; docs/security.md)")


def serve(app: object, *, host: str, port: int, limits: ServerLimits) -> None:
    """Run `app` with uvicorn under `limits` until stopped. uvicorn's access log stays off: it
    would print query strings, which may carry a token (the app logs requests without them)."""
    warning = exposure_warning(host)
    if warning:
        log.warning(warning)
    uvicorn.run(app, host=host, port=port,  # type: ignore[arg-type]
                http=protocol_with_head_deadline(limits.header_timeout_s),
                h11_max_incomplete_event_size=MAX_HEAD_BYTES,
                limit_concurrency=limits.max_concurrency,
                timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
                access_log=False, log_level="info")
