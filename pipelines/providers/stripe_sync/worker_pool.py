"""Stripe calls in a thread pool, the warehouse written by the calling thread only.

Workers call Stripe through one shared gateway (one rate limiter) and report everything (each
HTTP attempt, each mapping, each result) to a queue; the calling thread, which owns the DuckDB
connection, hands the messages to a sink and makes them durable in small batches. A killed
process loses at most the last fraction of a second, which the next run finds again at Stripe.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from time import monotonic
from typing import Protocol

from pipelines.providers.stripe_sync.client import Attempt, StripeGateway

Emit = Callable[[object], None]
Task = Callable[[StripeGateway, Emit], None]


class Sink(Protocol):
    """Collects the workers' messages and writes them to the warehouse on `flush`."""

    def add(self, message: object) -> None: ...

    @property
    def backlog(self) -> int: ...

    def flush(self) -> None: ...


def run_workers(make_gateway: Callable[[Callable[[Attempt], None]], StripeGateway],
                tasks: Sequence[Task], sink: Sink, *, max_concurrency: int,
                flush_every: int = 500, flush_seconds: float = 0.2) -> None:
    """Run `tasks` (each `task(gateway, emit)`) on `max_concurrency` threads, feeding `sink`
    from this thread until every task is done; a task that died outright raises here."""
    if not tasks:
        return
    inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
    gateway = make_gateway(inbox.put)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency),
                            thread_name_prefix="stripe-sync") as pool:
        futures: list[Future[None]] = [pool.submit(task, gateway, inbox.put) for task in tasks]
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
            f.result()
    while not inbox.empty():
        sink.add(inbox.get())
    sink.flush()
