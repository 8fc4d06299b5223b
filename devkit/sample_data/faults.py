"""The faults planted in a sample, each line one kind, decided before any row exists so their
counts are known in advance and ingestion can be checked against them.

- ``duplicate``: an exact copy of an earlier line, sometimes right after it, sometimes much
  later (another part file when written in parts). Ingestion drops and counts it.
- ``conflict``: the same (source, event_id) as an earlier event with another timestamp.
  Quarantined with reason ``conflict``; the first one stands.
- bad lines, rejected with their reason code (`REJECT_REASONS`), dealt out over the reasons in
  turn: ``malformed_line`` (truncated JSON; JSON Lines only), ``missing_field`` (no customer_id,
  or an empty event_name), ``timestamp_without_offset``, ``properties_not_object`` (a list; not
  in Parquet with struct properties), ``unknown_customer``, ``event_id_too_long`` (300
  characters).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from devkit.sample_data.lines import render_line

DUPLICATE = "duplicate"
CONFLICT = "conflict"
MALFORMED_LINE = "malformed_line"
MISSING_FIELD = "missing_field"
TIMESTAMP_WITHOUT_OFFSET = "timestamp_without_offset"
PROPERTIES_NOT_OBJECT = "properties_not_object"
UNKNOWN_CUSTOMER = "unknown_customer"
EVENT_ID_TOO_LONG = "event_id_too_long"

#: Reason codes of bad lines, in the order they are dealt out.
REJECT_REASONS: tuple[str, ...] = (
    MALFORMED_LINE,
    MISSING_FIELD,
    TIMESTAMP_WITHOUT_OFFSET,
    PROPERTIES_NOT_OBJECT,
    UNKNOWN_CUSTOMER,
    EVENT_ID_TOO_LONG,
)
#: The kind of each generated line: a valid event, or one deliberate fault.
KINDS: tuple[str, ...] = ("event", DUPLICATE, CONFLICT, *REJECT_REASONS)
FAULT_KINDS: tuple[str, ...] = KINDS[1:]

_FAULT_SHARE = 0.001
_TOO_LONG_ID = 300


@dataclass(frozen=True)
class FaultPlan:
    """Faults as (base event index, position after which the line goes, order), decided upfront."""

    duplicates: tuple[tuple[int, int, int], ...]
    conflicts: tuple[tuple[int, int, int, int], ...]   # ... plus the timestamp shift in ms
    bad: tuple[tuple[int, int, str, int], ...]         # position, order, reason, number

    def bad_counts(self) -> dict[str, int]:
        """Bad lines per reason code, every reason present."""
        counts = {reason: 0 for reason in REJECT_REASONS}
        for _, _, reason, _ in self.bad:
            counts[reason] += 1
        return counts


def _default_count(events: int) -> int:
    return max(1, round(events * _FAULT_SHARE)) if events >= 100 else 0


def fault_counts(events: int, duplicates: int | None, conflicts: int | None,
                 bad_lines: int | None) -> tuple[int, int, int]:
    """How many duplicates, conflicts and bad lines: the ones asked for, else the defaults.

    Defaults are 0.1% of ``events`` each, at least one duplicate, one conflict and one bad line
    of every reason once ``events`` >= 100 (none below).
    """
    n_dup = _default_count(events) if duplicates is None else duplicates
    n_conf = _default_count(events) if conflicts is None else conflicts
    n_bad = (max(len(REJECT_REASONS), _default_count(events)) if events >= 100 else 0) \
        if bad_lines is None else bad_lines
    if min(n_dup, n_conf, n_bad) < 0:
        raise ValueError("duplicates, conflicts and bad_lines must be zero or more")
    if n_dup + n_conf > events:
        raise ValueError("duplicates + conflicts cannot exceed events: each copies its own event")
    if n_bad and not events:
        raise ValueError("bad lines are spoilt copies of events: ask for events too")
    return n_dup, n_conf, n_bad


def plan_faults(seed: int, events: int, n_dup: int, n_conf: int, n_bad: int) -> FaultPlan:
    """Which events are copied as duplicates and conflicts, where each copy and bad line goes."""
    frng = random.Random(f"billing-sample:{seed}:faults")
    picks = frng.sample(range(events), n_dup + n_conf) if n_dup + n_conf else []
    order = iter(range(1, n_dup + n_conf + n_bad + 1))

    def later(base: int) -> int:
        if frng.random() < 0.5:
            return min(events - 1, base + frng.randint(0, 50))
        return frng.randint(base, events - 1)

    dup_plan = tuple((b, later(b), next(order)) for b in picks[:n_dup])
    conf_plan = tuple((b, later(b), next(order), 1000 * frng.randint(1, 120))
                      for b in picks[n_dup:])
    bad_plan = tuple((frng.randint(-1, events - 1), next(order),
                      REJECT_REASONS[k % len(REJECT_REASONS)], k + 1) for k in range(n_bad))
    return FaultPlan(dup_plan, conf_plan, bad_plan)


def excluded_kinds(fmt: str) -> tuple[str, ...]:
    """The faults a file format cannot hold, left out when writing it."""
    if fmt == "jsonl":
        return ()
    if fmt == "csv" or fmt == "parquet":
        return (MALFORMED_LINE,)
    if fmt == "parquet_struct":
        return (MALFORMED_LINE, PROPERTIES_NOT_OBJECT)
    raise ValueError(f"unknown format {fmt!r}")


def spoil(row: dict[str, Any], reason: str, number: int,
          catalog_customers: frozenset[str]) -> dict[str, Any]:
    """Turn a copy of a valid event (with a fresh id) into a bad line of the given reason."""
    if reason == MISSING_FIELD:
        if number % 2:
            row["event_name"] = ""
        else:
            row["customer_id"] = None
    elif reason == TIMESTAMP_WITHOUT_OFFSET:
        stamp = row["timestamp"]
        row["timestamp"] = stamp[:-1] if stamp.endswith("Z") else stamp[:-6]
    elif reason == PROPERTIES_NOT_OBJECT:
        row["properties"] = f"[{row['properties']}]"
    elif reason == UNKNOWN_CUSTOMER:
        ident = f"unknown_customer_{number:04d}"
        while ident in catalog_customers:
            ident += "_x"
        row["customer_id"] = ident
    elif reason == EVENT_ID_TOO_LONG:
        row["event_id"] = (row["event_id"] + "-" + "x" * _TOO_LONG_ID)[:_TOO_LONG_ID]
    line = render_line(row)
    if reason == MALFORMED_LINE:
        line = line[: max(8, len(line) // 2)]
    elif reason not in (MISSING_FIELD,):
        line = None  # the vectorised renderer writes it as is
    row["raw"] = line
    return row
