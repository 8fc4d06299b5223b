"""Event ingestion per contract section 1: formats, shapes, rejections, dedup and counts."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.support.landing import event, write_lines
from tests.support.warehouse import query


def accepted_ids(warehouse: Path) -> list[tuple[str, str]]:
    return query(warehouse, "SELECT source, event_id FROM raw.events ORDER BY file_id, line_number")


def test_native_and_cloudevents_mixed_in_one_file(billing_env, ingest):
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "mixed.jsonl", [
        event("evt_001", properties={"endpoint": "/v1/users", "tokens": 120}),
        {"specversion": "1.0", "id": "evt_002", "source": "gateway-us", "type": "api.request",
         "subject": "globex_002", "time": "2026-01-21T16:31:00+02:00",
         "data": {"endpoint": "/v1/x"}},
        event("evt_003", source=None, subscription_id="sub_acme_pro"),
    ])
    result = ingest()
    [counts] = result.ingested
    assert (counts.received, counts.accepted, counts.duplicates, counts.rejected) == (3, 3, 0, 0)
    rows = query(warehouse, """
        SELECT source, event_id, event_name, customer_id, subscription_id, "timestamp",
               properties, line_number
        FROM raw.events ORDER BY line_number""")
    assert rows[0][:5] == ("gateway-eu", "evt_001", "api.request", "acme_corp_001", None)
    assert json.loads(rows[0][6]) == {"endpoint": "/v1/users", "tokens": 120}
    # the CloudEvent: subject is the customer, time (with offset) becomes UTC, data the properties
    assert rows[1][:4] == ("gateway-us", "evt_002", "api.request", "globex_002")
    assert rows[1][5] == datetime(2026, 1, 21, 14, 31, tzinfo=UTC)
    assert json.loads(rows[1][6]) == {"endpoint": "/v1/x"}
    # a missing source is the empty string; subscription_id is kept
    assert rows[2][0] == "" and rows[2][4] == "sub_acme_pro"
    assert [r[7] for r in rows] == [1, 2, 3]


def test_gzip_json_lines(billing_env, ingest):
    path = billing_env["landing"] / "events.ndjson.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(5):
            handle.write(json.dumps(event(f"evt_gz_{i}")) + "\n")
        handle.write("{broken\n")
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.rejected) == (6, 5, 1)
    assert query(billing_env["warehouse"],
                 "SELECT line_number, reason, raw FROM raw.rejected_events") == [
        (6, "malformed_line", "{broken")]


REJECTIONS = [
    ("not json at all", "malformed_line", "not valid JSON"),
    ("[1, 2]", "malformed_line", "not an object"),
    ("null", "malformed_line", "not an object"),
    (event("e1", customer=""), "missing_field", "customer_id is missing"),
    ({"event_name": "api.request", "customer_id": "acme_corp_001",
      "timestamp": "2026-01-21T14:30:00Z"}, "missing_field", "event_id is missing"),
    (event("e2", name="   "), "missing_field", "event_name is missing"),
    ({"event_id": "e3", "event_name": "x", "customer_id": "acme_corp_001"},
     "missing_field", "timestamp is missing"),
    ({"specversion": "1.0", "id": "e4", "type": "api.request", "time": "2026-01-21T14:30:00Z"},
     "missing_field", "subject (customer_id)"),
    (event("x" * 256), "event_id_too_long", "256 characters"),
    (event("e5", ts="2026-13-45T99:00:00Z"), "invalid_timestamp", "2026-13-45T99:00:00Z"),
    (event("e6", ts="2026-01-21T14:30:00"), "timestamp_without_offset", "no UTC offset"),
    (event("e6b", ts="2026-01-21"), "timestamp_without_offset", "no UTC offset"),
    (event("e7", ts="2026-02-01T12:05:01Z"), "timestamp_in_future", "5 minutes"),
    (event("e8", properties=[1, 2]), "properties_not_object", "got array"),
    (event("e9", properties="tokens=5"), "properties_not_object", "got varchar"),
    (event("e10", customer="wayne_999"), "unknown_customer", "wayne_999"),
    ({"event_id": 11, "event_name": "x", "customer_id": "acme_corp_001",
      "timestamp": "2026-01-21T14:30:00Z"}, "invalid_field", "event_id must be a string"),
]


@pytest.mark.parametrize(("line", "reason", "detail"), REJECTIONS,
                         ids=[f"{r[1]}-{i}" for i, r in enumerate(REJECTIONS)])
def test_every_rejection_reason_is_kept_with_raw_line(billing_env, ingest, line, reason, detail):
    write_lines(billing_env["landing"] / "bad.jsonl", [event("good_1"), line])
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.rejected) == (2, 1, 1)
    [(line_number, got_reason, got_detail, raw)] = query(
        billing_env["warehouse"],
        "SELECT line_number, reason, detail, raw FROM raw.rejected_events")
    assert (line_number, got_reason) == (2, reason)
    assert detail in got_detail
    assert raw == (line if isinstance(line, str) else json.dumps(line))


def test_five_minutes_ahead_is_still_accepted(billing_env, ingest):
    write_lines(billing_env["landing"] / "clock.jsonl", [event("e1", ts="2026-02-01T12:05:00Z")])
    assert ingest().ingested[0].accepted == 1


def test_blank_lines_are_not_events_and_keep_line_numbers_true(billing_env, ingest):
    write_lines(billing_env["landing"] / "blanks.jsonl",
                [event("e1"), "", "   ", "oops", event("e2")])
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.rejected) == (3, 2, 1)
    assert query(billing_env["warehouse"], "SELECT line_number FROM raw.rejected_events") == [(4,)]
    assert query(billing_env["warehouse"],
                 "SELECT line_number FROM raw.events ORDER BY 1") == [(1,), (5,)]


def test_duplicates_and_conflicts_within_one_file(billing_env, ingest):
    first = event("evt_1", properties={"tokens": 1})
    write_lines(billing_env["landing"] / "f.jsonl", [
        first,
        first,                                             # exact duplicate
        event("evt_1", properties={"tokens": 2}),          # same identity, other payload
        event("evt_1", source="gateway-us"),               # other source: another event
        {**first, "timestamp": "2026-01-21T16:30:00+02:00"},  # same instant, other spelling
    ])
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.duplicates, counts.rejected,
            counts.conflicts) == (5, 2, 2, 1, 1)
    assert query(billing_env["warehouse"],
                 "SELECT line_number, reason FROM raw.rejected_events") == [(3, "conflict")]
    [(props,)] = query(billing_env["warehouse"],
                       "SELECT properties FROM raw.events WHERE source = 'gateway-eu'")
    assert json.loads(props) == {"tokens": 1}


def test_duplicate_and_conflict_arriving_in_a_later_file(billing_env, ingest):
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "day1.jsonl", [event("evt_1"), event("evt_2")])
    ingest()
    write_lines(landing / "day2.jsonl", [
        event("evt_1"),                                    # duplicate of day 1
        event("evt_2", properties={"endpoint": "/v2"}),    # conflict with day 1
        event("evt_3"),
    ])
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.duplicates, counts.conflicts) == (3, 1, 1, 1)
    [(detail,)] = query(warehouse, "SELECT detail FROM raw.rejected_events")
    assert "evt_2" in detail and "line 2" in detail
    assert query(warehouse, "SELECT count(*) FROM raw.events") == [(3,)]
    [(props,)] = query(warehouse, "SELECT properties FROM raw.events WHERE event_id = 'evt_2'")
    assert json.loads(props) == {"endpoint": "/v1/users"}


def test_relanding_a_file_changes_nothing(billing_env, ingest):
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    original = write_lines(landing / "a.jsonl", [event("evt_1"), "bad line"])
    ingest()

    def snapshot():
        return [query(warehouse, f"SELECT * FROM {t} ORDER BY ALL")
                for t in ("raw.events", "raw.rejected_events", "raw.ingestion_log")]

    before = snapshot()
    shutil.copy(original, landing / "a_copy_renamed.jsonl")
    second = ingest()
    assert second.ingested == [] and len(second.skipped) == 2
    assert snapshot() == before


def test_an_unchanged_logged_file_is_not_read_again(billing_env, ingest, monkeypatch):
    from pipelines.ingestion import file_identity as landing_module

    path = write_lines(billing_env["landing"] / "a.jsonl", [event("evt_1")])
    ingest()
    hashed: list[str] = []
    real_sha256 = landing_module.file_sha256
    monkeypatch.setattr(landing_module, "file_sha256",
                        lambda p: hashed.append(str(p)) or real_sha256(p))
    assert ingest().skipped == [str(path)]
    assert hashed == []
    # touched (new mtime, same bytes): hashed, recognised by content, still skipped
    os.utime(path, ns=(1, 1))
    assert ingest().skipped == [str(path)]
    assert hashed == [str(path)]


def test_csv_native_and_cloudevent_rows(billing_env, ingest):
    path = billing_env["landing"] / "events.csv"
    path.write_text(
        "event_id,event_name,customer_id,timestamp,properties,source,specversion,id,type,"
        "subject,time,data\n"
        'c1,api.request,acme_corp_001,2026-01-21T14:30:00Z,"{""tokens"": 7}",gw,,,,,,\n'
        ',,,,,gw,1.0,c2,api.request,globex_002,2026-01-21T14:30:00+01:00,"{""a"": 1}"\n'
        "c3,api.request,acme_corp_001,2026-01-21T14:30:00Z,not-json,gw,,,,,,\n"
        "c4,api.request,acme_corp_001\n"
        'c5,"api\nrequest",acme_corp_001,2026-01-21T14:30:00Z,,gw,,,,,,\n',
        encoding="utf-8")
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.rejected) == (5, 3, 2)
    rows = query(billing_env["warehouse"],
                 "SELECT event_id, customer_id, properties FROM raw.events ORDER BY event_id")
    assert rows == [("c1", "acme_corp_001", '{"tokens":7}'), ("c2", "globex_002", '{"a":1}'),
                    ("c5", "acme_corp_001", "{}")]
    rejects = query(billing_env["warehouse"],
                    "SELECT reason, detail, raw FROM raw.rejected_events ORDER BY line_number")
    assert rejects[0][0] == "invalid_field" and "properties is not valid JSON" in rejects[0][1]
    assert json.loads(rejects[0][2])["properties"] == "not-json"
    assert rejects[1][0] == "malformed_line" and "CSV line 5" in rejects[1][1]
    assert rejects[1][2] == "c4,api.request,acme_corp_001"


def test_parquet_struct_and_json_string_properties(billing_env, ingest):
    landing = billing_env["landing"]
    ts = pl.Series([datetime(2026, 1, 21, 14, 30, tzinfo=UTC)] * 3).dt.convert_time_zone("UTC")
    pl.DataFrame({
        "event_id": ["p1", "p2", "p3"], "event_name": ["api.request"] * 3,
        "customer_id": ["acme_corp_001", "acme_corp_001", "nobody"],
        "timestamp": ts,
        "properties": [{"tokens": 5, "region": "eu"}, {"tokens": 6, "region": None},
                       {"tokens": 1, "region": "us"}],
        "source": ["gw", "gw", "gw"],
    }).write_parquet(landing / "struct.parquet")
    pl.DataFrame({
        "event_id": ["q1", "q2"], "event_name": ["api.request"] * 2,
        "customer_id": ["acme_corp_001"] * 2,
        "timestamp": [datetime(2026, 1, 21, 14, 30)] * 2,      # no time zone: no UTC offset
        "properties": ['{"tokens": 9}', '{"tokens": 10}'],
    }).write_parquet(landing / "naive.parquet")
    result = ingest()
    by_file = {Path(c.path).name: c for c in result.ingested}
    assert (by_file["struct.parquet"].accepted, by_file["struct.parquet"].rejected) == (2, 1)
    assert (by_file["naive.parquet"].accepted, by_file["naive.parquet"].rejected) == (0, 2)
    props = query(billing_env["warehouse"],
                  "SELECT event_id, properties FROM raw.events ORDER BY event_id")
    assert [(e, json.loads(p)) for e, p in props] == [
        ("p1", {"tokens": 5, "region": "eu"}), ("p2", {"tokens": 6, "region": None})]
    reasons = query(billing_env["warehouse"],
                    "SELECT event_id, reason FROM raw.rejected_events ORDER BY event_id")
    assert reasons == [("p3", "unknown_customer"), ("q1", "timestamp_without_offset"),
                       ("q2", "timestamp_without_offset")]


def test_line_numbers_hold_in_a_large_file_read_in_parallel(billing_env, ingest):
    lines: list[object] = [event(f"evt_{i}") for i in range(200_000)]
    for i in (17, 99_999, 199_998):
        lines[i] = f"broken line {i + 1}"
    write_lines(billing_env["landing"] / "big.jsonl", lines)
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.rejected) == (200_000, 199_997, 3)
    rows = query(billing_env["warehouse"],
                 "SELECT line_number, raw FROM raw.rejected_events ORDER BY 1")
    assert rows == [(n, f"broken line {n}") for n in (18, 100_000, 199_999)]
    assert query(billing_env["warehouse"], """
        SELECT count(*) FROM raw.events
        WHERE line_number <> CAST(split_part(event_id, '_', 2) AS BIGINT) + 1""") == [(0,)]


def test_unknown_customer_is_reprocessed_once_the_customer_exists(billing_env, ingest):
    from pipelines.catalog import load_catalog
    from pipelines.ingestion import prepare_session, reprocess_rejected
    from pipelines.warehouse import connect_writer

    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "a.jsonl", [event("n1", customer="newco_007"),
                                      event("n2", customer="newco_007"),
                                      event("n3", customer="still_unknown")])
    ingest()
    pl.DataFrame({"event_id": ["n4"], "event_name": ["api.request"],
                  "customer_id": ["newco_007"], "timestamp": ["2026-01-22T00:00:00Z"],
                  "properties": [{"tokens": 3}]}).write_parquet(landing / "b.parquet")
    ingest()
    assert query(warehouse, "SELECT count(*) FROM raw.rejected_events") == [(4,)]

    catalog_file = billing_env["catalog"] / "customers.yaml"
    catalog_file.write_text(catalog_file.read_text().replace(
        "customers:\n", "customers:\n  - {id: newco_007, name: NewCo}\n", 1))
    customers = load_catalog(billing_env["catalog"]).customers
    assert "newco_007" in customers
    # meanwhile n2 arrived again with another payload: its reprocessed copy is a conflict
    write_lines(landing / "c.jsonl", [event("n2", customer="newco_007",
                                            properties={"endpoint": "/other"})])
    later = datetime(2026, 2, 2, tzinfo=UTC)
    from pipelines.ingestion import ingest_landed_files, landed_files
    with connect_writer(str(warehouse)) as con:
        prepare_session(con, customers, later)
        ingest_landed_files(con, [f for f in landed_files(landing) if f.path.endswith("c.jsonl")],
                            now=later, run_id="t")
        counts = reprocess_rejected(con, now=later, run_id="t")
        again = reprocess_rejected(con, now=later, run_id="t2")
    assert (counts.candidates, counts.accepted, counts.duplicates, counts.conflicts,
            counts.still_rejected) == (3, 2, 0, 1, 0)
    assert again.candidates == 0
    # accepted events keep the file and line they first arrived with
    accepted = query(warehouse, """
        SELECT e.event_id, regexp_extract(l.path, '[a-z][.][a-z]+$'), e.line_number
        FROM raw.events e JOIN raw.ingestion_log l USING (file_id)
        WHERE e.customer_id = 'newco_007' ORDER BY e.event_id""")
    assert accepted == [("n1", "a.jsonl", 1), ("n2", "c.jsonl", 1), ("n4", "b.parquet", 1)]
    open_rejects = query(warehouse, """
        SELECT event_id, reason FROM raw.rejected_events WHERE resolved_at IS NULL
        ORDER BY event_id, reason""")
    assert open_rejects == [("n2", "conflict"), ("n3", "unknown_customer")]
    resolved = query(warehouse, """
        SELECT event_id, resolution FROM raw.rejected_events WHERE resolved_at IS NOT NULL
        ORDER BY event_id""")
    assert resolved == [("n1", "accepted"), ("n2", "conflict"), ("n4", "accepted")]


def test_escaped_and_unicode_strings_are_read_exactly(billing_env, ingest):
    write_lines(billing_env["landing"] / "esc.jsonl", [
        event('evt_"quoted"\\back', source="gw/\u00e9t\u00e9", name="api.request"),
        '{"event_id": "evt_\\u00e9", "event_name": "api\\/request", "customer_id": '
        '"acme_corp_001", "timestamp": "2026-01-21T14:30:00Z"}',
    ])
    [counts] = ingest().ingested
    assert counts.accepted == 2
    assert query(billing_env["warehouse"],
                 "SELECT source, event_id, event_name FROM raw.events ORDER BY line_number") == [
        ("gw/\u00e9t\u00e9", 'evt_"quoted"\\back', "api.request"),
        ("", "evt_\u00e9", "api/request")]


def test_a_resent_event_stays_a_duplicate_after_the_digest_scheme_changes(billing_env, ingest):
    """Digests stored another way (md5 in older releases, or a DuckDB whose hash() changed) are
    recomputed when the warehouse opens, so a re-sent event is still a duplicate, not a
    conflict."""
    import duckdb

    from pipelines.warehouse import connect_writer

    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "day1.jsonl", [event("evt_1"), event("evt_2")])
    ingest()
    con = duckdb.connect(str(warehouse))   # the warehouse as an older release left it
    con.execute("UPDATE raw.events SET payload_hash = 12345")
    con.execute("DELETE FROM raw.payload_digest_scheme")
    con.close()
    with connect_writer(str(warehouse)) as con:
        assert con.execute("SELECT count(*) FROM raw.events WHERE payload_hash = 12345"
                           ).fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM raw.payload_digest_scheme").fetchall() == [(1,)]
    write_lines(landing / "day2.jsonl", [event("evt_1"), event("evt_2", properties={"x": 1})])
    [counts] = ingest().ingested
    assert (counts.duplicates, counts.conflicts, counts.accepted) == (1, 1, 0)


def test_a_repeated_identity_whose_first_line_is_invalid_is_accepted_once(billing_env, ingest):
    """Lines set aside for dedup are validated exactly: an invalid first occurrence is rejected
    for its own reason, the next valid one is accepted, a third is its duplicate."""
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "day1.jsonl", [
        event("evt_1", ts="2026-01-21T10:00:00"),   # no offset: rejected
        event("evt_1"),
        event("evt_1"),
        event("evt_2"),
    ])
    [counts] = ingest().ingested
    assert (counts.received, counts.accepted, counts.duplicates, counts.rejected) == (4, 2, 1, 1)
    assert query(warehouse, "SELECT event_id, line_number FROM raw.events ORDER BY 2") == [
        ("evt_1", 2), ("evt_2", 4)]
    assert query(warehouse, "SELECT line_number, reason FROM raw.rejected_events") == [
        (1, "timestamp_without_offset")]


def test_same_payload_is_compared_canonically(billing_env, ingest):
    """Key order, number spelling and string escapes do not make a conflict; a changed value or
    type does. Within a file and against history alike."""
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "day1.jsonl", [
        event("evt_1", properties={"a": 1, "b": {"x": "é", "y": [1, 2]}}),
        event("evt_2", properties={"flag": True}),
        '{"event_id": "evt_1", "event_name": "api.request", "customer_id": "acme_corp_001", '
        '"timestamp": "2026-01-21T14:30:00Z", "source": "gateway-eu", '
        '"properties": {"b": {"y": [1.0, 2e0], "x": "\\u00e9"}, "a": 1.00}}',
    ])
    [day1] = ingest().ingested
    assert (day1.accepted, day1.duplicates, day1.conflicts) == (2, 1, 0)
    write_lines(landing / "day2.jsonl", [
        '{"source": "gateway-eu", "timestamp": "2026-01-21T15:30:00+01:00", '
        '"properties": {"b": {"x": "é", "y": [1, 2]}, "a": 10e-1}, "customer_id": '
        '"acme_corp_001", "event_name": "api.request", "event_id": "evt_1"}',
        event("evt_2", properties={"flag": 1}),                  # true is not 1
        event("evt_1", properties={"a": 1, "b": {"x": "é", "y": [2, 1]}}),  # order in arrays
    ])
    [day2] = ingest().ingested
    assert (day2.duplicates, day2.conflicts, day2.accepted) == (1, 2, 0)
    assert query(warehouse, "SELECT count(*) FROM raw.events") == [(2,)]
