"""The example Python client of the integration API (docs/integration-api.md), as a custom
invoicing integration would call it; the local ERP (`devkit.local_erp`) and the tests use it.

Each call is safe to retry: without an Idempotency-Key the API derives the call's key from its
method, path and body, so a retried call is answered as the first was. Transport errors, 408
(the body arrived too slowly) and 503 (the store busy, or the server at its concurrency limit)
answers are retried a few times; any other non-2xx raises ApiError with the status and body.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import httpx

CUSTOM_INVOICING_APP = "/api/v1/apps/custom-invoicing"
CUSTOM_INVOICES = f"{CUSTOM_INVOICING_APP}/invoices"
CUSTOM_CREDIT_NOTES = f"{CUSTOM_INVOICING_APP}/credit-notes"
RETRIED_STATUSES = (408, 503)     # safe to retry: a replay is answered as the first call


class ApiError(Exception):
    """A non-2xx answer: the HTTP status and the error body (`code`, `message`, `field`,
    `current_state`)."""

    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        self.code: str | None = error.get("code")
        self.field: str | None = error.get("field")
        self.current_state: str | None = error.get("current_state")
        super().__init__(f"HTTP {status_code}: {error.get('message') or body}")


def call_with_retries(http: httpx.Client, method: str, path: str, *, retries: int,
                      **request: Any) -> Any:
    """One API call, retried with backoff after a transport failure or a retried status
    (RETRIED_STATUSES); the decoded answer, or ApiError with the status and body. Every route
    the clients call is safe to retry: an Idempotency-Key, an event id or a same-fields PUT."""
    for attempt in range(retries + 1):
        try:
            response = http.request(method, path, **request)
        except httpx.TransportError:
            if attempt == retries:
                raise
            time.sleep(0.2 * 2 ** attempt)
            continue
        if response.status_code in RETRIED_STATUSES and attempt < retries:
            time.sleep(0.2 * 2 ** attempt)
            continue
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.is_success:
            return payload
        raise ApiError(response.status_code, payload)
    raise AssertionError("unreachable")


class BearerClient:
    """An HTTP client of the integration API holding one bearer token, retrying as
    `call_with_retries` does; usable as a context manager."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0,
                 retries: int = 3) -> None:
        self.retries = retries
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CustomInvoicingClient(BearerClient):
    """Calls the custom invoicing endpoints with a bearer token (scopes `invoices:sync` for
    the sync hooks, `payments:write` for payment status)."""

    def _request(self, method: str, path: str, body: Any = None, *,
                 idempotency_key: str | None = None) -> dict[str, Any]:
        # one key per logical call, so a retry after a lost answer is a replay, not a second call
        if method in ("POST", "PATCH") and idempotency_key is None:
            idempotency_key = f"client-{uuid.uuid4()}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return call_with_retries(self.http, method, path, retries=self.retries,
                                 json=body, headers=headers)

    def draft_synchronized(self, invoice_id: str, *, external_id: str,
                           invoice_number: str | None = None,
                           line_external_ids: Sequence[Mapping[str, str]] = (),
                           line_discount_external_ids: Sequence[Mapping[str, str]] = (),
                           idempotency_key: str | None = None) -> dict[str, Any]:
        """The integration created its draft: its external ids for the invoice, its lines
        (`{"line_id", "external_id"}`) and discounts (`{"line_discount_id", "external_id"}`)."""
        invoicing: dict[str, Any] = {"external_id": external_id}
        if invoice_number is not None:
            invoicing["invoice_number"] = invoice_number
        if line_external_ids:
            invoicing["line_external_ids"] = [dict(x) for x in line_external_ids]
        if line_discount_external_ids:
            invoicing["line_discount_external_ids"] = [dict(x)
                                                       for x in line_discount_external_ids]
        return self._request("POST", f"{CUSTOM_INVOICES}/{invoice_id}/draft/synchronized",
                             {"invoicing": invoicing}, idempotency_key=idempotency_key)

    def issuing_synchronized(self, invoice_id: str, *, sent_to_customer_at: str | datetime,
                             invoice_number: str | None = None,
                             payment_external_id: str | None = None,
                             idempotency_key: str | None = None) -> dict[str, Any]:
        """The integration issued the invoice and sent it to the customer."""
        sent = (sent_to_customer_at.isoformat() if isinstance(sent_to_customer_at, datetime)
                else sent_to_customer_at)
        invoicing: dict[str, Any] = {"sent_to_customer_at": sent}
        if invoice_number is not None:
            invoicing["invoice_number"] = invoice_number
        body: dict[str, Any] = {"invoicing": invoicing}
        if payment_external_id is not None:
            body["payment"] = {"external_id": payment_external_id}
        return self._request("POST", f"{CUSTOM_INVOICES}/{invoice_id}/issuing/synchronized", body,
                             idempotency_key=idempotency_key)

    def payment_status(self, invoice_id: str, trigger: str, *,
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Report a payment status: paid, payment_failed, payment_uncollectible,
        payment_overdue, action_required, void or refunded."""
        return self._request("POST", f"{CUSTOM_INVOICES}/{invoice_id}/payment/status",
                             {"trigger": trigger}, idempotency_key=idempotency_key)

    def credit_note_draft_synchronized(
            self, credit_note_id: str, *, external_id: str, credit_note_number: str | None = None,
            line_external_ids: Sequence[Mapping[str, str]] = (),
            idempotency_key: str | None = None) -> dict[str, Any]:
        """The integration created its draft of a credit note: its id for the credit note and
        its lines (`{"credit_note_line_id", "external_id"}`), optionally its own number."""
        invoicing: dict[str, Any] = {"external_id": external_id}
        if credit_note_number is not None:
            invoicing["credit_note_number"] = credit_note_number
        if line_external_ids:
            invoicing["line_external_ids"] = [dict(x) for x in line_external_ids]
        return self._request("POST", f"{CUSTOM_CREDIT_NOTES}/{credit_note_id}/draft/synchronized",
                             {"invoicing": invoicing}, idempotency_key=idempotency_key)

    def credit_note_issuing_synchronized(
            self, credit_note_id: str, *, sent_to_customer_at: str | datetime,
            credit_note_number: str | None = None,
            idempotency_key: str | None = None) -> dict[str, Any]:
        """The integration issued the credit note and sent it to the customer."""
        sent = (sent_to_customer_at.isoformat() if isinstance(sent_to_customer_at, datetime)
                else sent_to_customer_at)
        invoicing: dict[str, Any] = {"sent_to_customer_at": sent}
        if credit_note_number is not None:
            invoicing["credit_note_number"] = credit_note_number
        return self._request("POST",
                             f"{CUSTOM_CREDIT_NOTES}/{credit_note_id}/issuing/synchronized",
                             {"invoicing": invoicing}, idempotency_key=idempotency_key)

    def send_statement(self, invoices: Sequence[Mapping[str, Any]], as_of: str | datetime, *,
                       credit_notes: Sequence[Mapping[str, Any]] | None = None,
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Report the integration's complete current view of our invoices (an invoice
        statement, `invoices:sync`): each `{"external_id", "invoice_id", "invoice_number",
        "currency", "total", "status", "amount_paid", "amount_refunded", "lines":
        [{"external_id", "line_id", "amount"}]}` as of `as_of` (an aware datetime or an ISO-8601
        instant with offset), and its credit notes, each `{"external_id", "credit_note_id",
        "invoice_id", "external_invoice_id", "credit_note_number", "currency", "total",
        "status", "lines": [{"external_id", "credit_note_line_id", "amount"}]}`. Amounts may be
        Decimal (sent as exact decimal strings) or strings."""
        at = as_of.isoformat() if isinstance(as_of, datetime) else as_of
        body: dict[str, Any] = {"as_of": at, "invoices": [_exact_decimals(dict(invoice))
                                                          for invoice in invoices]}
        if credit_notes is not None:
            body["credit_notes"] = [_exact_decimals(dict(note)) for note in credit_notes]
        return self._request("POST", f"{CUSTOM_INVOICING_APP}/statement", body,
                             idempotency_key=idempotency_key)

    def update_invoice(self, invoice_id: str, *, add: Sequence[Mapping[str, Any]] = (),
                       remove: Sequence[str] = (),
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Adjust a draft (`draft` or `draft.syncing`): add adjustment lines, each
        `{"description", "amount"}` or `{"description", "quantity", "unit_price"}` (Decimal or
        decimal strings, negative for a credit), and remove adjustment lines by line id. The
        answer's `adjustment_line_ids` are the ids the added lines get."""
        body: dict[str, Any] = {}
        if add:
            body["add"] = [_exact_decimals(dict(line)) for line in add]
        if remove:
            body["remove"] = list(remove)
        return self._request("PATCH", f"{CUSTOM_INVOICES}/{invoice_id}", body,
                             idempotency_key=idempotency_key)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """The invoice as published for the API, with its projected state."""
        return self._request("GET", f"{CUSTOM_INVOICES}/{invoice_id}")

    def credit_note(self, credit_note_id: str) -> dict[str, Any]:
        """The credit note as published for the API, with its projected state."""
        return self._request("GET", f"{CUSTOM_CREDIT_NOTES}/{credit_note_id}")

    def inbox_item(self, item_id: int) -> dict[str, Any]:
        """What became of an accepted call: pending, applied, or rejected with the reason."""
        return self._request("GET", f"/api/v1/inbox-items/{item_id}")


def _exact_decimals(value: Any) -> Any:
    """`value` with every Decimal as its exact decimal string (JSON has no exact number)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {key: _exact_decimals(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_exact_decimals(item) for item in value]
    return value
