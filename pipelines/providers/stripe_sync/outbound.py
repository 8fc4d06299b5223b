"""Outbound sync: invoices of `stripe` billing profiles become Stripe invoices, exactly once.

For each invoice ready to issue: ensure the Stripe customer, create the invoice
(`auto_advance=false`), add its lines in one `add_lines` call, finalize, send it when the
customer pays by invoice, and check that Stripe's total equals the ledger's before our invoice
moves `issuing.syncing` -> `issued` -> `payment_processing.pending`.

Exactly once: every write carries a deterministic idempotency key, so a retry or a re-run
within Stripe's 24 h window gets the saved answer. Past that (or when the parameters changed),
an invoice or customer an earlier run may have reached is first looked up (mapping in
`sync.external_ids`, else Stripe's search by our metadata) and its lines listed, so a
half-built invoice is completed, never duplicated.

Stripe calls run in a thread pool, one customer per task (its calls in order); the warehouse is
written by the calling thread only, fed through a queue, so attempts and mappings are durable as
they happen.
"""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from time import monotonic
from typing import Any

import duckdb
import polars as pl
import stripe

from pipelines.alerts import Alert, raise_alerts, resolve_alerts
from pipelines.invoicing.status import StatusChange, apply_status_changes
from pipelines.providers.stripe_sync.client import (
    Attempt,
    StripeCallError,
    StripeGateway,
    metadata,
)
from pipelines.rating.money import minor_units
from pipelines.warehouse import run_sql, sql, transaction

PROVIDER = "stripe"
ACTOR = "stripe_sync"
MAX_LINES = 250  # Stripe's limit of line items on one invoice
KEY_VERSION = "v1"


class SyncRefused(Exception):
    """An invoice the sync will not send as it is (too many lines, an amount Stripe cannot
    represent); it stays in `issuing.sync_failed` with this message."""


# ---------------------------------------------------------------------------- pure rules


@dataclass(frozen=True)
class SyncLine:
    line_id: str
    line_type: str
    description: str
    amount: Decimal
    period_start: date
    period_end: date


@dataclass(frozen=True)
class SyncCustomer:
    customer_id: str
    name: str
    email: str | None
    external_id: str | None
    needs_search: bool


@dataclass(frozen=True)
class SyncInvoice:
    invoice_id: str
    status: str
    customer_id: str
    subscription_id: str
    billing_month: str
    currency: str
    total: Decimal
    collection_method: str
    days_until_due: int
    invoice_number: str | None
    external_id: str | None
    needs_search: bool
    lines: tuple[SyncLine, ...] = ()


def to_minor(amount: Decimal, currency: str, what: str) -> int:
    """An exact amount in the currency's minor units (cents); a fraction of a cent is an
    error naming `what`, never rounded here (lines were rounded once, when rated)."""
    scaled = amount.scaleb(minor_units(currency.upper()))
    if scaled != scaled.to_integral_value():
        raise SyncRefused(f"{what}: {amount} {currency.upper()} is not a whole number of minor "
                          f"units ({minor_units(currency.upper())} decimals)")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Decimal:
    """Stripe's integer minor units back to a major-unit Decimal."""
    return Decimal(amount).scaleb(-minor_units(currency.upper()))


def key(internal_id: str, operation: str, variant: str = "") -> str:
    """The deterministic idempotency key of one write about one of our objects."""
    return f"bp:{internal_id}:{operation}{':' + variant if variant else ''}:{KEY_VERSION}"


def check_invoice(invoice: SyncInvoice) -> None:
    """Refuse what Stripe cannot take as it is, before any call."""
    if len(invoice.lines) > MAX_LINES:
        raise SyncRefused(f"invoice {invoice.invoice_id} has {len(invoice.lines)} lines; Stripe "
                          f"allows at most {MAX_LINES} per invoice (lines are not merged)")
    if invoice.total < 0:
        raise SyncRefused(f"invoice {invoice.invoice_id} total {invoice.total} is negative; "
                          "Stripe would turn it into a credit")
    lines_total = sum((to_minor(line.amount, invoice.currency, f"line {line.line_id} amount")
                       for line in invoice.lines), 0)
    total = to_minor(invoice.total, invoice.currency, f"invoice {invoice.invoice_id} total")
    if lines_total != total:
        raise SyncRefused(f"invoice {invoice.invoice_id}: lines sum to {lines_total} minor units "
                          f"but the total is {total}")


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def customer_params(customer: SyncCustomer) -> dict[str, Any]:
    params: dict[str, Any] = {"name": customer.name,
                              "metadata": {"customer_id": customer.customer_id}}
    if customer.email:
        params["email"] = customer.email
    return params


def invoice_params(invoice: SyncInvoice, stripe_customer: str) -> dict[str, Any]:
    """invoices.create parameters: a draft that never advances on its own."""
    metadata = {"invoice_id": invoice.invoice_id, "customer_id": invoice.customer_id,
                "subscription_id": invoice.subscription_id,
                "billing_month": invoice.billing_month}
    if invoice.invoice_number:
        metadata["invoice_number"] = invoice.invoice_number
    params: dict[str, Any] = {
        "customer": stripe_customer, "auto_advance": False,
        "collection_method": invoice.collection_method,
        "currency": invoice.currency.lower(), "metadata": metadata,
    }
    if invoice.collection_method == "send_invoice":
        params["days_until_due"] = invoice.days_until_due
    return params


def line_params(invoice: SyncInvoice, line: SyncLine) -> dict[str, Any]:
    """One add_lines entry: the exact amount in minor units (discounts negative)."""
    end = max(line.period_end, line.period_start)
    return {
        "amount": to_minor(line.amount, invoice.currency, f"line {line.line_id} amount"),
        "description": line.description[:500] or line.line_type,
        "discountable": False,
        "metadata": {"line_id": line.line_id, "invoice_id": invoice.invoice_id},
        "period": {"start": _epoch(line.period_start), "end": _epoch(end)},
    }


def lines_key(lines: Sequence[SyncLine]) -> str:
    """A digest of the lines one add_lines call carries, so its key differs when a re-run
    adds another set (the rest of a half-built invoice)."""
    digest = hashlib.sha256("|".join(line.line_id for line in lines).encode()).hexdigest()
    return digest[:20]


# ---------------------------------------------------------------------------- worker side


@dataclass
class InvoiceResult:
    """What the sync of one invoice ended with."""

    invoice_id: str
    ok: bool
    external_id: str | None = None
    number: str | None = None
    hosted_url: str | None = None
    sent: bool = False
    error: str | None = None
    line_ids: dict[str, str] = field(default_factory=dict)  # our line id -> Stripe line id


@dataclass(frozen=True)
class Mapping:
    object_type: str
    internal_id: str
    external_id: str


Emit = Callable[[object], None]


def _search_one(gateway: StripeGateway, service: Any, operation: str, internal_id: str,
                query: str) -> Any | None:
    found = gateway.call(operation, internal_id,
                         lambda o: service.search(params={"query": query, "limit": 10},
                                                  options=o))
    data = list(found.data)
    if len(data) > 1:
        raise SyncRefused(f"{len(data)} Stripe objects match {query}: resolve the duplicates "
                          "at Stripe before syncing again")
    return data[0] if data else None


def ensure_customer(gateway: StripeGateway, customer: SyncCustomer, emit: Emit) -> str:
    """The Stripe customer of our customer: mapped, else found by metadata, else created."""
    if customer.external_id:
        return customer.external_id
    v1 = gateway.client.v1
    query = f"metadata['customer_id']:'{customer.customer_id}'"
    found = None
    if customer.needs_search:
        found = _search_one(gateway, v1.customers, "customers.search", customer.customer_id,
                            query)
    if found is None:
        params = customer_params(customer)
        try:
            found = gateway.call(
                "customers.create", customer.customer_id,
                lambda o: v1.customers.create(params=params, options=o),
                key(customer.customer_id, "customer.create"))
        except StripeCallError as exc:
            # the key was used with other details (name or email changed since): look it up
            if not isinstance(exc.cause, stripe.IdempotencyError):
                raise
            found = _search_one(gateway, v1.customers, "customers.search",
                                customer.customer_id, query)
            if found is None:
                raise
    emit(Mapping("customer", customer.customer_id, found.id))
    return str(found.id)


def _stripe_lines(gateway: StripeGateway, stripe_invoice: Any, invoice_id: str) -> list[Any]:
    """Every line of a Stripe invoice (the invoice object carries only the first ten)."""
    lines = stripe_invoice.lines
    if not lines.has_more:
        return list(lines.data)
    v1 = gateway.client.v1
    out: list[Any] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["starting_after"] = after
        page = gateway.call(
            "invoices.lines.list", invoice_id,
            lambda o, p=params: v1.invoices.line_items.list(stripe_invoice.id, params=p,
                                                            options=o))
        out.extend(page.data)
        if not page.has_more or not page.data:
            return out
        after = page.data[-1].id


def _line_map(lines: Iterable[Any], invoice: SyncInvoice) -> dict[str, Any]:
    """Stripe's lines by our line id; a line there twice, or one we do not know, is an error
    (something other than this sync changed the invoice)."""
    by_id: dict[str, Any] = {}
    for line in lines:
        ours = metadata(line).get("line_id")
        if ours is None or ours in by_id:
            raise SyncRefused(f"Stripe invoice of {invoice.invoice_id} has an unexpected line "
                              f"{line.id} (line_id {ours!r}); fix it at Stripe, then re-sync")
        by_id[ours] = line
    return by_id


def sync_invoice(gateway: StripeGateway, invoice: SyncInvoice, stripe_customer: str,
                 emit: Emit) -> InvoiceResult:
    """Create (or complete) the invoice at Stripe, finalize and send it, and check it."""
    v1 = gateway.client.v1
    iid = invoice.invoice_id
    stripe_invoice: Any = None
    if invoice.external_id:
        stripe_invoice = gateway.call("invoices.retrieve", iid,
                                      lambda o: v1.invoices.retrieve(invoice.external_id,
                                                                     options=o))
    elif invoice.needs_search:
        stripe_invoice = _search_one(gateway, v1.invoices, "invoices.search", iid,
                                     f"metadata['invoice_id']:'{iid}'")
    fresh = False
    if stripe_invoice is None:
        params = invoice_params(invoice, stripe_customer)
        stripe_invoice = gateway.call("invoices.create", iid,
                                      lambda o: v1.invoices.create(params=params, options=o),
                                      key(iid, "invoice.create"))
        fresh = stripe_invoice.lines.data == [] and not stripe_invoice.lines.has_more
    emit(Mapping("invoice", iid, stripe_invoice.id))
    if stripe_invoice.status == "draft":
        present = {} if fresh else _line_map(_stripe_lines(gateway, stripe_invoice, iid),
                                             invoice)
        missing = [line for line in invoice.lines if line.line_id not in present]
        if missing:
            params = {"lines": [line_params(invoice, line) for line in missing]}
            stripe_invoice = gateway.call(
                "invoices.add_lines", iid,
                lambda o: v1.invoices.add_lines(stripe_invoice.id, params=params, options=o),
                key(iid, "invoice.add_lines", lines_key(missing)))
        stripe_invoice = gateway.call(
            "invoices.finalize_invoice", iid,
            lambda o: v1.invoices.finalize_invoice(stripe_invoice.id,
                                                   params={"auto_advance": False}, options=o),
            key(iid, "invoice.finalize"))
    elif stripe_invoice.status not in ("open", "paid", "uncollectible"):
        raise SyncRefused(f"Stripe invoice {stripe_invoice.id} of {iid} is "
                          f"{stripe_invoice.status}; it cannot be issued")
    lines = _line_map(_stripe_lines(gateway, stripe_invoice, iid), invoice)
    verify(invoice, stripe_invoice, lines)
    sent = False
    if invoice.collection_method == "send_invoice" and stripe_invoice.status == "open":
        stripe_invoice = gateway.call(
            "invoices.send_invoice", iid,
            lambda o: v1.invoices.send_invoice(stripe_invoice.id, options=o),
            key(iid, "invoice.send"))
        sent = True
    return InvoiceResult(iid, True, stripe_invoice.id, stripe_invoice.number,
                         stripe_invoice.hosted_invoice_url, sent,
                         line_ids={ours: line.id for ours, line in lines.items()})


def verify(invoice: SyncInvoice, stripe_invoice: Any, lines: dict[str, Any]) -> None:
    """Stripe's invoice must carry exactly our lines and amounts and our total."""
    currency = invoice.currency
    want = to_minor(invoice.total, currency, f"invoice {invoice.invoice_id} total")
    if stripe_invoice.currency != currency.lower() or stripe_invoice.total != want:
        raise SyncRefused(
            f"Stripe total {from_minor(stripe_invoice.total, stripe_invoice.currency)} "
            f"{stripe_invoice.currency.upper()} differs from the ledger total "
            f"{invoice.total} {currency.upper()} for {invoice.invoice_id}")
    ours = {line.line_id: to_minor(line.amount, currency, line.line_id)
            for line in invoice.lines}
    theirs = {line_id: line.amount for line_id, line in lines.items()}
    if ours != theirs:
        raise SyncRefused(f"Stripe lines of {invoice.invoice_id} differ from the ledger: "
                          f"{len(theirs)} at Stripe, {len(ours)} in the ledger")


def sync_customer(gateway: StripeGateway, customer: SyncCustomer,
                  invoices: Sequence[SyncInvoice], emit: Emit) -> None:
    """Worker task: one customer's invoices, in order; every outcome goes to `emit`."""
    try:
        stripe_customer = ensure_customer(gateway, customer, emit)
    except Exception as exc:
        for invoice in invoices:
            emit(InvoiceResult(invoice.invoice_id, False,
                               error=f"customer {customer.customer_id}: {_reason(exc)}"))
        return
    for invoice in invoices:
        try:
            emit(sync_invoice(gateway, invoice, stripe_customer, emit))
        except Exception as exc:
            emit(InvoiceResult(invoice.invoice_id, False, error=_reason(exc)))


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, SyncRefused | StripeCallError) else \
        f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------- warehouse side


@dataclass
class OutboundSummary:
    """Counts for the asset's metadata and the CLI."""

    candidates: int = 0
    synced: int = 0
    failed: int = 0
    zero_total: int = 0
    refused: int = 0
    api_calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)


def load_candidates(con: duckdb.DuckDBPyConnection) -> tuple[list[SyncInvoice],
                                                               dict[str, SyncCustomer]]:
    """The invoices to sync with their lines, and their customers."""
    frame = con.sql(sql("sync/stripe_invoices_to_sync")).pl()
    if frame.is_empty():
        return [], {}
    con.execute("CREATE OR REPLACE TEMP TABLE sync_candidates (invoice_id VARCHAR)")
    try:
        con.execute("INSERT INTO sync_candidates SELECT unnest($ids)",
                    {"ids": frame["invoice_id"].to_list()}).fetchall()
        lines_frame = con.sql(sql("sync/stripe_invoice_lines")).pl()
    finally:
        con.execute("DROP TABLE IF EXISTS sync_candidates")
    lines: dict[str, list[SyncLine]] = {}
    for row in lines_frame.iter_rows(named=True):
        lines.setdefault(row["invoice_id"], []).append(SyncLine(
            row["line_id"], row["line_type"], row["description"], row["amount"],
            row["period_start"], row["period_end"]))
    invoices: list[SyncInvoice] = []
    customers: dict[str, SyncCustomer] = {}
    for row in frame.iter_rows(named=True):
        invoices.append(SyncInvoice(
            row["invoice_id"], row["status"], row["customer_id"], row["subscription_id"],
            row["billing_month"], row["currency"], row["total"], row["collection_method"],
            int(row["days_until_due"]), row["invoice_number"], row["invoice_external_id"],
            bool(row["invoice_needs_search"]), tuple(lines.get(row["invoice_id"], ()))))
        if row["customer_id"] not in customers:
            customers[row["customer_id"]] = SyncCustomer(
                row["customer_id"], row["customer_name"], row["customer_email"],
                row["customer_external_id"], bool(row["customer_needs_search"]))
    return invoices, customers


ATTEMPT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "provider": pl.String, "operation": pl.String, "internal_id": pl.String,
    "idempotency_key": pl.String, "http_status": pl.Int32, "outcome": pl.String,
    "latency_ms": pl.Float64, "error": pl.String, "at": pl.Datetime("us", "UTC"),
    "attempt": pl.Int32, "request_id": pl.String, "run_id": pl.String}


class WarehouseSink:
    """Writes what the workers report, from the one thread that owns the connection, in small
    batches: a killed process loses at most the last fraction of a second, which the next run
    finds again at Stripe (mapping missing -> search)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, run_id: str | None,
                 now: datetime) -> None:
        self.con = con
        self.run_id = run_id
        self.now = now
        self.attempts: list[Attempt] = []
        self.mappings: list[Mapping] = []
        self.results: list[InvoiceResult] = []
        self.summary = OutboundSummary()

    def add(self, message: object) -> None:
        if isinstance(message, Attempt):
            self.attempts.append(message)
            self.summary.api_calls += 1
            self.summary.retries += message.outcome == "retried"
            self.summary.rate_limited += message.rate_limited
        elif isinstance(message, Mapping):
            self.mappings.append(message)
        elif isinstance(message, InvoiceResult):
            self.results.append(message)
            if message.ok:
                self.summary.synced += 1
            else:
                self.summary.failed += 1
                self.summary.errors.append(f"{message.invoice_id}: {message.error}")

    @property
    def backlog(self) -> int:
        return len(self.attempts) + len(self.mappings) + len(self.results)

    def flush(self) -> None:
        """Make what was reported durable: attempts and mappings first, then the invoices'
        new states (issued and pending, or sync_failed with an alert), in one transaction."""
        if not self.backlog:
            return
        with transaction(self.con):
            if self.attempts:
                write_attempts(self.con, self.attempts, run_id=self.run_id)
            lines = [Mapping("line", line_id, ext) for r in self.results if r.ok
                     for line_id, ext in r.line_ids.items()]
            write_mappings(self.con, self.mappings + lines, now=self.now)
            mark_issued(self.con, [r for r in self.results if r.ok], now=self.now)
            mark_failed(self.con, {r.invoice_id: r.error or "unknown error"
                                   for r in self.results if not r.ok}, now=self.now)
        self.attempts, self.mappings, self.results = [], [], []


def write_attempts(con: duckdb.DuckDBPyConnection, attempts: Sequence[Attempt], *,
                   run_id: str | None) -> None:
    frame = pl.DataFrame([{
        "provider": PROVIDER, "operation": a.operation, "internal_id": a.internal_id,
        "idempotency_key": a.idempotency_key, "http_status": a.http_status,
        "outcome": a.outcome, "latency_ms": a.latency_ms, "error": a.error, "at": a.at,
        "attempt": a.attempt, "request_id": a.request_id, "run_id": run_id}
        for a in attempts], schema=ATTEMPT_SCHEMA)
    con.register("sync_attempts_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/sync_attempts")
    finally:
        con.unregister("sync_attempts_frame")


def write_mappings(con: duckdb.DuckDBPyConnection, mappings: Sequence[Mapping], *,
                   now: datetime) -> None:
    if not mappings:
        return
    frame = pl.DataFrame([{"provider": PROVIDER, "object_type": m.object_type,
                           "internal_id": m.internal_id, "external_id": m.external_id,
                           "created_at": now} for m in mappings],
                         schema={"provider": pl.String, "object_type": pl.String,
                                 "internal_id": pl.String, "external_id": pl.String,
                                 "created_at": pl.Datetime("us", "UTC")})
    con.register("external_ids_frame", frame.unique(["object_type", "internal_id"]).to_arrow())
    try:
        run_sql(con, "sync/external_ids")
    finally:
        con.unregister("external_ids_frame")


def alert_key(invoice_id: str) -> str:
    return f"stripe_sync_failed:{invoice_id}"


def mark_issued(con: duckdb.DuckDBPyConnection, results: Sequence[InvoiceResult], *,
                now: datetime) -> None:
    """Invoices finalized (and sent) at Stripe: issued, then pending payment, with Stripe's
    number and hosted page; their failure alerts close."""
    if not results:
        return
    changes = []
    for r in results:
        changes += [
            StatusChange(r.invoice_id, "issued",
                         f"finalized at Stripe as {r.number or r.external_id}", ACTOR),
            StatusChange(r.invoice_id, "payment_processing.pending",
                         "sent to the customer by Stripe" if r.sent
                         else "Stripe collects the payment", ACTOR)]
    apply_status_changes(con, changes, now=now)
    frame = pl.DataFrame(
        [{"invoice_id": r.invoice_id, "number": r.number, "url": r.hosted_url, "sent": r.sent}
         for r in results],
        schema={"invoice_id": pl.String, "number": pl.String, "url": pl.String,
                "sent": pl.Boolean})
    con.register("stripe_issued_frame", frame.to_arrow())
    try:
        run_sql(con, "sync/stripe_issued", {"now": now})
    finally:
        con.unregister("stripe_issued_frame")
    resolve_alerts(con, [alert_key(r.invoice_id) for r in results], now=now)


def mark_failed(con: duckdb.DuckDBPyConnection, errors: dict[str, str], *,
                now: datetime) -> None:
    """Invoices whose sync failed: `issuing.sync_failed` with the error, and an alert each."""
    if not errors:
        return
    changes = []
    for invoice_id, error in errors.items():
        changes += [StatusChange(invoice_id, "issuing.syncing", "stripe sync started", ACTOR),
                    StatusChange(invoice_id, "issuing.sync_failed", error[:300], ACTOR)]
    apply_status_changes(con, changes, now=now)
    for invoice_id, error in errors.items():
        con.execute("UPDATE billing.invoices SET sync_error = $error WHERE invoice_id = $id",
                    {"error": error, "id": invoice_id}).fetchall()
    raise_alerts(con, [Alert(alert_key(invoice_id), "warning",
                             f"Stripe sync failed for invoice {invoice_id}", error,
                             "stripe_sync") for invoice_id, error in errors.items()], now=now)


def settle_zero_total(con: duckdb.DuckDBPyConnection, invoice_id: str, *,
                      now: datetime) -> None:
    """A zero invoice is issued but never sent: there is nothing to collect."""
    apply_status_changes(con, [
        StatusChange(invoice_id, "issued", "zero total: not sent to Stripe", ACTOR),
        StatusChange(invoice_id, "payment_processing.pending", "zero total", ACTOR),
        StatusChange(invoice_id, "paid", "zero total: nothing to collect", ACTOR)], now=now)
    con.execute("UPDATE billing.invoices SET sync_error = NULL WHERE invoice_id = $id",
                {"id": invoice_id}).fetchall()
    resolve_alerts(con, [alert_key(invoice_id)], now=now)


def run_outbound(con: duckdb.DuckDBPyConnection,
                 make_gateway: Callable[[Callable[[Attempt], None]], StripeGateway], *,
                 now: datetime, run_id: str | None, max_concurrency: int = 8,
                 flush_every: int = 500, flush_seconds: float = 0.2) -> OutboundSummary:
    """Sync every invoice that is ready; returns the counts. `con` is the warehouse writer and
    is used from this thread only."""
    invoices, customers = load_candidates(con)
    sink = WarehouseSink(con, run_id=run_id, now=now)
    sink.summary.candidates = len(invoices)
    to_send: list[SyncInvoice] = []
    for invoice in invoices:
        try:
            check_invoice(invoice)
        except SyncRefused as exc:
            sink.summary.refused += 1
            sink.add(InvoiceResult(invoice.invoice_id, False, error=str(exc)))
            continue
        if invoice.total == 0:
            sink.summary.zero_total += 1
            with transaction(con):
                settle_zero_total(con, invoice.invoice_id, now=now)
            continue
        to_send.append(invoice)
    sink.flush()
    if not to_send:
        return sink.summary
    with transaction(con):
        apply_status_changes(con, [StatusChange(i.invoice_id, "issuing.syncing",
                                                "stripe sync started", ACTOR)
                                   for i in to_send], now=now)
    inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
    gateway = make_gateway(inbox.put)
    by_customer: dict[str, list[SyncInvoice]] = {}
    for invoice in to_send:
        by_customer.setdefault(invoice.customer_id, []).append(invoice)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency),
                            thread_name_prefix="stripe-sync") as pool:
        futures: list[Future[None]] = [
            pool.submit(sync_customer, gateway, customers[cid], batch, inbox.put)
            for cid, batch in by_customer.items()]
        last_flush = monotonic()
        while True:
            try:
                sink.add(inbox.get(timeout=flush_seconds))
            except queue.Empty:
                if all(f.done() for f in futures) and inbox.empty():
                    break
            if sink.backlog >= flush_every or monotonic() - last_flush >= flush_seconds:
                sink.flush()
                last_flush = monotonic()
        for f in futures:
            f.result()  # a worker that died outright surfaces here
    while not inbox.empty():
        sink.add(inbox.get())
    sink.flush()
    return sink.summary
