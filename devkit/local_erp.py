"""A local ERP: the stand-in for a customer's own invoicing system connected through a custom
invoicing integration (Umbrella's in the demo), for tests and the demo.

It does what a real integration does, over the real wire: it receives the pipeline's signed
notifications on 127.0.0.1 (Standard Webhooks, checked with the channel's secret), keeps its own
invoices, and answers the sync hooks through the integration API with a bearer token:

- `invoice.draft_sync_requested`: creates its draft (its own external ids for the invoice, the
  lines and the discounts) and calls `draft/synchronized`;
- `invoice.issuing_sync_requested`: numbers the invoice in its own series (`ERP-YYYY-NNNN`),
  "sends" it and calls `issuing/synchronized` with a payment reference;
- `credit_note.draft_sync_requested` / `credit_note.issuing_sync_requested`: the same for a
  credit note against one of our invoices (its own ids, its own series `ERP-CN-YYYY-NNNN`),
  through `credit-notes/{id}/draft/synchronized` and `.../issuing/synchronized`;
- `pay()`, `fail()`, `refund()`, `void()` (or `report_payment(trigger)`): report payment status
  like a finance user in the ERP would;
- `send_statement()`: report its complete view of our invoices and credit notes (a statement)
  for reconciliation.

Like a real ERP it keeps, per invoice, the currency, total and line amounts of the invoice in the
notification it acted on, and its tax as notified (`tax_total`, `total_including_tax`; it never
computes a tax itself; statements report them for a taxed invoice, and a payment in full is the
total including tax), its own status in Stripe's words (`draft` once the draft is synced,
`open` once issued, then `paid`, `void`, `uncollectible`) and the amounts paid and refunded.
Test levers make discrepancies *in the integration*, reported by the next statement only:
`delete()`, `change_total()`, `change_line_amount()`, `mark_paid_outside()`,
`refund_outside()`, `create_orphan()`, `duplicate()`, `change_credit_note_total()`,
`delete_credit_note()`.

Webhooks are answered 204 at once and processed on a worker thread, as integrations should;
`wait_idle()` lets a test or the demo wait for the answers to be sent.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devkit.api_client import CustomInvoicingClient
from pipelines.notifications.signing import verify_webhook

DRAFT_SYNC_REQUESTED = "invoice.draft_sync_requested"
ISSUING_SYNC_REQUESTED = "invoice.issuing_sync_requested"
CREDIT_NOTE_DRAFT_SYNC_REQUESTED = "credit_note.draft_sync_requested"
CREDIT_NOTE_ISSUING_SYNC_REQUESTED = "credit_note.issuing_sync_requested"
HOOKS = (DRAFT_SYNC_REQUESTED, ISSUING_SYNC_REQUESTED, CREDIT_NOTE_DRAFT_SYNC_REQUESTED,
         CREDIT_NOTE_ISSUING_SYNC_REQUESTED)


# what the ERP's invoice status becomes when a payment trigger is reported (Stripe's words;
# a refund leaves an invoice paid, with amount_refunded)
ERP_STATUS_AFTER_TRIGGER = {"paid": "paid", "void": "void",
                            "payment_uncollectible": "uncollectible", "refunded": "paid"}


@dataclass
class ErpLine:
    """A line of an ERP invoice: our line id (None on a line we never sent), its own id and
    amount."""

    line_id: str | None
    external_id: str
    amount: Decimal


@dataclass
class ErpInvoice:
    """The integration's own record of one of our invoices (or of one it made itself: an
    orphan claims an invoice id we may not know, or none)."""

    invoice_id: str | None
    external_id: str
    line_ids: dict[str, str] = field(default_factory=dict)
    number: str | None = None
    payment_id: str | None = None
    events: list[str] = field(default_factory=list)
    currency: str | None = None
    total: Decimal | None = None
    lines: list[ErpLine] = field(default_factory=list)
    status: str = "draft"
    amount_paid: Decimal = Decimal(0)
    amount_refunded: Decimal = Decimal(0)
    tax_total: Decimal = Decimal(0)
    total_including_tax: Decimal | None = None     # None: as `total` (no tax on top)

    @property
    def owed(self) -> Decimal | None:
        """What the customer pays: the total including tax."""
        return self.total if self.total_including_tax is None else self.total_including_tax

    def statement_entry(self) -> dict[str, Any]:
        """This invoice as an invoice statement lists it (exact decimal strings; the tax only
        for a taxed invoice, as an integration that bills no tax need not send it)."""
        return {"external_id": self.external_id, "invoice_id": self.invoice_id,
                "invoice_number": self.number, "currency": self.currency,
                "total": _decimal_text(self.total), "status": self.status,
                "amount_paid": _decimal_text(self.amount_paid),
                "amount_refunded": _decimal_text(self.amount_refunded),
                **_tax_entry(self.tax_total, self.total_including_tax),
                "lines": [{"external_id": line.external_id, "line_id": line.line_id,
                           "amount": _decimal_text(line.amount)} for line in self.lines]}


@dataclass
class ErpCreditNote:
    """The integration's own record of one of our credit notes: what it credits (positive
    amounts, as a credit note shows them), its ids and number, `draft` then `issued`."""

    credit_note_id: str
    external_id: str
    invoice_id: str | None = None
    external_invoice_id: str | None = None
    line_ids: dict[str, str] = field(default_factory=dict)
    number: str | None = None
    currency: str | None = None
    total: Decimal | None = None
    lines: list[tuple[str, str, Decimal]] = field(default_factory=list)
    """(our credit note line id, its id, amount credited) per line."""
    status: str = "draft"
    events: list[str] = field(default_factory=list)
    tax_total: Decimal = Decimal(0)
    total_including_tax: Decimal | None = None

    def statement_entry(self) -> dict[str, Any]:
        """This credit note as a statement lists it (exact decimal strings)."""
        return {"external_id": self.external_id, "credit_note_id": self.credit_note_id,
                "invoice_id": self.invoice_id, "external_invoice_id": self.external_invoice_id,
                "credit_note_number": self.number, "currency": self.currency,
                "total": _decimal_text(self.total), "status": self.status,
                **_tax_entry(self.tax_total, self.total_including_tax),
                "lines": [{"external_id": external, "credit_note_line_id": line_id,
                           "amount": _decimal_text(amount)}
                          for line_id, external, amount in self.lines]}


class LocalErp:
    """The ERP and its integration: `start()` it, point a notification channel at
    `webhook_url`, give it a token with the `invoices:sync` and `payments:write` scopes."""

    def __init__(self, api_url: str, token: str, webhook_secret: str, *,
                 number_prefix: str = "ERP", answer_hooks: bool = True) -> None:
        self.client = CustomInvoicingClient(api_url, token)
        self.webhook_secret = webhook_secret
        self.number_prefix = number_prefix
        self.answer_hooks = answer_hooks
        self.invoices: dict[str, ErpInvoice] = {}
        self.extra_invoices: list[ErpInvoice] = []   # orphans and duplicates (test levers)
        self.latest_notified: dict[str, dict[str, Any]] = {}   # invoice payload per invoice id
        self.credit_notes: dict[str, ErpCreditNote] = {}
        self.latest_credit_notes: dict[str, dict[str, Any]] = {}   # payload per credit note id
        self.received: list[dict[str, Any]] = []   # verified notifications, as received
        self.refused: list[str] = []               # why notifications were refused
        self.errors: list[str] = []                # API answers that were not 2xx
        self._lock = threading.Lock()
        self._pending_messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._taken_webhook_ids: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._last_external_sequence = 0   # the ERP's own ids: erp_inv_NNNN
        self._last_invoice_number = 0      # the ERP's own invoice number series
        self._last_credit_note_sequence = 0   # the ERP's credit note ids: erp_cn_NNNN
        self._last_credit_note_number = 0     # its credit note number series

    # ------------------------------------------------------------------ server
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        integration = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status = integration._accept_webhook(body, dict(self.headers.items()))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._answer_messages, daemon=True)]
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
        self._pending_messages.put(None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self.client.close()

    def __enter__(self) -> LocalErp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every received notification has been answered."""
        done = threading.Event()
        self._pending_messages.put({"__barrier__": done})
        if not done.wait(timeout):
            raise TimeoutError("the local integration did not finish its work in time")

    # ------------------------------------------------------------------ hooks
    def _accept_webhook(self, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            verify_webhook(self.webhook_secret, body, headers)
        except ValueError as exc:
            with self._lock:
                self.refused.append(str(exc))
            return 401
        message = json.loads(body)
        webhook_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
        with self._lock:
            if webhook_id in self._taken_webhook_ids:   # a retry of a message already taken
                return 204
            self._taken_webhook_ids.add(webhook_id)
            self.received.append(message)
            invoice = (message.get("data") or {}).get("invoice") or {}
            if invoice.get("invoice_id"):
                self.latest_notified[invoice["invoice_id"]] = invoice
            note = (message.get("data") or {}).get("credit_note") or {}
            if note.get("credit_note_id"):
                self.latest_credit_notes[note["credit_note_id"]] = note
        self._pending_messages.put(message)
        return 204

    def _answer_messages(self) -> None:
        while True:
            message = self._pending_messages.get()
            if message is None:
                return
            barrier = message.get("__barrier__")
            if barrier is not None:
                barrier.set()
                continue
            try:
                self._answer_hook(message)
            except Exception as exc:  # an integration keeps serving after one failure
                with self._lock:
                    self.errors.append(f"{message.get('type')}: {exc}")

    def _answer_hook(self, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        data = message.get("data") or {}
        if kind not in HOOKS or not self.answer_hooks:
            return
        if kind == CREDIT_NOTE_DRAFT_SYNC_REQUESTED:
            self.synchronize_credit_note_draft(data["credit_note"]["credit_note_id"])
        elif kind == CREDIT_NOTE_ISSUING_SYNC_REQUESTED:
            self.issue_credit_note(data["credit_note"]["credit_note_id"])
        elif kind == DRAFT_SYNC_REQUESTED:
            self.synchronize_draft(data["invoice"]["invoice_id"],
                                   data["invoice"].get("lines") or [])
        else:
            self.issue(data["invoice"]["invoice_id"])

    # ------------------------------------------------------------------ ERP actions
    def synchronize_draft(self, invoice_id: str, lines: list[Mapping[str, Any]]) -> None:
        """Create the ERP draft and tell the pipeline its ids."""
        with self._lock:
            record = self.invoices.setdefault(
                invoice_id, ErpInvoice(invoice_id, self._next_external_id()))
        record.line_ids = {line["line_id"]: f"{record.external_id}_l{index}"
                           for index, line in enumerate(lines, 1)}
        charges = [{"line_id": lid, "external_id": ext} for lid, ext in record.line_ids.items()
                   if _line_type(lines, lid) != "discount"]
        discounts = [{"line_discount_id": lid, "external_id": ext}
                     for lid, ext in record.line_ids.items()
                     if _line_type(lines, lid) == "discount"]
        self._call_api(self.client.draft_synchronized, invoice_id,
                       external_id=record.external_id, line_external_ids=charges,
                       line_discount_external_ids=discounts)
        record.events.append("draft_synchronized")
        with self._lock:
            self._record_as_notified(record, lines)
            record.status = "draft"

    def issue(self, invoice_id: str) -> None:
        """Number the invoice in the ERP's series, send it, and tell the pipeline."""
        record = self.invoices.get(invoice_id)
        if record is None:   # a profile with only the issuing hook: no draft sync came first
            with self._lock:
                record = self.invoices.setdefault(
                    invoice_id, ErpInvoice(invoice_id, self._next_external_id()))
        now = datetime.now(UTC)
        if record.number is None:
            with self._lock:
                record.number = self._next_invoice_number(now)
        record.payment_id = f"{record.external_id}_pay"
        self._call_api(self.client.issuing_synchronized, invoice_id,
                       invoice_number=record.number, sent_to_customer_at=now.isoformat(),
                       payment_external_id=record.payment_id)
        record.events.append("issuing_synchronized")
        with self._lock:
            self._record_as_notified(record, None)
            record.status = "open"

    def synchronize_credit_note_draft(self, credit_note_id: str) -> None:
        """Create the ERP's draft of a credit note (from the notified one: the invoice it
        credits, its lines and amounts) and tell the pipeline its ids."""
        with self._lock:
            record = self._credit_note_record(credit_note_id)
        lines = [{"credit_note_line_id": line_id, "external_id": external}
                 for line_id, external, _ in record.lines]
        self._call_api(self.client.credit_note_draft_synchronized, credit_note_id,
                       external_id=record.external_id, line_external_ids=lines)
        record.events.append("draft_synchronized")

    def issue_credit_note(self, credit_note_id: str) -> None:
        """Number the credit note in the ERP's own series, send it, and tell the pipeline."""
        now = datetime.now(UTC)
        with self._lock:
            record = self._credit_note_record(credit_note_id)
            if record.number is None:
                self._last_credit_note_number += 1
                record.number = (f"{self.number_prefix}-CN-{now.year}-"
                                 f"{self._last_credit_note_number:04d}")
        self._call_api(self.client.credit_note_issuing_synchronized, credit_note_id,
                       sent_to_customer_at=now.isoformat(), credit_note_number=record.number)
        record.events.append("issuing_synchronized")
        with self._lock:
            record.status = "issued"

    def _credit_note_record(self, credit_note_id: str) -> ErpCreditNote:
        """The ERP's record of a credit note, made from its notification the first time (a
        profile with only the issuing hook has no draft sync first). Call with the lock held."""
        record = self.credit_notes.get(credit_note_id)
        if record is not None:
            return record
        note = self.latest_credit_notes[credit_note_id]
        self._last_credit_note_sequence += 1
        external_id = f"erp_cn_{self._last_credit_note_sequence:04d}"
        invoice = self.invoices.get(note["invoice_id"])
        record = ErpCreditNote(
            credit_note_id, external_id, invoice_id=note["invoice_id"],
            external_invoice_id=invoice.external_id if invoice else None,
            currency=note["currency"], total=Decimal(note["total"]),
            tax_total=Decimal(note.get("tax_total") or "0"),
            total_including_tax=(Decimal(note["total_including_tax"])
                                 if note.get("total_including_tax") is not None else None),
            lines=[(line["credit_note_line_id"], f"{external_id}_l{index}",
                    -Decimal(line["amount"]))
                   for index, line in enumerate(note.get("lines") or [], 1)])
        record.line_ids = {line_id: external for line_id, external, _ in record.lines}
        self.credit_notes[credit_note_id] = record
        return record

    def report_payment(self, invoice_id: str, trigger: str) -> None:
        """Report a payment status (paid, payment_failed, refunded, ...)."""
        self._call_api(self.client.payment_status, invoice_id, trigger)
        record = self.invoices.setdefault(invoice_id, ErpInvoice(invoice_id, ""))
        record.events.append(trigger)
        with self._lock:
            if trigger == "paid":
                _settle_in_full(record)
            elif trigger == "refunded":
                _refund_in_full(record)
            record.status = ERP_STATUS_AFTER_TRIGGER.get(trigger, record.status)

    def pay(self, invoice_id: str) -> None:
        """The customer paid: reported as `paid`."""
        self.report_payment(invoice_id, "paid")

    def fail(self, invoice_id: str) -> None:
        """The payment failed: reported as `payment_failed` (the invoice stays open)."""
        self.report_payment(invoice_id, "payment_failed")

    def refund(self, invoice_id: str) -> None:
        """The payment was refunded in full: reported as `refunded`."""
        self.report_payment(invoice_id, "refunded")

    def void(self, invoice_id: str) -> None:
        """The invoice was voided: reported as `void`."""
        self.report_payment(invoice_id, "void")

    def _next_external_id(self) -> str:
        """The ERP's id for a new invoice of its own. Call with the lock held."""
        self._last_external_sequence += 1
        return f"erp_inv_{self._last_external_sequence:04d}"

    def _next_invoice_number(self, now: datetime) -> str:
        """The next number in the ERP's own series (`ERP-YYYY-NNNN`). Call with the lock held."""
        self._last_invoice_number += 1
        return f"{self.number_prefix}-{now.year}-{self._last_invoice_number:04d}"

    def _record_as_notified(self, record: ErpInvoice,
                            lines: list[Mapping[str, Any]] | None) -> None:
        """Keep the invoice as notified (currency, total, line amounts) on the ERP's record;
        `lines`, when given, are the lines the draft was made from. Call with the lock held."""
        invoice = self.latest_notified.get(record.invoice_id or "") or {}
        sent = lines if lines is not None else invoice.get("lines") or []
        amounts = {line["line_id"]: line.get("amount") for line in invoice.get("lines") or []}
        if invoice.get("currency"):
            record.currency = str(invoice["currency"])
        if invoice.get("total") is not None:
            record.total = Decimal(str(invoice["total"]))
            record.tax_total = Decimal(str(invoice.get("tax_total") or "0"))
            including = invoice.get("total_including_tax")
            record.total_including_tax = (Decimal(str(including)) if including is not None
                                          else None)
        kept = []
        for index, line in enumerate(sent, 1):
            line_id = line["line_id"]
            amount = line.get("amount", amounts.get(line_id))
            if amount is None:
                continue
            kept.append(ErpLine(line_id, record.line_ids.get(line_id)
                                or f"{record.external_id}_l{index}", Decimal(str(amount))))
        if kept or not record.lines:
            record.lines = kept

    # ------------------------------------------------------------------ invoice statement
    def statement(self) -> list[dict[str, Any]]:
        """The ERP's complete current view of our invoices, as an invoice statement lists them:
        every invoice it holds (made from a hook's notification, or by a test lever)."""
        with self._lock:
            held = [*self.invoices.values(), *self.extra_invoices]
            return [record.statement_entry() for record in held
                    if record.external_id and record.currency and record.total is not None]

    def credit_note_statement(self) -> list[dict[str, Any]]:
        """The credit notes the ERP holds, as a statement lists them."""
        with self._lock:
            return [record.statement_entry() for record in self.credit_notes.values()]

    def send_statement(self, as_of: datetime | str | None = None) -> dict[str, Any]:
        """Report `statement()` and `credit_note_statement()` through the integration API, as
        of `as_of` (default: now); returns the API's answer (202, with the inbox item)."""
        at = as_of if as_of is not None else datetime.now(UTC)
        answer: dict[str, Any] = self._call_api(self.client.send_statement, self.statement(), at,
                                                credit_notes=self.credit_note_statement())
        return answer

    # ------------------------------------------------------------------ test levers
    # Discrepancies made in the ERP only: nothing is reported to the pipeline but the next
    # statement. Each names the invoice by our invoice id; KeyError when the ERP holds none.
    def _held_invoice(self, invoice_id: str) -> ErpInvoice:
        record = self.invoices.get(invoice_id)
        if record is None or not record.external_id:
            raise KeyError(f"the ERP holds no invoice {invoice_id}")
        return record

    def delete(self, invoice_id: str) -> None:
        """Forget the invoice (and any duplicate of it), as if deleted in the ERP."""
        with self._lock:
            self._held_invoice(invoice_id)
            del self.invoices[invoice_id]
            self.extra_invoices = [r for r in self.extra_invoices if r.invoice_id != invoice_id]

    def change_total(self, invoice_id: str, new_total: Decimal | str) -> None:
        """Edit the invoice's total in the ERP (its lines stay as they were; a tax added on
        top stays what it was, on the new total)."""
        with self._lock:
            _change_total(self._held_invoice(invoice_id), Decimal(str(new_total)))

    def change_line_amount(self, invoice_id: str, line_id: str, amount: Decimal | str) -> None:
        """Edit one line's amount in the ERP (the invoice total stays as it was)."""
        with self._lock:
            record = self._held_invoice(invoice_id)
            line = next((ln for ln in record.lines if ln.line_id == line_id), None)
            if line is None:
                raise KeyError(f"invoice {invoice_id} has no line {line_id} in the ERP")
            line.amount = Decimal(str(amount))

    def mark_paid_outside(self, invoice_id: str) -> None:
        """Paid in the ERP, never reported through payment/status."""
        with self._lock:
            record = self._held_invoice(invoice_id)
            _settle_in_full(record)
            record.status = "paid"

    def refund_outside(self, invoice_id: str) -> None:
        """Refunded in full in the ERP (paid first if it was not), never reported."""
        with self._lock:
            record = self._held_invoice(invoice_id)
            _refund_in_full(record)
            record.status = "paid"

    def create_orphan(self, invoice_id_claimed: str | None, currency: str,
                      total: Decimal | str) -> str:
        """An invoice made in the ERP (one open line of `total`) claiming an invoice id we may
        not know, or none; returns its external id."""
        with self._lock:
            external_id = self._next_external_id()
            amount = Decimal(str(total))
            self.extra_invoices.append(ErpInvoice(
                invoice_id_claimed, external_id, currency=currency, total=amount,
                lines=[ErpLine(None, f"{external_id}_l1", amount)], status="open"))
        return external_id

    def duplicate(self, invoice_id: str) -> str:
        """A second ERP invoice for the same invoice id (same amounts and status, its own ids
        and number); returns its external id."""
        with self._lock:
            record = self._held_invoice(invoice_id)
            external_id = self._next_external_id()
            number = None
            if record.number is not None:
                number = self._next_invoice_number(datetime.now(UTC))
            self.extra_invoices.append(replace(
                record, external_id=external_id, number=number, payment_id=None,
                line_ids={}, events=[],
                lines=[ErpLine(line.line_id, f"{external_id}_l{index}", line.amount)
                       for index, line in enumerate(record.lines, 1)]))
        return external_id

    def change_credit_note_total(self, credit_note_id: str, total: Decimal | str) -> None:
        """Edit a credit note's total in the ERP (its lines stay as they were; a tax added on
        top stays what it was, on the new total)."""
        with self._lock:
            _change_total(self._held_credit_note(credit_note_id), Decimal(str(total)))

    def delete_credit_note(self, credit_note_id: str) -> None:
        """Forget the credit note, as if deleted in the ERP."""
        with self._lock:
            self._held_credit_note(credit_note_id)
            del self.credit_notes[credit_note_id]

    def _held_credit_note(self, credit_note_id: str) -> ErpCreditNote:
        record = self.credit_notes.get(credit_note_id)
        if record is None:
            raise KeyError(f"the ERP holds no credit note {credit_note_id}")
        return record

    def _call_api(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the integration API; a failed call is kept in `errors`, then raised."""
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            with self._lock:
                self.errors.append(str(exc))
            raise


def _decimal_text(amount: Decimal | None) -> str:
    """An exact decimal string, never in exponent notation."""
    return format(amount, "f")


def _tax_entry(tax_total: Decimal, total_including_tax: Decimal | None) -> dict[str, str]:
    """A statement document's tax fields: only for a taxed document."""
    if tax_total == 0 or total_including_tax is None:
        return {}
    return {"tax_total": _decimal_text(tax_total),
            "total_including_tax": _decimal_text(total_including_tax)}


def _change_total(record: ErpInvoice | ErpCreditNote, total: Decimal) -> None:
    """A new total, the tax on top of it unchanged (the statement stays consistent)."""
    if record.total_including_tax is not None and record.total is not None:
        record.total_including_tax += total - record.total
    record.total = total


def _settle_in_full(record: ErpInvoice) -> None:
    """The invoice is paid in full: its total including tax."""
    if record.owed is not None:
        record.amount_paid = record.owed


def _refund_in_full(record: ErpInvoice) -> None:
    """The payment is refunded in full (an unpaid invoice is paid first)."""
    if record.amount_paid == 0:
        _settle_in_full(record)
    record.amount_refunded = record.amount_paid


def _line_type(lines: list[Mapping[str, Any]], line_id: str) -> str | None:
    return next((line.get("line_type") for line in lines if line.get("line_id") == line_id), None)
