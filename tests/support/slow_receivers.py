"""Webhook receivers that misbehave, over real HTTP on 127.0.0.1: one that trickles its answer a
byte at a time, one that answers at once, one that answers 500 with a long body echoing secrets.

Each request is recorded (path and `webhook-id`) when its body has been read; `on_request`, if
set, runs then, in the server's thread, before the answer starts (to look at the warehouse
while the pipeline waits on the answer). A trickle ends when the client hangs up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRICKLE_PATH = "/hooks/trickle"
FAST_PATH = "/hooks/fast"
ECHO_500_PATH = "/hooks/echo-500"
TRICKLED_ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    at: float          # time.monotonic() when the body was read


class SlowReceivers:
    """`trickle_interval_s` between the bytes of a trickled answer; `echo_body` the start of
    the 500's body (sent with the status; the rest of its 100 kB trickles)."""

    def __init__(self, *, trickle_interval_s: float = 0.25, echo_body: bytes = b"") -> None:
        self.trickle_interval_s = trickle_interval_s
        self.echo_body = echo_body
        self.on_request: Callable[[str], None] | None = None
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def __enter__(self) -> SlowReceivers:
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with receivers._lock:
                    receivers.requests.append(Received(
                        self.path, self.headers.get("webhook-id", ""), time.monotonic()))
                if receivers.on_request is not None:
                    receivers.on_request(self.path)
                try:
                    if self.path == FAST_PATH:
                        self.wfile.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                    elif self.path == ECHO_500_PATH:
                        # the status and the echo at once, then the rest of 100 kB a byte at a time
                        head = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100000"
                                b"\r\n\r\n" + receivers.echo_body)
                        self._trickle(head, b"x" * (100_000 - len(receivers.echo_body)))
                    else:
                        self._trickle(b"", TRICKLED_ANSWER)
                except OSError:
                    pass  # the client hung up, as it should
                self.close_connection = True

            def _trickle(self, at_once: bytes, slowly: bytes) -> None:
                self.wfile.write(at_once)
                self.wfile.flush()
                for position in range(len(slowly)):
                    time.sleep(receivers.trickle_interval_s)
                    self.wfile.write(slowly[position:position + 1])
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
