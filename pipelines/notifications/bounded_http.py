"""Outbound HTTP that no receiver can stall: a total deadline per request, a cap on the answer.

httpx's timeouts bound each network operation, not the request: a receiver that answers one
byte every few seconds keeps a request open for as long as it likes. Here every operation of a
request (the connect, the TLS handshake, each write of at most WRITE_PIECE_BYTES and each read)
gets at most the time left until the request's deadline, so the request ends by its deadline
whatever the receiver does (name resolution aside: it is the system resolver's). Of the answer
the status line and headers are read (httpcore refuses a head over 100 KB) and, only when the
status is not a 2xx, at most `max_answer_bytes` of the body, for the record; a connection whose
answer was not read to its end is closed. Redirects are never followed: a 3xx is an answer
like any other.

Built on httpcore, httpx's own transport layer, whose `NetworkBackend` is the documented hook
for the sockets a connection pool opens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpcore
import httpx

REQUEST_DEADLINE_SECONDS = 10.0
"""Wall-clock limit of one request, from the connect to the last byte of the answer read."""
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 4096
"""Most of a non-2xx answer's body ever read (what is stored of it is shorter still)."""
WRITE_PIECE_BYTES = 16 * 1024
"""Bodies are written in pieces of this size, the deadline checked before each."""

TRANSPORT_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.UnsupportedProtocol)


class NoAnswer(Exception):
    """The request got no answer: refused, reset, a TLS or protocol failure, or the deadline
    passed before the status line came back."""


@dataclass(frozen=True)
class Answer:
    """What came back: the status, and up to `max_answer_bytes` of a non-2xx body."""

    status: int
    body: bytes = b""


class _Deadline:
    """The monotonic instant the request in flight must end by (one request at a time)."""

    def __init__(self) -> None:
        self.at = math.inf

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        """An operation's timeout cut to the time left; `error` once none is left."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise error("the request's deadline passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), WRITE_PIECE_BYTES):
            self._inner.write(buffer[start:start + WRITE_PIECE_BYTES],
                              self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        # CPython bounds the whole handshake by the socket's timeout, not each read of it
        stream = self._inner.start_tls(ssl_context, server_hostname,
                                       self._deadline.left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._deadline.left(timeout, httpcore.ConnectTimeout), local_address,
            socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not an outbound target")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BoundedHttp:
    """POSTs to one receiver after another, each within `deadline_s`. One request at a time:
    a thread that sends holds its own (connections to a receiver are reused between its
    requests while answers are read to the end)."""

    def __init__(self, *, deadline_s: float = REQUEST_DEADLINE_SECONDS,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.deadline_s = deadline_s
        self.max_answer_bytes = max_answer_bytes
        self._deadline = _Deadline()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=1, retries=0,
            network_backend=_DeadlineBackend(self._deadline))

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """The receiver's answer, or NoAnswer (its message names the failure, never the
        request's headers)."""
        timeouts = {"connect": min(CONNECT_TIMEOUT_SECONDS, self.deadline_s),
                    "read": self.deadline_s, "write": self.deadline_s, "pool": self.deadline_s}
        started = time.monotonic()
        self._deadline.at = started + self.deadline_s
        try:
            with self._pool.stream("POST", url, headers=list(headers.items()), content=body,
                                   extensions={"timeout": timeouts}) as response:
                if 200 <= response.status < 300:
                    return Answer(response.status)
                return Answer(response.status, self._read_some(response))
        except TRANSPORT_ERRORS as exc:
            if time.monotonic() - started >= self.deadline_s:
                raise NoAnswer(f"no answer within the {self.deadline_s:g} s deadline") from None
            raise NoAnswer(f"{type(exc).__name__}: {exc}") from None
        finally:
            self._deadline.at = math.inf

    def _read_some(self, response: httpcore.Response) -> bytes:
        """Up to `max_answer_bytes` of the body, or what arrived by the deadline."""
        received = bytearray()
        try:
            for chunk in response.iter_stream():
                received += chunk
                if len(received) >= self.max_answer_bytes:
                    break
        except TRANSPORT_ERRORS:
            pass  # the status came back: a body cut short is still an answer
        return bytes(received[:self.max_answer_bytes])

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> BoundedHttp:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
