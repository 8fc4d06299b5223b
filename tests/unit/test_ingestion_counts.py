"""The counts invariant on any input: each line ends in exactly one place, as a reference model
of contract section 1 says it should."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.landing import event
from tests.support.warehouse import query

IDS = [f"evt_{i}" for i in range(6)]
SOURCES = ["gw-a", "gw-b", None]
BAD_LINES = ["{oops", "[]", '"text"', json.dumps(event("bad", customer="ghost_1")),
             json.dumps(event("bad2", ts="2026-01-01T00:00:00"))]

valid_events = st.builds(
    lambda i, source, tokens: event(i, source=source, properties={"tokens": tokens}),
    st.sampled_from(IDS), st.sampled_from(SOURCES), st.integers(0, 2))
lines = st.one_of(valid_events, st.sampled_from(BAD_LINES), st.just(""))
files = st.lists(st.lists(lines, max_size=25), min_size=1, max_size=3)


def reference_outcomes(batches: list[list[object]]) -> list[dict[str, int]]:
    """What each file's counts must be: first accepted payload per (source, event_id) stands."""
    accepted: dict[tuple[str, str], str] = {}
    expected = []
    for batch in batches:
        counts = {"received": 0, "accepted": 0, "duplicates": 0, "rejected": 0, "conflicts": 0}
        for line in batch:
            if line == "":
                continue
            counts["received"] += 1
            if isinstance(line, str):
                counts["rejected"] += 1
                continue
            identity = (line.get("source") or "", line["event_id"])
            payload = json.dumps(line["properties"], sort_keys=True)
            if identity not in accepted:
                accepted[identity] = payload
                counts["accepted"] += 1
            elif accepted[identity] == payload:
                counts["duplicates"] += 1
            else:
                counts["rejected"] += 1
                counts["conflicts"] += 1
        expected.append(counts)
    return expected


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=files)
def test_counts_match_the_reference_model(tmp_path_factory, billing_env, ingest, batches):
    landing = billing_env["landing"]
    for old in landing.iterdir():
        old.unlink()
    warehouse = Path(tmp_path_factory.mktemp("wh")) / "w.duckdb"
    billing_env["warehouse"] = warehouse
    expected = reference_outcomes(batches)
    got = []
    for index, batch in enumerate(batches):
        path = landing / f"batch_{index}.jsonl"
        # a unique first line keeps files distinct even when their events are equal
        path.write_text(json.dumps(event(f"marker_{index}")) + "\n" + "".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in batch))
        result = ingest(path)
        if result.ingested:
            c = result.ingested[0]
            got.append({"received": c.received - 1, "accepted": c.accepted - 1,
                        "duplicates": c.duplicates, "rejected": c.rejected,
                        "conflicts": c.conflicts})
    assert got == expected
    for row in query(warehouse, "SELECT received, accepted, duplicates, rejected "
                                "FROM raw.ingestion_log"):
        assert row[0] == row[1] + row[2] + row[3]
    # nothing lost: every received line is an event, a counted duplicate or a kept rejection
    [(events, rejects)] = query(warehouse, "SELECT (SELECT count(*) FROM raw.events), "
                                           "(SELECT count(*) FROM raw.rejected_events)")
    assert events == sum(e["accepted"] for e in expected) + len(batches)
    assert rejects == sum(e["rejected"] for e in expected)
