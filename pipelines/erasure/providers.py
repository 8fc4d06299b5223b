"""Asking the provider apps to erase their copy of a customer (contract section 11).

- **Stripe** keeps the customer object our sync created (name, email, and what a Dashboard user
  added: phone, address, shipping, description). The erasure updates it (`POST
  /v1/customers/{id}`): name and phone the pseudonym, email the pseudonym's address, address
  and shipping unset, the description replaced (Stripe cannot unset an email, a phone or a
  description: its API refuses `""` for them). It does not delete
  it: Stripe's `DELETE /v1/customers/{id}` "prevents any further operations", and the invoices
  we keep for legal retention may still need them (a refund, a credit note, a void, the
  reconciliation snapshot). Finalized Stripe invoices keep their own copy of the customer's
  name and email, which no API call edits: that copy needs Stripe's privacy process (the DPO
  sees it in the command's output and in docs/erasure.md).
- **The custom invoicing integration** (and any channel subscribed to it) gets a signed
  `customer.erased` notification, delivered with the others by the sync and reconcile jobs'
  delivery step, with retries; its receiver deletes or anonymises its copy.

The Stripe call goes through the sync's gateway (limiter, retries, one idempotency key for all
attempts of a request), every attempt recorded in `sync.sync_attempts`, the warehouse never
held while Stripe answers. What could not be done stays `pending` or `failed` in
`billing.erasure_requests` and is tried again by the next `billing customer erase` of the
customer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from pipelines.catalog.models import Catalog
from pipelines.erasure.pseudonyms import email_pseudonym
from pipelines.notifications.events import write_channels

CUSTOMER_ERASED = "customer.erased"
"""The notification announcing an erasure to the integrations (contract section 6, extended)."""

STRIPE_UNSET = ("address", "shipping")
"""Stripe customer fields an erasure unsets (Stripe's `""`; its API allows it for these)."""
STRIPE_DESCRIPTION = "personal data erased on request (GDPR art. 17)"


@dataclass(frozen=True)
class ProviderRequest:
    """One provider app's erasure request and where it stands."""

    provider: str
    external_id: str | None
    action: str
    status: str
    detail: str | None


def stripe_erasure_params(pseudonym: str) -> dict[str, Any]:
    """customers.update parameters: the pseudonym in place of every personal field Stripe
    cannot unset, the others unset."""
    return {"name": pseudonym, "email": email_pseudonym(pseudonym), "phone": pseudonym,
            "description": STRIPE_DESCRIPTION, **{field: "" for field in STRIPE_UNSET}}


def queue_requests(con: duckdb.DuckDBPyConnection, catalog: Catalog, customer_id: str, *,
                   pseudonym: str, erased_at: datetime, now: datetime) -> None:
    """Inside the erasure's transaction: a Stripe request when the customer is mapped to a
    Stripe customer, and the `customer.erased` notification with a delivery per subscribed
    channel (both once per customer: a second erasure adds nothing)."""
    stripe_id = con.execute("""
        SELECT external_id FROM sync.external_ids
        WHERE provider = 'stripe' AND object_type = 'customer' AND internal_id = $id""",
                            {"id": customer_id}).fetchall()
    if stripe_id:
        con.execute("""
            INSERT INTO billing.erasure_requests (customer_id, provider, external_id, action,
                                                  status, requested_at)
            VALUES ($id, 'stripe', $external, 'anonymise', 'pending', $now)
            ON CONFLICT DO NOTHING""",
                    {"id": customer_id, "external": stripe_id[0][0], "now": now}).fetchall()
    message_id = "msg_" + hashlib.sha256(f"{CUSTOMER_ERASED}|{customer_id}".encode()
                                         ).hexdigest()[:32]
    if con.execute("SELECT count(*) FROM notify.events WHERE message_id = $m",
                   {"m": message_id}).fetchall()[0][0]:
        return
    stamp = now.isoformat().replace("+00:00", "Z")
    payload = json.dumps({
        "type": CUSTOMER_ERASED, "timestamp": stamp,
        "data": {"customer": {"id": customer_id, "name": pseudonym,
                              "email": email_pseudonym(pseudonym)},
                 "erased_at": erased_at.isoformat().replace("+00:00", "Z"),
                 "request": "delete or anonymise your copy of this customer's personal data "
                            "(name, email, address, metadata); keep its invoices and amounts"}},
        separators=(",", ":"))
    write_channels(con, catalog)
    con.execute("""
        INSERT INTO notify.events (message_id, event_type, customer_id, occurred_at,
                                   created_at, payload)
        VALUES ($m, $type, $id, $erased_at, $now, $payload)""",
                {"m": message_id, "type": CUSTOMER_ERASED, "id": customer_id,
                 "erased_at": erased_at, "now": now, "payload": payload}).fetchall()
    channels = con.execute("""
        INSERT INTO notify.deliveries (message_id, channel, status, attempts, next_attempt_at,
                                       created_at)
        SELECT $m, channel, 'pending', 0, $now, $now FROM notify.channels
        WHERE list_contains(event_types, $type)
          AND (len(customers) = 0 OR list_contains(customers, $id))
        RETURNING channel""", {"m": message_id, "now": now, "type": CUSTOMER_ERASED,
                               "id": customer_id}).fetchall()
    con.execute("""
        INSERT INTO billing.erasure_requests (customer_id, provider, external_id, action, status,
                                              requested_at, detail)
        VALUES ($id, 'custom_invoicing', $m, 'notify', $status, $now, $detail)
        ON CONFLICT DO NOTHING""",
                {"id": customer_id, "m": message_id, "now": now,
                 "status": "pending" if channels else "done",
                 "detail": (f"{CUSTOMER_ERASED} to channel(s) "
                            f"{', '.join(sorted(c for (c,) in channels))}") if channels else
                           f"no notification channel subscribes to {CUSTOMER_ERASED}"}
                ).fetchall()


def provider_requests(con: duckdb.DuckDBPyConnection, customer_id: str
                      ) -> list[ProviderRequest]:
    """The customer's provider requests, the notification's delivery state folded in."""
    con.execute("""
        UPDATE billing.erasure_requests r SET status = CASE
                WHEN d.failed > 0 THEN 'failed' WHEN d.pending > 0 THEN 'pending' ELSE 'done' END,
            completed_at = CASE WHEN d.pending = 0 AND d.failed = 0
                                THEN coalesce(r.completed_at, d.last) END
        FROM (SELECT message_id, count(*) FILTER (WHERE status = 'pending') AS pending,
                     count(*) FILTER (WHERE status = 'failed') AS failed,
                     max(completed_at) AS last
              FROM notify.deliveries GROUP BY message_id) d
        WHERE r.provider = 'custom_invoicing' AND r.external_id = d.message_id
          AND r.customer_id = $id""", {"id": customer_id}).fetchall()
    return [ProviderRequest(*row) for row in con.execute("""
        SELECT provider, external_id, action, status, detail FROM billing.erasure_requests
        WHERE customer_id = $id ORDER BY provider""", {"id": customer_id}).fetchall()]


OpenWriter = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def anonymise_at_stripe(open_writer: OpenWriter, make_gateway: Callable[..., Any],
                        customer_id: str, *, pseudonym: str, salt: str, now: datetime,
                        run_id: str | None = None) -> ProviderRequest | None:
    """Send the customer's pending Stripe request (if any): read it in one short writer
    session, call Stripe holding nothing, record the attempts and the outcome in another."""
    from pipelines.providers.stripe_sync.client import StripeCallError
    from pipelines.providers.stripe_sync.ledger_writes import CallRecordingSink
    from pipelines.providers.stripe_sync.recording import AttemptCounts
    from pipelines.warehouse import transaction

    with open_writer() as con:
        row = con.execute("""
            SELECT external_id, attempts FROM billing.erasure_requests
            WHERE customer_id = $id AND provider = 'stripe' AND status <> 'done'""",
                          {"id": customer_id}).fetchall()
    if not row:
        return None
    external_id, attempts = row[0]
    calls = CallRecordingSink(run_id=run_id, now=now, summary=AttemptCounts())
    key = f"erase-{customer_id}-{salt[:8]}-{attempts + 1}"
    params = stripe_erasure_params(pseudonym)
    status, detail = "done", (f"Stripe customer {external_id}: name, email and phone "
                              f"pseudonymised, {', '.join(STRIPE_UNSET)} unset")
    try:
        gateway = make_gateway(calls.record_call)
        gateway.call("customers.update", customer_id,
                     lambda o: gateway.client.v1.customers.update(external_id, params=params,
                                                                  options=o),
                     idempotency_key=key)
    except StripeCallError as exc:
        status, detail = "failed", str(exc)[:500]
    except Exception as exc:       # not configured, or unreachable: left for the next run
        status, detail = "pending", f"{type(exc).__name__}: {exc}"[:500]
    with open_writer() as con, transaction(con):
        calls.write_calls(con)
        con.execute("""
            UPDATE billing.erasure_requests SET status = $status, detail = $detail,
                   attempts = attempts + 1,
                   completed_at = CASE WHEN $status = 'done' THEN $now END
            WHERE customer_id = $id AND provider = 'stripe'""",
                    {"status": status, "detail": detail, "now": now, "id": customer_id}
                    ).fetchall()
    return ProviderRequest("stripe", external_id, "anonymise", status, detail)
