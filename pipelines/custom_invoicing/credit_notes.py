"""Custom invoicing credit notes through the integration's hooks (contract section 9).

A credit note of a `custom_invoicing` profile (made from approved corrections, or by hand) takes
the same hooks as an invoice, with `document_type: credit_note`:

    draft ─(grace period over, its invoice issued)─▶ [draft.syncing] ─▶ issuing
          ─▶ [issuing.syncing] ─▶ issued

Bracketed states exist only when the billing profile enables that hook. The integration is asked
by the notifications `credit_note.draft_sync_requested` / `credit_note.issuing_sync_requested`
(from `billing.credit_note_status_history`) and answers through the integration API
(`.../credit-notes/{id}/draft/synchronized`, `.../issuing/synchronized`, applied by
`callbacks`). A credit note waits in draft until the invoice it credits is issued (an
integration is never asked to credit an invoice it has not issued). One that reaches `issued`
without a number of the integration's gets the next gap-free CN-YYYYMM-NNNNN of its billing
month, from the sequence every app's credit notes share.

Callers hold the warehouse writer and run this inside their own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from pipelines.invoicing.corrections import number_credit_notes
from pipelines.warehouse import run_sql, sql

ISSUED = "issued"
# The states a custom invoicing credit note goes through and the moves allowed between them.
CREDIT_NOTE_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("draft.syncing", "issuing"),
    "draft.syncing": ("issuing",),
    "issuing": ("issuing.syncing", "issued"),
    "issuing.syncing": ("issued",),
    "issued": (),
}
SYNCING = ("draft.syncing", "issuing.syncing")
CAUSES = {"draft.syncing": "grace period over: draft sync requested",
          "issuing.syncing": "issuing sync requested",
          "issued": "issued (no issuing hook)"}
ACTOR = "custom_invoicing"


@dataclass(frozen=True)
class CreditNoteChange:
    """A request to move a credit note to `to_status`, with why and by whom."""

    credit_note_id: str
    to_status: str
    cause: str
    actor: str


@dataclass(frozen=True)
class CreditNoteProgress:
    """What one pass of `advance_credit_notes` did."""

    sync_requested: int      # credit notes that went to draft.syncing or issuing.syncing
    issued: int              # credit notes issued (no hook left to wait for)
    waiting: int             # credit notes waiting for the integration


def credit_note_path(from_status: str, to_status: str) -> list[str] | None:
    """The chain of states from `from_status` to `to_status` (excluding the start), or None
    when no move leads there (a credit note never goes back)."""
    chains: list[list[str]] = [[from_status]]
    while chains:
        chain = chains.pop(0)
        if chain[-1] == to_status:
            return chain[1:]
        chains.extend([*chain, following] for following in
                      CREDIT_NOTE_TRANSITIONS.get(chain[-1], ()))
    return None


def move_credit_notes(con: duckdb.DuckDBPyConnection, changes: Sequence[CreditNoteChange], *,
                      now: datetime) -> dict[str, str | None]:
    """Move custom invoicing credit notes on, recording every transition in
    `billing.credit_note_status_history`, and number those that reach `issued` without a
    number. Returns each credit note's status afterwards (None when unknown); a move that is
    not allowed changes nothing."""
    ids = list(dict.fromkeys(c.credit_note_id for c in changes))
    state: dict[str, str | None] = dict(con.execute(
        "SELECT credit_note_id, status FROM billing.credit_notes "
        "WHERE list_contains($ids, credit_note_id)", {"ids": ids}).fetchall()) if ids else {}
    history = []
    for change in changes:
        current = state.get(change.credit_note_id)
        chain = credit_note_path(current, change.to_status) if current else None
        for previous, reached in zip([current, *(chain or [])], chain or [], strict=False):
            history.append({"credit_note_id": change.credit_note_id, "from_status": previous,
                            "to_status": reached, "changed_at": now, "cause": change.cause,
                            "actor": change.actor, "step": len(history)})
        if chain:
            state[change.credit_note_id] = chain[-1]
    if not history:
        return {i: state.get(i) for i in ids}
    frame = pl.DataFrame(history, schema={
        "credit_note_id": pl.String, "from_status": pl.String, "to_status": pl.String,
        "changed_at": pl.Datetime("us", "UTC"), "cause": pl.String, "actor": pl.String,
        "step": pl.Int64})
    con.register("credit_note_transitions_frame", frame.to_arrow())
    try:
        run_sql(con, "custom_invoicing/credit_note_transitions", {"now": now})
    finally:
        con.unregister("credit_note_transitions_frame")
    number_credit_notes(con, list(dict.fromkeys(
        row["credit_note_id"] for row in history if row["to_status"] == ISSUED)))
    return {i: state.get(i) for i in ids}


def advance_credit_notes(con: duckdb.DuckDBPyConnection, *, now: datetime) -> CreditNoteProgress:
    """Take custom invoicing credit notes on to their next hook, or issue them: drafts whose
    grace period is over and whose invoice is issued, and those the integration synchronized
    as drafts (now `issuing`)."""
    due = con.execute(sql("custom_invoicing/credit_notes_to_advance"), {"now": now}).fetchall()
    changes = [CreditNoteChange(credit_note_id, to_status, CAUSES[to_status], ACTOR)
               for credit_note_id, _from_status, to_status in due]
    after = move_credit_notes(con, changes, now=now)
    requested = sum(after[c.credit_note_id] in SYNCING for c in changes)
    issued = sum(after[c.credit_note_id] == ISSUED for c in changes)
    [(waiting,)] = con.execute("""
        SELECT count(*) FROM billing.credit_notes
        WHERE app = 'custom_invoicing' AND list_contains($syncing, status)""",
                               {"syncing": list(SYNCING)}).fetchall()
    return CreditNoteProgress(sync_requested=requested, issued=issued, waiting=int(waiting))
