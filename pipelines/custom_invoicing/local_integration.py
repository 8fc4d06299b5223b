"""A local custom invoicing integration (an ERP stand-in) for tests and the demo.

It does what a real integration does, over the real wire: it receives the pipeline's signed
notifications on 127.0.0.1 (Standard Webhooks, checked with the channel's secret), keeps its own
invoices, and answers the sync hooks through the integration API with a bearer token:

- `invoice.draft_sync_requested`: creates its draft (its own external ids for the invoice, the
  lines and the discounts) and calls `draft/synchronized`;
- `invoice.issuing_sync_requested`: numbers the invoice in its own series (`ERP-YYYY-NNNN`),
  "sends" it and calls `issuing/synchronized` with a payment reference;
- `pay()`, `fail()`, `refund()`: report payment status like a finance user in the ERP would.

Webhooks are answered 204 at once and processed on a worker thread, as integrations should;
`wait_idle()` lets a test or the demo wait for the answers to be sent.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.api.client import CustomInvoicingClient
from pipelines.notifications.signing import verify_webhook

DRAFT_REQUESTED = "invoice.draft_sync_requested"
ISSUING_REQUESTED = "invoice.issuing_sync_requested"


@dataclass
class ErpInvoice:
    """The integration's own record of one of our invoices."""

    invoice_id: str
    external_id: str
    line_ids: dict[str, str] = field(default_factory=dict)
    number: str | None = None
    payment_id: str | None = None
    events: list[str] = field(default_factory=list)


class LocalCustomInvoicing:
    """The integration: `start()` it, point a notification channel at `webhook_url`, give it a
    token with the `invoices:sync` and `payments:write` scopes."""

    def __init__(self, api_url: str, token: str, webhook_secret: str, *,
                 number_prefix: str = "ERP", answer_hooks: bool = True) -> None:
        self.client = CustomInvoicingClient(api_url, token)
        self.webhook_secret = webhook_secret
        self.number_prefix = number_prefix
        self.answer_hooks = answer_hooks
        self.invoices: dict[str, ErpInvoice] = {}
        self.received: list[dict[str, Any]] = []   # verified notifications, as received
        self.refused: list[str] = []               # why notifications were refused
        self.errors: list[str] = []                # API answers that were not 2xx
        self._lock = threading.Lock()
        self._work: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._seen_ids: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._sequence = 0
        self._numbers = 0       # the ERP's own invoice number series

    # ------------------------------------------------------------------ server
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        integration = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = integration._receive(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._worker, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self.webhook_url

    @property
    def webhook_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the integration is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/billing"

    def stop(self) -> None:
        self._work.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.client.close()

    def __enter__(self) -> LocalCustomInvoicing:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every received notification has been answered."""
        done = threading.Event()
        self._work.put({"__barrier__": done})
        if not done.wait(timeout):
            raise TimeoutError("the local integration did not finish its work in time")

    # ------------------------------------------------------------------ hooks
    def _receive(self, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            verify_webhook(self.webhook_secret, body, headers)
        except ValueError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return 401
        message = json.loads(body)
        webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
        with self._lock:
            if webhook_id in self._seen_ids:   # a retry of a message already taken
                return 204
            self._seen_ids.add(webhook_id)
            self.received.append(message)
        self._work.put(message)
        return 204

    def _worker(self) -> None:
        while True:
            message = self._work.get()
            if message is None:
                return
            barrier = message.get("__barrier__")
            if barrier is not None:
                barrier.set()
                continue
            try:
                self._handle(message)
            except Exception as exc:  # an integration keeps serving after one failure
                with self._lock:
                    self.errors.append(f"{message.get('type')}: {exc}")

    def _handle(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        invoice = (message.get("data") or {}).get("invoice") or {}
        if kind not in (DRAFT_REQUESTED, ISSUING_REQUESTED) or not self.answer_hooks:
            return
        invoice_id = invoice["invoice_id"]
        if kind == DRAFT_REQUESTED:
            self.synchronize_draft(invoice_id, invoice.get("lines") or [])
        else:
            self.issue(invoice_id)

    # ------------------------------------------------------------------ ERP actions
    def synchronize_draft(self, invoice_id: str, lines: list[Mapping[str, Any]]) -> None:
        """Create the ERP draft and tell the pipeline its ids."""
        with self._lock:
            self._sequence += 1
            record = self.invoices.setdefault(
                invoice_id, ErpInvoice(invoice_id, f"erp_inv_{self._sequence:04d}"))
        record.line_ids = {line["line_id"]: f"{record.external_id}_l{index}"
                           for index, line in enumerate(lines, 1)}
        charges = [{"line_id": lid, "external_id": ext} for lid, ext in record.line_ids.items()
                   if _line_type(lines, lid) != "discount"]
        discounts = [{"line_discount_id": lid, "external_id": ext}
                     for lid, ext in record.line_ids.items()
                     if _line_type(lines, lid) == "discount"]
        self._call(self.client.draft_synchronized, invoice_id, external_id=record.external_id,
                   line_external_ids=charges, line_discount_external_ids=discounts)
        record.events.append("draft_synchronized")

    def issue(self, invoice_id: str) -> None:
        """Number the invoice in the ERP's series, send it, and tell the pipeline."""
        record = self.invoices.get(invoice_id)
        if record is None:   # a profile with only the issuing hook: no draft sync came first
            with self._lock:
                self._sequence += 1
                record = self.invoices.setdefault(
                    invoice_id, ErpInvoice(invoice_id, f"erp_inv_{self._sequence:04d}"))
        now = datetime.now(UTC)
        if record.number is None:
            with self._lock:
                self._numbers += 1
                record.number = f"{self.number_prefix}-{now.year}-{self._numbers:04d}"
        record.payment_id = f"{record.external_id}_pay"
        self._call(self.client.issuing_synchronized, invoice_id, invoice_number=record.number,
                   sent_to_customer_at=now.isoformat(), payment_external_id=record.payment_id)
        record.events.append("issuing_synchronized")

    def report_payment(self, invoice_id: str, trigger: str) -> None:
        """Report a payment status (paid, payment_failed, refunded, ...)."""
        self._call(self.client.payment_status, invoice_id, trigger)
        self.invoices.setdefault(invoice_id, ErpInvoice(invoice_id, "")).events.append(trigger)

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception as exc:
            with self._lock:
                self.errors.append(str(exc))
            raise


def _line_type(lines: list[Mapping[str, Any]], line_id: str) -> str | None:
    return next((line.get("line_type") for line in lines if line.get("line_id") == line_id), None)
