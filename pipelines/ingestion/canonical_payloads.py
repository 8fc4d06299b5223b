"""Same payload or conflict, decided canonically (contract section 1).

Dedup compares payload digests of minified JSON, in which key order and number spelling count:
a producer re-sending an event with its properties serialized another way (`{"b":1,"a":2}`
for `{"a":2,"b":1}`, or `1.0` for `1`) would get a conflict and an alert. Every digest mismatch
is therefore only a candidate conflict until the two payloads are compared in a canonical form,
as RFC 8785 defines one: objects by their members whatever the order, numbers by value, strings
by their characters whatever the escapes, and types apart (`true` is not `1`). Conflicts are
rare, so this costs nothing on the common path.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import duckdb

Canonical = tuple[Any, ...]


def canonical_json(text: str | None) -> Canonical:
    """The JSON document `text` in a form where equal means the same value (NULL: no value)."""
    if text is None:
        return ("absent",)
    return _canonical(json.loads(text, parse_float=Decimal, parse_int=Decimal))


def _canonical(value: Any) -> Canonical:
    if isinstance(value, dict):
        return ("object", tuple(sorted((key, _canonical(item)) for key, item in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, Decimal):
        return ("number", value.normalize())
    if value is None:
        return ("null",)
    return ("string", value)


def payload_columns(alias: str) -> str:
    """The fields "the same payload" compares, of the relation `alias`, in a fixed order."""
    return (f'{alias}.event_name, {alias}.customer_id, {alias}.subscription_id, '
            f'{alias}."timestamp", CAST({alias}.properties AS VARCHAR)')


def settle_candidate_conflicts(con: duckdb.DuckDBPyConnection) -> int:
    """Turn the conflicts of temp table `event_outcomes` whose payloads are canonically equal
    into duplicates; returns how many. Reads the view `candidate_events` (the batch's payloads)
    and, for the stored events the conflicts name, raw.events by file: only those files' row
    groups are read."""
    conflicts = con.execute(f"""
        SELECT o.line_number, o.first_file_id, o.first_line, o.source, o.event_id,
               {payload_columns("c")}, {payload_columns("b")}
        FROM event_outcomes o
        JOIN candidate_events c ON c.line_number = o.line_number
        LEFT JOIN candidate_events b
          ON o.first_file_id IS NULL AND b.line_number = o.first_line
        WHERE o.outcome = 'conflict'""").fetchall()
    stored = _stored_payloads(con, {(row[1], row[2]) for row in conflicts
                                    if row[1] is not None})
    same = []
    for line, file_id, first_line, source, event_id, *payloads in conflicts:
        mine = payloads[:5]
        first = (payloads[5:] if file_id is None
                 else stored.get((file_id, first_line, source, event_id)))
        if first is not None and _same_payload(mine, list(first)):
            same.append(line)
    if same:
        con.execute("UPDATE event_outcomes SET outcome = 'duplicate' "
                    "WHERE list_contains($lines, line_number)", {"lines": same})
    return len(same)


def _same_payload(one: list[Any], other: list[Any]) -> bool:
    """Event name, customer, subscription and instant equal; properties canonically equal."""
    return one[:4] == other[:4] and canonical_json(one[4]) == canonical_json(other[4])


def _stored_payloads(con: duckdb.DuckDBPyConnection, located: set[tuple[str, int]]
                     ) -> dict[tuple[str, int, str, str], tuple[Any, ...]]:
    """The payloads of the stored events at these (file_id, line_number), by file_id, line,
    source and event_id. The files are named as constants, so DuckDB reads only their row
    groups."""
    if not located:
        return {}
    files = ", ".join("'" + file_id.replace("'", "''") + "'"
                      for file_id in sorted({file_id for file_id, _ in located}))
    rows = con.execute(f"""
        SELECT e.file_id, e.line_number, e.source, e.event_id, {payload_columns("e")}
        FROM raw.events e
        WHERE e.file_id IN ({files}) AND list_contains($lines, e.line_number)""",
        {"lines": sorted({line for _, line in located})}).fetchall()
    return {(file_id, line, source, event_id): tuple(payload)
            for file_id, line, source, event_id, *payload in rows}
