"""Moving invoices through their lifecycle in the warehouse: the one place that changes
`billing.invoices.status`.

Every caller (the billing run issuing due drafts, the Stripe sync, the custom invoicing callbacks,
provider events) asks for a target state; the lifecycle rules decide the chain of transitions
that gets there, or that the request is ignored (a regression, such as a late `payment_failed`
after `paid`). Each transition is appended to `billing.invoice_status_history` with its time,
cause and actor. An invoice that reaches `issued` without a number gets the next gap-free
INV-YYYYMM-NNNNN number of its billing month.

Callers hold the warehouse writer and run this inside their own `transaction(con)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import duckdb
import polars as pl

from pipelines.invoicing.shard_numbering import numbering_deferred
from pipelines.rating.lifecycle import ISSUED, payment_path, transition_path
from pipelines.warehouse import run_sql, scratch

Outcome = Literal["applied", "already", "ignored", "unknown_invoice"]


@dataclass(frozen=True)
class StatusChange:
    """A request to move an invoice to `to_status`, with why and by whom.

    `payment_side` requests (provider events, payment callbacks) only act on issued invoices,
    so an event can never skip the sync states; pipeline requests may walk any allowed chain.
    """

    invoice_id: str
    to_status: str
    cause: str
    actor: str
    payment_side: bool = False


@dataclass(frozen=True)
class ChangeOutcome:
    """What a request did: the invoice's state before it, and the states it went through."""

    change: StatusChange
    from_status: str | None
    outcome: Outcome
    path: tuple[str, ...] = ()

    @property
    def status(self) -> str | None:
        """The invoice's state after the request."""
        return self.path[-1] if self.path else self.from_status


def current_statuses(con: duckdb.DuckDBPyConnection,
                     invoice_ids: Sequence[str]) -> dict[str, str]:
    """The ledger status of each known invoice among `invoice_ids`."""
    if not invoice_ids:
        return {}
    rows = con.execute(
        "SELECT invoice_id, status FROM billing.invoices WHERE list_contains($ids, invoice_id)",
        {"ids": list(dict.fromkeys(invoice_ids))}).fetchall()
    return dict(rows)


def plan_changes(statuses: dict[str, str],
                 changes: Sequence[StatusChange]) -> list[ChangeOutcome]:
    """Decide, in request order, what each change does, given the invoices' current statuses.
    Pure: several requests for one invoice compose (paid, then refunded)."""
    state = dict(statuses)
    outcomes: list[ChangeOutcome] = []
    for change in changes:
        current = state.get(change.invoice_id)
        if current is None:
            outcomes.append(ChangeOutcome(change, None, "unknown_invoice"))
            continue
        if current == change.to_status:
            outcomes.append(ChangeOutcome(change, current, "already"))
            continue
        find = payment_path if change.payment_side else transition_path
        chain = find(current, change.to_status)
        if chain is None:
            outcomes.append(ChangeOutcome(change, current, "ignored"))
            continue
        outcomes.append(ChangeOutcome(change, current, "applied", tuple(chain)))
        state[change.invoice_id] = chain[-1]
    return outcomes


def apply_status_changes(con: duckdb.DuckDBPyConnection, changes: Sequence[StatusChange], *,
                         now: datetime) -> list[ChangeOutcome]:
    """Apply the changes to the ledger and record every transition; returns one outcome per
    request. Run it inside the caller's transaction."""
    outcomes = plan_changes(current_statuses(con, [c.invoice_id for c in changes]), changes)
    history = []
    final: dict[str, str] = {}
    reached_issue: set[str] = set()
    for outcome in outcomes:
        if outcome.outcome != "applied":
            continue
        previous = outcome.from_status
        for state in outcome.path:
            history.append({"invoice_id": outcome.change.invoice_id, "from_status": previous,
                            "to_status": state, "changed_at": now, "cause": outcome.change.cause,
                            "actor": outcome.change.actor})
            previous = state
        final[outcome.change.invoice_id] = outcome.path[-1]
        if ISSUED in outcome.path:
            reached_issue.add(outcome.change.invoice_id)
    if not history:
        return outcomes
    transitions = pl.DataFrame(history, schema={
        "invoice_id": pl.String, "from_status": pl.String, "to_status": pl.String,
        "changed_at": pl.Datetime("us", "UTC"), "cause": pl.String, "actor": pl.String})
    targets = pl.DataFrame({"invoice_id": list(final), "status": list(final.values()),
                            "issued": [i in reached_issue for i in final]})
    con.register("status_transitions_frame", transitions.to_arrow())
    con.register("status_targets_frame", targets.to_arrow())
    with scratch(con, frames=("status_transitions_frame", "status_targets_frame")):
        con.execute("""
            INSERT INTO billing.invoice_status_history
                (invoice_id, from_status, to_status, changed_at, cause, actor)
            SELECT invoice_id, from_status, to_status, changed_at, cause, actor
            FROM status_transitions_frame""")
        con.execute("""
            UPDATE billing.invoices AS i
            SET status = t.status,
                status_changed_at = $now,
                issued_at = CASE WHEN t.issued THEN coalesce(i.issued_at, $now)
                                 ELSE i.issued_at END
            FROM status_targets_frame t
            WHERE i.invoice_id = t.invoice_id""", {"now": now})
        if reached_issue:
            number_invoices(con, sorted(reached_issue))
    return outcomes


def number_invoices(con: duckdb.DuckDBPyConnection, invoice_ids: Sequence[str]) -> None:
    """Give the listed invoices that have no number yet the next gap-free INV-YYYYMM-NNNNN
    numbers of their billing months (in boundary, customer, invoice order). With customer
    shards the global numbering step numbers them instead (`shard_numbering`)."""
    if numbering_deferred():
        return
    con.execute("CREATE OR REPLACE TEMP TABLE numbering (invoice_id VARCHAR)")
    with scratch(con, tables=("numbering",)):
        con.execute("INSERT INTO numbering SELECT unnest($ids)", {"ids": list(invoice_ids)})
        run_sql(con, "billing/invoice_numbers")
