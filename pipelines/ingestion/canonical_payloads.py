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


def settle_candidate_conflicts(con: duckdb.DuckDBPyConnection) -> int:
    """Turn the conflicts of temp table `event_outcomes` whose payloads are canonically equal
    into duplicates; returns how many. Reads the views `candidate_events` and `prior_events`
    (sql/staging/event_outcomes.sql)."""
    pairs = con.execute("""
        SELECT o.line_number,
               c.event_name, c.customer_id, c.subscription_id, c."timestamp",
               CAST(c.properties AS VARCHAR),
               coalesce(b.event_name, p.event_name), coalesce(b.customer_id, p.customer_id),
               coalesce(b.subscription_id, p.subscription_id),
               coalesce(b."timestamp", p."timestamp"),
               CAST(coalesce(b.properties, p.properties) AS VARCHAR)
        FROM event_outcomes o
        JOIN candidate_events c ON c.line_number = o.line_number
        LEFT JOIN candidate_events b
          ON o.first_file_id IS NULL AND b.line_number = o.first_line
        LEFT JOIN prior_events p
          ON p.file_id = o.first_file_id AND p.line_number = o.first_line
         AND p.source = o.source AND p.event_id = o.event_id
        WHERE o.outcome = 'conflict'""").fetchall()
    same = [line for line, *payloads in pairs
            if payloads[:4] == payloads[5:9]
            and canonical_json(payloads[4]) == canonical_json(payloads[9])]
    if same:
        con.execute("UPDATE event_outcomes SET outcome = 'duplicate' "
                    "WHERE list_contains($lines, line_number)", {"lines": same})
    return len(same)
