"""Applying the integration API's inbox to the warehouse, in arrival order.

The API stores every accepted call in its own store before answering 2xx; this is the other half:
each pending item is applied in its own warehouse transaction, together with a record of it in
`sync.provider_events`, then marked applied or rejected (with the reason) in the API's store. An
item already recorded in the warehouse (the pipeline stopped between the two writes) is only
marked, never applied twice. Invoice statements (pipelines.custom_invoicing.statement) go the same
way; one superseded by a newer statement is recorded and marked rejected with the reason.
Update Invoice calls (draft adjustments, `invoice_updates`) too; they load the catalog to price
the draft.

One item never holds up the others: an item whose applying fails (an error of the domain rules
or of DuckDB) is rolled back alone, recorded and marked rejected with the error as its reason,
and the run goes on with the next item. Only a warehouse that is itself unwell (I/O, memory, an
interrupt) or an unexpected error fails the run, leaving the item pending for the next one.

With customer shards (BILLING_SHARDS = N > 1) each shard's run applies the items about its own
documents (`item_shard`): the invoice or credit note an item names is looked up among the
documents published to the API's store (integrations act only on published documents), whose
customer gives the shard; an item naming a document no shard published goes to shard 0, which
rejects it as unknown as one warehouse does.

Statements (a view of every shard's documents) and Stripe webhook events (ours only through a
shard's own Stripe mapping) are shared (`SHARED_KINDS`): every shard's run takes its part and
records its share in the API's store, once (`apply_share`); the item is decided when all N
shards have recorded theirs (`ApiStore.record_share`). A shard applies the statement's invoices
and credit notes of its documents (`statement_part`: by the published document's customer;
what names no published document is shard 0's), so the shards' `sync.provider_invoices` and
`sync.provider_credit_notes` together hold the rows one warehouse holds; it records a Stripe
event when its mapping knows the event's object (`webhook_not_ours`), else its share is
`not_ours`, and the item is not ours only once every shard has said so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import duckdb
import polars as pl

from pipelines.api.rules import UPDATE_INVOICE
from pipelines.api.store import ApiStore, InboxItem
from pipelines.catalog.models import Catalog
from pipelines.custom_invoicing.callbacks import (
    KINDS,
    PROVIDER,
    CallbackResult,
    apply_callback,
    inbox_event_id,
    record_callback,
)
from pipelines.custom_invoicing.invoice_updates import apply_update_invoice
from pipelines.custom_invoicing.statement import STATEMENT, apply_statement, complete_record
from pipelines.providers.stripe_sync.inbound import record_provider_events, webhook_not_ours
from pipelines.sharding import shard_of
from pipelines.warehouse import transaction

STRIPE_EVENT = "stripe.event"


@dataclass(frozen=True)
class InboxUpdate:
    applied: int
    rejected: int
    stripe_events: int        # Stripe webhook events handed to sync.provider_events


def _already_recorded(con: duckdb.DuckDBPyConnection,
                      item: InboxItem) -> tuple[str, str | None] | None:
    rows = con.execute("""
        SELECT outcome, detail FROM sync.provider_events
        WHERE provider = $provider AND event_id = $event_id""",
                       {"provider": PROVIDER, "event_id": inbox_event_id(item.item_id)}).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


CatalogLoader = Callable[[], Catalog]
"""Loads the catalog when an item needs it (an Update Invoice call prices a draft); a catalog
that does not load fails the run and the item waits for the next one."""


def _settings_catalog() -> Catalog:
    from pipelines import settings
    from pipelines.catalog import load_catalog

    return load_catalog(settings.catalog_path())


ITEM_FAILURES: tuple[type[Exception], ...] = (
    duckdb.Error, pl.exceptions.PolarsError, ValueError, ArithmeticError, LookupError, TypeError,
    AttributeError)
"""Errors applying one item raises because of that item (a value DuckDB cannot hold, a body the
domain rules cannot read): the item is rejected with the error and the run goes on."""
WAREHOUSE_UNWELL: tuple[type[Exception], ...] = (
    duckdb.IOException, duckdb.OutOfMemoryException, duckdb.InterruptException,
    duckdb.FatalException, duckdb.ConnectionException)
"""DuckDB errors about the warehouse, not the item: they fail the run and the item waits."""


def apply_item(con: duckdb.DuckDBPyConnection, item: InboxItem, *, now: datetime,
               catalog: CatalogLoader | None = None) -> CallbackResult:
    """Apply one inbox item (in its own transaction) and say what became of it. When applying
    it fails (`ITEM_FAILURES`), its transaction is rolled back, so nothing of it is written,
    and it is rejected with the error as its reason, kept in sync.provider_events like any
    refused call."""
    loaded = (catalog or _settings_catalog)() if item.kind == UPDATE_INVOICE else None
    try:
        return _apply_item(con, item, now=now, catalog=loaded)
    except ITEM_FAILURES as exc:
        if isinstance(exc, WAREHOUSE_UNWELL):
            raise
        result = CallbackResult("rejected", failure_reason(exc))
    if item.kind != STRIPE_EVENT:
        with transaction(con):
            record_callback(con, item_id=item.item_id, kind=item.kind,
                            invoice_id=item.invoice_id or "", body=item.body,
                            received_at=item.received_at, result=result, now=now)
    return result


def failure_reason(exc: Exception) -> str:
    """The reason an item that failed to apply is rejected with: the error's kind and the first
    line of its message (DuckDB adds the SQL text after it)."""
    lines = str(exc).strip().splitlines()
    return (f"the warehouse could not apply this call ({type(exc).__name__}: "
            f"{lines[0] if lines else 'no message'}); nothing of it was written")


def _apply_item(con: duckdb.DuckDBPyConnection, item: InboxItem, *, now: datetime,
                catalog: Catalog | None) -> CallbackResult:
    if item.kind == UPDATE_INVOICE:
        assert catalog is not None
        with transaction(con):
            recorded = _already_recorded(con, item)
            if recorded is not None:
                return CallbackResult(recorded[0], recorded[1])
            # a refused update writes nothing (every check comes before the first write)
            result = apply_update_invoice(con, catalog, item, now=now)
            record_callback(con, item_id=item.item_id, kind=item.kind,
                            invoice_id=item.invoice_id or "", body=item.body,
                            received_at=item.received_at, result=result, now=now)
        return result
    if item.kind == STRIPE_EVENT:
        with transaction(con):
            record_provider_events(con, "stripe", [item.body], received_via="webhook", now=now)
        # the Stripe event is applied to statuses with the polled ones, in Stripe's order
        return CallbackResult("applied", None)
    if item.kind not in (*KINDS, STATEMENT):
        return CallbackResult("rejected", f"unknown inbox item kind {item.kind!r}")
    with transaction(con):
        recorded = _already_recorded(con, item)
        if recorded is not None:
            return CallbackResult(recorded[0], recorded[1])
        if item.kind == STATEMENT:
            result = apply_statement(con, item.body)
        else:
            # a refused callback writes nothing (every check comes before the first write)
            result = apply_callback(con, item.kind, item.invoice_id or "", item.body,
                                    actor=item.actor, now=now)
        record_callback(con, item_id=item.item_id, kind=item.kind,
                        invoice_id=item.invoice_id or "", body=item.body,
                        received_at=item.received_at, result=result, now=now)
        if item.kind == STATEMENT:
            complete_record(con, item.item_id, item.body)
    return result


SHARED_KINDS = (STATEMENT, STRIPE_EVENT)
"""Inbox items about no one document: with customer shards every shard takes its share."""


def item_shard(store: ApiStore, item: InboxItem, shards: int) -> int | None:
    """The shard whose run applies `item`: its document's customer's shard (the document as
    published to the API's store); shard 0 for a document no shard published (it is rejected
    there as unknown); None for an item every shard takes a share of (`SHARED_KINDS`). One
    warehouse: 0 for every item."""
    if shards == 1:
        return 0
    if item.kind in SHARED_KINDS:
        return None
    published = store.published_invoice(item.invoice_id) if item.invoice_id else None
    return shard_of(published.customer_id, shards) if published is not None else 0


def item_shards(store: ApiStore, item: InboxItem, shards: int) -> list[int]:
    """The shards whose runs still have to act on a pending item: its document's shard, or, for
    a shared item, every shard that has not recorded its share yet."""
    shard = item_shard(store, item, shards)
    if shard is not None:
        return [shard]
    recorded = store.item_shares(item.item_id, shards)
    return [k for k in range(shards) if k not in recorded]


def statement_part(store: ApiStore, body: Mapping[str, Any], shard: int,
                   shards: int) -> dict[str, Any]:
    """Shard `shard`'s part of a statement: the invoices and credit notes naming a document of
    its customers (as published to the API's store; a credit note by itself, else by the
    invoice it credits), and, for shard 0, every entry naming no published document (an orphan
    of every shard, kept once, as one warehouse keeps it). Each entry is in exactly one part.
    A body that is not a statement is left whole (every shard rejects it alike)."""
    invoices, notes = body.get("invoices"), body.get("credit_notes")
    if not isinstance(invoices, list) or not isinstance(notes, list | None):
        return dict(body)
    customers = store.published_customers()

    def owner(*document_ids: object) -> int:
        for document_id in document_ids:
            if isinstance(document_id, str) and document_id in customers:
                return shard_of(customers[document_id], shards)
        return 0

    def ids(entry: object, *keys: str) -> tuple[object, ...]:
        return tuple(entry.get(key) for key in keys) if isinstance(entry, dict) else ()

    part = dict(body)
    part["invoices"] = [entry for entry in invoices
                        if owner(*ids(entry, "invoice_id")) == shard]
    if notes is not None:
        part["credit_notes"] = [entry for entry in notes
                                if owner(*ids(entry, "credit_note_id", "invoice_id")) == shard]
    return part


def apply_share(con: duckdb.DuckDBPyConnection, store: ApiStore, item: InboxItem, *, shard: int,
                shards: int, now: datetime) -> tuple[str, str | None]:
    """Take shard `shard`'s share of a shared item (`SHARED_KINDS`) in its own transaction and
    say what it was: (`applied` | `not_ours` | `rejected`, the reason). A statement's part is
    applied and recorded in the shard's `sync.provider_events` like a whole statement on one
    warehouse (a part recorded before is only read back, never applied twice); a Stripe event
    is recorded when the shard's mapping knows its object."""
    if item.kind == STATEMENT:
        part = replace(item, body=statement_part(store, item.body, shard, shards))
        result = apply_item(con, part, now=now)
        return ("applied" if result.outcome == "applied" else "rejected"), result.reason
    try:
        with transaction(con):
            reason = webhook_not_ours(con, item.body, first_shard=shard == 0)
            if reason is None:
                record_provider_events(con, "stripe", [item.body], received_via="webhook",
                                       now=now)
    except ITEM_FAILURES as exc:
        if isinstance(exc, WAREHOUSE_UNWELL):
            raise
        return "rejected", failure_reason(exc)
    return ("applied", None) if reason is None else ("not_ours", reason)


def apply_inbox(con: duckdb.DuckDBPyConnection, store: ApiStore, *, now: datetime,
                catalog: CatalogLoader | None = None, shard: int | None = None,
                shards: int = 1) -> InboxUpdate:
    """Apply every pending inbox item in arrival order, read a page at a time; returns the
    counts. An item that fails to apply is rejected with its reason and the run goes on with
    the next (`apply_item`). `catalog` loads the catalog, once, if an item needs it (default:
    BILLING_CATALOG). With customer shards, `shard`'s run applies only the items routed to it
    (`item_shard`), the others stay pending for their shard, and takes its share of each shared
    item it has not taken yet (`apply_share`; counted applied or rejected by its share, a share
    `not_ours` in neither). Then the store forgets decided items and stored answers older than
    the retention period (BILLING_API_RETENTION_DAYS)."""
    from pipelines import settings

    applied = rejected = stripe_events = 0
    load_catalog_once = cache(catalog or _settings_catalog)
    for item in store.each_pending():
        if shard is not None and shards > 1:
            if shard not in item_shards(store, item, shards):
                continue
            if item.kind in SHARED_KINDS:
                outcome, reason = apply_share(con, store, item, shard=shard, shards=shards,
                                              now=now)
                store.record_share(item.item_id, shard, shards, outcome, reason, now)
                applied += outcome == "applied"
                rejected += outcome == "rejected"
                stripe_events += item.kind == STRIPE_EVENT and outcome == "applied"
                continue
        result = apply_item(con, item, now=now, catalog=load_catalog_once)
        status = "applied" if result.outcome == "applied" else "rejected"
        store.mark_item(item.item_id, status, result.reason, now)
        applied += status == "applied"
        rejected += status == "rejected"
        stripe_events += item.kind == STRIPE_EVENT
    store.prune_decided(now - timedelta(days=settings.api_retention_days()))
    return InboxUpdate(applied=applied, rejected=rejected, stripe_events=stripe_events)
