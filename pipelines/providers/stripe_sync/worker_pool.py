"""Stripe calls in a thread pool, their outcomes written by the calling thread in batches.

Workers call Stripe through one shared gateway (one rate limiter) and report everything (each
HTTP attempt, each mapping, each result) to a queue; the calling thread hands the messages to a
sink, which takes the warehouse writer only to make a batch durable (every `flush_every`
messages or `flush_seconds`) and releases it at once, so nothing waits on Stripe's answers for
the warehouse. A killed process loses at most the last batch, which the next run finds again at
Stripe.
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

POLL_SECONDS = 0.05
"""How long the calling thread waits for a message before looking whether the tasks are done."""


class Sink(Protocol):
    """Collects the workers' messages and writes them to the warehouse on `flush` (taking the
    writer for that write only)."""

    def add(self, message: object) -> None: ...

    @property
    def backlog(self) -> int: ...

    def flush(self) -> None: ...


def run_workers(make_gateway: Callable[[Callable[[Attempt], None]], StripeGateway],
                tasks: Sequence[Task], sink: Sink, *, max_concurrency: int,
                flush_every: int = 500, flush_seconds: float = 2.0) -> None:
    """Run `tasks` (each `task(gateway, emit)`) on `max_concurrency` threads, feeding `sink`
    from this thread until every task is done, flushing it every `flush_every` messages or
    `flush_seconds`; a task that died outright raises here."""
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
                sink.add(inbox.get(timeout=min(POLL_SECONDS, flush_seconds)))
            except queue.Empty:
                if all(f.done() for f in futures) and inbox.empty():
                    break
            due = monotonic() - last_flush >= flush_seconds
            if sink.backlog >= flush_every or (due and sink.backlog):
                sink.flush()
                last_flush = monotonic()
        for f in futures:
            f.result()
    while not inbox.empty():
        sink.add(inbox.get())
    sink.flush()
