"""A local booking system and finance receiver: the other end of our notifications, for the
booking-system test plan and the demo.

It does what a customer's booking system does with our webhooks, over real HTTP on 127.0.0.1:
each endpoint checks the Standard Webhooks headers with its own secret (400 for missing, stale
or future timestamps, 401 for a signature that does not match), takes each `webhook-id` once
(a retry of a message already taken is answered 204 and changes nothing), and acts on it:

- `POST /hooks/booking`: `invoice.created` / `invoice.issued` tag the customer's bookings of the
  invoice's service period as invoiced (with the invoice id); `invoice.paid` marks them paid and
  records that the customer was notified; `invoice.refunded` flags them; `invoice.voided` puts
  them back to confirmed (to be invoiced again) and flags them; `credit_note.issued` flags the
  bookings of the credited invoice and tells the customer; `invoice.corrected` records what the
  invoice comes to with its correcting documents.
- `POST /hooks/finance`: records an alert for `invoice.payment_failed` and `invoice.refunded`,
  and a correction for `credit_note.created`, `credit_note.issued`, `invoice.voided` and
  `invoice.corrected` (every verified event is kept as received).
- `GET /state`: bookings, customer notifications, invoice corrections, finance alerts and
  corrections, received/refused/duplicate counts, as JSON.

Fault knobs for tests: `script(path, [500, 503])` answers the next requests to `path` with those
statuses (before verifying), `gone(path)` answers 410 from then on (`restore(path)` ends it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.notifications.signing import (
    WebhookHeaderError,
    WebhookVerificationError,
    verify_webhook,
)

BOOKING_PATH = "/hooks/booking"
FINANCE_PATH = "/hooks/finance"
FINANCE_ALERT_TYPES = ("invoice.payment_failed", "invoice.refunded")
FINANCE_CORRECTION_TYPES = ("credit_note.created", "credit_note.issued", "invoice.voided",
                            "invoice.corrected")


@dataclass
class Booking:
    """A customer's booking on a day; the invoice that bills it once one does."""

    booking_id: str
    customer_id: str
    day: str                         # ISO date of the service
    status: str = "confirmed"        # confirmed | invoiced | paid
    invoice_id: str | None = None
    tags: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


@dataclass
class ReceivedRequest:
    """A request as it arrived (kept so tests can check it with a reference library)."""

    path: str
    body: bytes
    headers: dict[str, str]
    status: int
    reason: str = ""


class BookingSystem:
    """`start()` it, point channels at `url(BOOKING_PATH)` / `url(FINANCE_PATH)`."""

    def __init__(self, *, booking_secret: str, finance_secret: str,
                 bookings: Iterable[Booking] = ()) -> None:
        self.secrets = {BOOKING_PATH: booking_secret, FINANCE_PATH: finance_secret}
        self.bookings: dict[str, Booking] = {b.booking_id: b for b in bookings}
        self.customer_notifications: list[dict[str, Any]] = []
        self.finance_alerts: list[dict[str, Any]] = []
        self.finance_corrections: list[dict[str, Any]] = []
        self.invoice_corrections: list[dict[str, Any]] = []
        self.requests: list[ReceivedRequest] = []
        self.events: dict[str, list[dict[str, Any]]] = {BOOKING_PATH: [], FINANCE_PATH: []}
        self.duplicates = 0
        self._taken_webhook_ids: dict[str, set[str]] = {BOOKING_PATH: set(), FINANCE_PATH: set()}
        self._scripted_statuses: dict[str, list[int]] = {}
        self._gone_paths: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ server
    def start(self, host: str = "127.0.0.1", port: int = 0) -> BookingSystem:
        system = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, answer = system.receive(self.path, body, dict(self.headers.items()))
                self._reply(status, answer)

            def do_GET(self) -> None:
                if self.path == "/state":
                    self._reply(200, system.state())
                else:
                    self._reply(404, {"error": f"no such path {self.path}"})

            def _reply(self, status: int, answer: Mapping[str, Any]) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, path: str) -> str:
        if self._server is None:
            raise RuntimeError("the booking system is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> BookingSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def script(self, path: str, statuses: Iterable[int]) -> None:
        """Answer the next requests to `path` with these statuses, then normally."""
        with self._lock:
            self._scripted_statuses.setdefault(path, []).extend(statuses)

    def gone(self, path: str) -> None:
        """Answer 410 Gone to every request to `path` from now on."""
        with self._lock:
            self._gone_paths.add(path)

    def restore(self, path: str) -> None:
        """Serve `path` again after `gone()`."""
        with self._lock:
            self._gone_paths.discard(path)

    # ------------------------------------------------------------------ receiving
    def receive(self, path: str, body: bytes,
                headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Handle one POST; returns the HTTP status and the JSON answer."""
        lowered = {k.lower(): v for k, v in headers.items()}
        with self._lock:
            status, reason = self._answer_before_verifying(path)
            if status is None:
                status, reason = self._verify(path, body, lowered)
            if status is None:
                message = json.loads(body)
                webhook_id = lowered["webhook-id"]
                if webhook_id in self._taken_webhook_ids[path]:
                    self.duplicates += 1
                    status, reason = 204, "duplicate webhook-id: already taken"
                else:
                    self._taken_webhook_ids[path].add(webhook_id)
                    self.events[path].append(message)
                    self._act_on(path, webhook_id, message)
                    status = 204
            self.requests.append(ReceivedRequest(path, body, lowered, status, reason))
        return status, ({"error": reason} if status >= 300 else {})

    def _answer_before_verifying(self, path: str) -> tuple[int | None, str]:
        """404 for an unknown path, 410 for one `gone()`, a `script()`ed status; else None."""
        if path not in self.secrets:
            return 404, f"no such path {path}"
        if path in self._gone_paths:
            return 410, "this endpoint is gone"
        script = self._scripted_statuses.get(path)
        if script:
            return script.pop(0), "scripted failure"
        return None, ""

    def _verify(self, path: str, body: bytes,
                headers: Mapping[str, str]) -> tuple[int | None, str]:
        """400 for bad Standard Webhooks headers, 401 for a bad signature; else None."""
        try:
            verify_webhook(self.secrets[path], body, headers)
        except WebhookHeaderError as exc:
            return 400, str(exc)
        except WebhookVerificationError as exc:
            return 401, str(exc)
        return None, ""

    def _act_on(self, path: str, webhook_id: str, message: Mapping[str, Any]) -> None:
        """What the booking system or finance does with a verified, first-time message."""
        kind = message.get("type")
        data = message.get("data") or {}
        invoice = data.get("invoice") or {}
        note = data.get("credit_note") or {}
        if path == FINANCE_PATH:
            if kind in FINANCE_ALERT_TYPES:
                self.finance_alerts.append({
                    "type": kind, "invoice_id": invoice.get("invoice_id"),
                    "customer_id": (invoice.get("customer") or {}).get("id"),
                    "total": invoice.get("total"), "currency": invoice.get("currency"),
                    "webhook_id": webhook_id})
            elif kind in FINANCE_CORRECTION_TYPES:
                self.finance_corrections.append({
                    "type": kind, "invoice_id": invoice.get("invoice_id"),
                    "credit_note_id": note.get("credit_note_id"),
                    "number": note.get("number") if note else invoice.get("number"),
                    "amount": note.get("total") if note else invoice.get("total"),
                    "currency": invoice.get("currency"),
                    "corrected_total": data.get("corrected_total"),
                    "webhook_id": webhook_id})
            return
        invoice_id = invoice.get("invoice_id")
        customer = (invoice.get("customer") or {}).get("id")
        if kind in ("invoice.created", "invoice.issued"):
            period = invoice.get("period") or {}
            start, end = period.get("start"), period.get("end")
            for booking in self.bookings.values():
                if (booking.customer_id == customer and start and end
                        and date.fromisoformat(start) <= date.fromisoformat(booking.day)
                        < date.fromisoformat(end)
                        and booking.invoice_id in (None, invoice_id)):
                    booking.invoice_id = invoice_id
                    booking.status = "invoiced" if booking.status == "confirmed" else \
                        booking.status
                    if "invoiced" not in booking.tags:
                        booking.tags.append("invoiced")
        elif kind == "invoice.paid":
            paid = [b for b in self.bookings.values() if b.invoice_id == invoice_id]
            for booking in paid:
                booking.status = "paid"
            if paid:
                self.customer_notifications.append({
                    "customer_id": customer, "invoice_id": invoice_id,
                    "number": invoice.get("number"),
                    "booking_ids": sorted(b.booking_id for b in paid),
                    "message": f"payment of {invoice.get('total')} {invoice.get('currency')} "
                               "received, thank you"})
        elif kind == "invoice.refunded":
            kind_of = (data.get("refund") or {}).get("kind", "full")
            for booking in self.bookings.values():
                if booking.invoice_id == invoice_id and f"refunded:{kind_of}" not in booking.flags:
                    booking.flags.append(f"refunded:{kind_of}")
        elif kind == "invoice.voided":
            for booking in self.bookings.values():
                if booking.invoice_id == invoice_id:
                    booking.invoice_id = None
                    booking.status = "confirmed"
                    booking.tags = [t for t in booking.tags if t != "invoiced"]
                    booking.flags.append(f"voided:{invoice_id}")
        elif kind == "credit_note.issued":
            credited = [b for b in self.bookings.values() if b.invoice_id == invoice_id]
            for booking in credited:
                booking.flags.append(f"credited:{note.get('number')}")
            self.customer_notifications.append({
                "customer_id": customer, "invoice_id": invoice_id, "number": note.get("number"),
                "booking_ids": sorted(b.booking_id for b in credited),
                "message": f"credit note {note.get('number')} of {note.get('total')} "
                           f"{note.get('currency')} against invoice {invoice.get('number')}"})
        elif kind == "invoice.corrected":
            self.invoice_corrections.append({
                "invoice_id": invoice_id, "number": invoice.get("number"),
                "documents": [(d.get("document_type"), d.get("number"), d.get("amount"))
                              for d in data.get("correcting_documents") or []],
                "corrected_total": data.get("corrected_total")})

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything the system holds, as served by GET /state."""
        with self._lock:
            return {
                "bookings": {k: asdict(b) for k, b in sorted(self.bookings.items())},
                "customer_notifications": list(self.customer_notifications),
                "finance_alerts": list(self.finance_alerts),
                "finance_corrections": list(self.finance_corrections),
                "invoice_corrections": list(self.invoice_corrections),
                "received": {p: [m.get("type") for m in ms] for p, ms in self.events.items()},
                "refused": [{"path": r.path, "status": r.status, "reason": r.reason}
                            for r in self.requests if r.status >= 300],
                "duplicates": self.duplicates,
            }
