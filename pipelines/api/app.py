"""The integration API (contract section 5) as an ASGI app: custom invoicing callbacks, payment
status, invoice statements (the integration's complete view of our invoices, for
reconciliation), Stripe webhooks, and read-only views integrations use to check where an invoice
stands.

Each request is answered from the API's own store (pipelines.api.store), never the warehouse:
authenticate the bearer token, check its scope, read the body (stopping at its limit and its
deadline), decode it off the event loop, then let the store decide the call in one transaction
(replay, 404, 422, 409 or 202 with the inbox item committed).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
import stripe
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipelines import settings
from pipelines.api import rules
from pipelines.api.catalog_routes import CatalogHandlers, PathIdRefused, path_id_refused
from pipelines.api.events import EventEndpoints
from pipelines.api.store import (
    Answer,
    ApiStore,
    Call,
    TokenInfo,
    canonical_json,
    error_body,
    sha256_hex,
)

log = logging.getLogger("billing.api")

STRIPE_TOLERANCE_S = 300
MAX_BODY_BYTES = 1_000_000
MAX_STATEMENT_BYTES = 32_000_000    # a statement lists every invoice: tens of thousands
MAX_IDEMPOTENCY_KEY = 255
BODY_TIMEOUT_S = 60.0               # a body must arrive within this, by default
STRIPE_SECRET_ENV = "STRIPE_WEBHOOK_SECRET"
PREFIX = "/api/v1"
APP = f"{PREFIX}/apps/custom-invoicing"
CUSTOM = f"{APP}/invoices"
CREDIT_NOTES = f"{APP}/credit-notes"
# body limits other than MAX_BODY_BYTES, per kind of call
BODY_LIMITS = {rules.STATEMENT: MAX_STATEMENT_BYTES}


class Refused(Exception):
    """An answer decided before the store is asked (401, 403, 400, 413, 422)."""

    def __init__(self, answer: Answer, headers: dict[str, str] | None = None) -> None:
        super().__init__(answer.body["error"]["message"])
        self.answer = answer
        self.headers = headers or {}


def _refuse(status: int, code: str, message: str, *, field: str | None = None,
            headers: dict[str, str] | None = None) -> Refused:
    return Refused(Answer(status, error_body(code, message, field=field)), headers)


def _too_large(limit: int) -> Refused:
    return _refuse(413, "body_too_large", f"bodies are limited to {limit} bytes",
                   headers={"Connection": "close"})


def _respond(answer: Answer, headers: dict[str, str] | None = None) -> JSONResponse:
    extra = dict(headers or {})
    if answer.replayed:
        extra["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status_code, headers=extra)


def webhook_secrets() -> list[str]:
    """The Stripe endpoint secrets in STRIPE_WEBHOOK_SECRET (several, separated by spaces or
    commas, while a secret is rotated)."""
    return [s for s in re.split(r"[\s,]+", os.environ.get(STRIPE_SECRET_ENV, "")) if s]


def verify_stripe_signature(payload: str, header: str | None, secrets: list[str]) -> None:
    """Raise stripe.SignatureVerificationError unless one secret signed the payload within the
    tolerance, both ways: the stripe SDK refuses a signature older than the tolerance, and this
    one dated further ahead than it (which the SDK lets through, so a signature made for later
    would be replayable until then)."""
    failure: stripe.SignatureVerificationError | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret,
                                                  tolerance=STRIPE_TOLERANCE_S)
            break
        except stripe.SignatureVerificationError as exc:
            failure = exc
    else:
        raise failure or stripe.SignatureVerificationError("no webhook secret", header, payload)
    signed_at = _signature_timestamp(header or "")
    if signed_at > time.time() + STRIPE_TOLERANCE_S:
        raise stripe.SignatureVerificationError(
            f"Timestamp in the future, outside the tolerance zone ({signed_at})", header, payload)


def _signature_timestamp(header: str) -> int:
    """The `t=` of a Stripe-Signature header the SDK has verified (so it is there, an int)."""
    stamps = [value for key, _, value in (item.strip().partition("=")
                                          for item in header.split(",")) if key == "t"]
    return int(stamps[0])


@dataclass(frozen=True)
class DecodedBody:
    """A request body parsed and checked: the JSON value, and its canonical text."""

    value: Any
    canonical: str


def decode_body(raw: bytes) -> DecodedBody:
    """Parse a body as JSON and refuse (422 naming the field) what no call can take: text that
    is not JSON (NaN and Infinity are not), nesting deeper than rules.MAX_JSON_DEPTH, a string
    that is not Unicode text, a number too large to be finite. Run off the event loop: a
    statement may be 32 MB."""
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise _refuse(422, "validation_error", f"body: nests deeper than "
                      f"{rules.MAX_JSON_DEPTH} levels", field="body") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _refuse(422, "validation_error", f"body: not valid JSON ({exc})",
                      field="body") from None
    problem = rules.check_json_value(value)
    if problem is not None:
        raise _refuse(422, "validation_error", str(problem), field=problem.field)
    return DecodedBody(value, canonical_json(value))


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


class ApiHandlers:
    """The endpoints, bound to one store."""

    def __init__(self, store: ApiStore, body_timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.store = store
        self.body_timeout_s = body_timeout_s

    # ------------------------------------------------------------------ helpers
    async def authorize(self, request: Request, needs: tuple[str, ...], *,
                     allow_query: bool = False) -> TokenInfo:
        header = request.headers.get("authorization")
        secret: str | None = None
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _refuse(401, "invalid_token", "Authorization must be 'Bearer <token>'",
                              headers={"WWW-Authenticate": "Bearer"})
            secret = value.strip()
        elif allow_query:
            secret = request.query_params.get("token")
        if not secret:
            where = " or a ?token= query parameter" if allow_query else ""
            raise _refuse(401, "missing_token",
                          f"an 'Authorization: Bearer <token>' header{where} is required",
                          headers={"WWW-Authenticate": "Bearer"})
        token = await run_in_threadpool(self.store.authenticate, secret)
        if token is None:
            raise _refuse(401, "invalid_token", "the token is unknown or revoked",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not set(needs) & set(token.scopes):
            raise _refuse(403, "insufficient_scope",
                          f"this call needs the scope {' or '.join(needs)}; token "
                          f"{token.name!r} has {', '.join(token.scopes)}",
                          headers={"WWW-Authenticate":
                                   f'Bearer error="insufficient_scope", scope="{needs[0]}"'})
        return token

    async def read_body(self, request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
        """The body, read as it arrives and refused (413) as soon as it passes `limit`, whether
        its length is declared or it comes chunked, or (408) when it has not all arrived
        within the body deadline. Both answers close the connection."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.body_timeout_s):
                async with aclosing(request.stream()) as stream:
                    async for chunk in stream:
                        size += len(chunk)
                        if size > limit:
                            raise _too_large(limit)
                        chunks.append(chunk)
        except TimeoutError:
            raise _refuse(408, "body_timeout", f"the body did not arrive within "
                          f"{self.body_timeout_s:g} s", headers={"Connection": "close"}) from None
        except ClientDisconnect:
            raise _refuse(400, "client_disconnected", "the client left before its body "
                          "arrived") from None
        return b"".join(chunks)

    async def _body(self, request: Request, limit: int = MAX_BODY_BYTES) -> DecodedBody:
        """The body read (`read_body`) and decoded off the event loop (`decode_body`)."""
        return await run_in_threadpool(decode_body, await self.read_body(request, limit))

    @staticmethod
    def _keys(request: Request, family: str, body: DecodedBody,
              token: TokenInfo) -> tuple[str, str]:
        """(request key, fingerprint) of a call: the Idempotency-Key when given, else the call
        itself, within the scope family of the endpoint and the calling token (the same key
        from another token is another call, never its replay)."""
        fingerprint = sha256_hex(request.method, request.url.path, body.canonical)
        caller = str(token.token_id)
        given = request.headers.get("idempotency-key")
        if given is None:
            return sha256_hex("call", family, caller, fingerprint), fingerprint
        if not given.strip() or len(given) > MAX_IDEMPOTENCY_KEY:
            raise _refuse(422, "validation_error", "header Idempotency-Key: must be 1 to "
                          f"{MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key")
        return sha256_hex("idempotency-key", family, caller, given), fingerprint

    # ------------------------------------------------------------------ endpoints
    async def health(self, request: Request) -> Response:
        pending = await run_in_threadpool(self.store.pending_count)
        return JSONResponse({"status": "ok", "pending_items": pending})

    async def callback(self, request: Request, kind: str) -> Response:
        """A custom invoicing call (about the invoice in the path, or a statement about all)."""
        family = rules.KIND_SCOPE[kind]
        token = await self.authorize(request, (family,))
        body = await self._body(request, BODY_LIMITS.get(kind, MAX_BODY_BYTES))
        key, fingerprint = self._keys(request, family, body, token)
        document_id = (request.path_params.get("credit_note_id")
                       or request.path_params.get("invoice_id"))
        call = Call(kind=kind, invoice_id=document_id, body=body.value, token_name=token.name,
                    token_id=token.token_id, request_key=key, fingerprint=fingerprint,
                    received_at=settings.now())
        return _respond(await run_in_threadpool(self.store.accept, call))

    async def draft_synchronized(self, request: Request) -> Response:
        return await self.callback(request, rules.DRAFT_SYNCHRONIZED)

    async def issuing_synchronized(self, request: Request) -> Response:
        return await self.callback(request, rules.ISSUING_SYNCHRONIZED)

    async def payment_status(self, request: Request) -> Response:
        return await self.callback(request, rules.PAYMENT_STATUS)

    async def statement(self, request: Request) -> Response:
        return await self.callback(request, rules.STATEMENT)

    async def update_invoice(self, request: Request) -> Response:
        """Update Invoice: adjustment lines added to or removed from a draft."""
        return await self.callback(request, rules.UPDATE_INVOICE)

    async def credit_note_draft_synchronized(self, request: Request) -> Response:
        return await self.callback(request, rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED)

    async def credit_note_issuing_synchronized(self, request: Request) -> Response:
        return await self.callback(request, rules.CREDIT_NOTE_ISSUING_SYNCHRONIZED)

    async def credit_note(self, request: Request) -> Response:
        await self.authorize(request, (rules.SCOPE_INVOICES_SYNC, rules.SCOPE_PAYMENTS_WRITE))
        credit_note_id = request.path_params["credit_note_id"]
        view = await run_in_threadpool(self.store.credit_note_view, credit_note_id)
        if view is None or view["app"] != rules.CUSTOM_INVOICING_APP:
            return _respond(Answer(404, error_body(
                "credit_note_not_found", f"no custom invoicing credit note {credit_note_id} is "
                "published for the API (yet)")))
        return JSONResponse(view)

    async def invoice(self, request: Request) -> Response:
        await self.authorize(request, (rules.SCOPE_INVOICES_SYNC, rules.SCOPE_PAYMENTS_WRITE))
        invoice_id = request.path_params["invoice_id"]
        view = await run_in_threadpool(self.store.invoice_view, invoice_id)
        if view is None or view["app"] != rules.CUSTOM_INVOICING_APP:
            return _respond(Answer(404, error_body(
                "invoice_not_found", f"no custom invoicing invoice {invoice_id} is published "
                "for the API (yet)")))
        return JSONResponse(view)

    async def inbox_item(self, request: Request) -> Response:
        token = await self.authorize(request, rules.SCOPES)
        item = await run_in_threadpool(self.store.inbox_item, request.path_params["item_id"])
        if item is None or rules.KIND_SCOPE[item.kind] not in token.scopes:
            return _respond(Answer(404, error_body(
                "inbox_item_not_found", f"no inbox item {request.path_params['item_id']} "
                "visible to this token")))
        credit_note = item.kind in rules.CREDIT_NOTE_KINDS
        return JSONResponse({
            "inbox_item_id": item.item_id, "kind": item.kind,
            "invoice_id": None if credit_note else item.invoice_id,
            "credit_note_id": item.invoice_id if credit_note else None,
            "status": item.status, "reason": item.reason,
            "received_at": item.received_at.isoformat(),
            "applied_at": item.applied_at.isoformat() if item.applied_at else None})

    async def stripe_webhook(self, request: Request) -> Response:
        token = await self.authorize(request, (rules.SCOPE_WEBHOOKS_STRIPE,), allow_query=True)
        secrets = webhook_secrets()
        if not secrets:
            return _respond(Answer(503, error_body(
                "webhook_secret_not_configured",
                f"{STRIPE_SECRET_ENV} is not set: Stripe events cannot be verified")))
        raw = await self.read_body(request)
        try:
            payload = raw.decode("utf-8")
            verify_stripe_signature(payload, request.headers.get("stripe-signature"), secrets)
        except (UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
            message = getattr(exc, "user_message", None) or str(exc) or "bad signature"
            return _respond(Answer(400, error_body(
                "invalid_signature", f"Stripe-Signature: {message}", field="Stripe-Signature")))
        event = (await run_in_threadpool(decode_body, raw)).value
        problems = [f for f in ("id", "type")
                    if not isinstance(event, dict) or not isinstance(event.get(f), str)
                    or not event.get(f)]
        if problems:
            return _respond(Answer(422, error_body(
                "validation_error", f"{problems[0]}: a Stripe event needs a non-empty string",
                field=problems[0])))
        event_id = event["id"]
        # Stripe retries an event with new signatures, maybe after its token was rotated: the
        # event id alone is the key
        key = sha256_hex("stripe-event", event_id)
        call = Call(kind=rules.STRIPE_EVENT, invoice_id=None, body=event,
                    token_name=token.name, token_id=token.token_id, request_key=key,
                    fingerprint=key, received_at=settings.now(), event_id=event_id)
        return _respond(await run_in_threadpool(self.store.accept, call))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, f"{request.method} {request.url.path}: {exc.detail}"),
                        status_code=exc.status_code, headers=exc.headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return _respond(exc.answer, exc.headers)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable for %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body("store_unavailable", "the API's store is busy or "
                                   "unavailable; retry the same call"),
                        status_code=503, headers={"Retry-After": "1"})


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("error answering %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "the API failed to answer; nothing was "
                                   "stored, retry the same call"), status_code=500)


class AccessLog:
    """One log line per request without the query string (it may carry a token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, sending)
        log.info("%s %s %s", scope["method"], scope["path"], status[0] if status else "-")


def create_app(store: ApiStore | None = None, *,
               body_timeout_s: float = BODY_TIMEOUT_S) -> Starlette:
    """The API bound to a store (default: BILLING_API_STORE); a request body must arrive within
    `body_timeout_s`."""
    handlers = ApiHandlers(store or ApiStore(), body_timeout_s)
    catalog = CatalogHandlers(handlers, handlers.store)    # customers, subscriptions (CRM)
    events = EventEndpoints(handlers)    # usage events, landed in BILLING_LANDING
    routes = [
        Route(f"{PREFIX}/health", handlers.health, methods=["GET"]),
        Route(f"{CUSTOM}/{{invoice_id}}/draft/synchronized", handlers.draft_synchronized,
              methods=["POST"]),
        Route(f"{CUSTOM}/{{invoice_id}}/issuing/synchronized", handlers.issuing_synchronized,
              methods=["POST"]),
        Route(f"{CUSTOM}/{{invoice_id}}/payment/status", handlers.payment_status,
              methods=["POST"]),
        Route(f"{CUSTOM}/{{invoice_id}}", handlers.invoice, methods=["GET"]),
        Route(f"{CUSTOM}/{{invoice_id}}", handlers.update_invoice, methods=["PATCH"]),
        Route(f"{APP}/statement", handlers.statement, methods=["POST"]),
        Route(f"{CREDIT_NOTES}/{{credit_note_id}}/draft/synchronized",
              handlers.credit_note_draft_synchronized, methods=["POST"]),
        Route(f"{CREDIT_NOTES}/{{credit_note_id}}/issuing/synchronized",
              handlers.credit_note_issuing_synchronized, methods=["POST"]),
        Route(f"{CREDIT_NOTES}/{{credit_note_id}}", handlers.credit_note, methods=["GET"]),
        Route(f"{PREFIX}/inbox-items/{{item_id:int}}", handlers.inbox_item, methods=["GET"]),
        Route(f"{PREFIX}/webhooks/stripe", handlers.stripe_webhook, methods=["POST"]),
        *catalog.routes(PREFIX),
        Route(f"{PREFIX}/events", events.event, methods=["POST"]),
        Route(f"{PREFIX}/events/batch", events.batch, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AccessLog)], lifespan=events.lifespan,
                     exception_handlers={HTTPException: _http_error, Refused: _refused,
                                         PathIdRefused: path_id_refused,
                                         sqlite3.OperationalError: _store_error,
                                         Exception: _internal_error})
