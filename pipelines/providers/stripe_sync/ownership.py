"""Which Stripe objects are ours: the mapping the sync recorded (`sync.external_ids`) decides,
never the metadata. Anyone with access to the Stripe account can make an invoice or a credit
note whose metadata names one of ours; only the sync's own objects are mapped.

The metadata still says which of ours an unmapped object *claims* to be, and that counts in one
case only: the sync made the object but lost Stripe's answer, or was killed before it recorded
the mapping. That can happen only while ours is in flight (an invoice in `issuing.syncing` or
`issuing.sync_failed`, a draft credit note whose sync started) and not mapped; the next sync run
finds the object by the same metadata and maps it (`issuer`, `correction_issuer`). So an
unmapped object claiming one of ours in flight is *pending* (its events wait, reconciliation
holds it as ours being handed over); any other unmapped object is not ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import duckdb

from pipelines.warehouse import sql

PROVIDER = "stripe"
CLAIM_KEYS = {"invoice": "invoice_id", "credit_note": "credit_note_id"}
"""The metadata key naming our object, per object type (as `issue_plan` and `credit_note_plan`
write it)."""


def claim_of(object_type: str, metadata: Mapping[str, object] | None) -> str | None:
    """The id of ours a Stripe object's metadata names, if any (not proof it is ours)."""
    value = (metadata or {}).get(CLAIM_KEYS[object_type])
    return value if isinstance(value, str) and value else None


def mapped_ids(con: duckdb.DuckDBPyConnection, object_type: str,
               external_ids: Iterable[str]) -> dict[str, str]:
    """Our id of each Stripe object of `object_type` the sync mapped, by Stripe id."""
    wanted = sorted(set(external_ids))
    if not wanted:
        return {}
    return dict(con.execute("""
        SELECT external_id, internal_id FROM sync.external_ids
        WHERE provider = $p AND object_type = $t AND list_contains($ids, external_id)""",
                            {"p": PROVIDER, "t": object_type, "ids": wanted}).fetchall())


def claimed_in_ledger(con: duckdb.DuckDBPyConnection, object_type: str,
                      claims: Iterable[str]) -> dict[str, bool]:
    """For each claimed id that is an invoice (credit note) of a `stripe` profile: whether it
    is in flight, so that an unmapped Stripe object naming it may be the sync's own."""
    wanted = sorted(set(claims))
    if not wanted:
        return {}
    return dict(con.execute(sql(f"sync/stripe_claimed_{object_type}s"),
                            {"ids": wanted}).fetchall())


@dataclass(frozen=True)
class Owner:
    """Whose a Stripe object is: `internal_id` by the mapping, else None; `pending` when it is
    unmapped but claims one of ours in flight; `claim` what its metadata names, and whether
    that is one of ours at Stripe at all (`claim_is_ours`)."""

    internal_id: str | None
    pending: bool = False
    claim: str | None = None
    claim_is_ours: bool = False

    @property
    def snapshot_id(self) -> str | None:
        """The id of ours a snapshot row carries for reconciliation: the mapped one; for an
        unmapped object, its claim while that is in flight (held as ours being handed over)
        or names nothing of ours at Stripe (an orphan naming it); else none (an orphan)."""
        if self.internal_id is not None:
            return self.internal_id
        return self.claim if self.pending or not self.claim_is_ours else None


def owner_of(stripe_id: str, claim: str | None, mapped: Mapping[str, str],
             claimed: Mapping[str, bool]) -> Owner:
    """Whose the Stripe object `stripe_id` is (pure): `mapped` from `mapped_ids`, `claimed`
    from `claimed_in_ledger`."""
    if stripe_id in mapped:
        return Owner(mapped[stripe_id], claim=claim, claim_is_ours=claim in claimed)
    if claim is None:
        return Owner(None)
    return Owner(None, pending=claimed.get(claim, False), claim=claim,
                 claim_is_ours=claim in claimed)
