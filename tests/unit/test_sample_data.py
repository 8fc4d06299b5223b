"""The sample usage-event generator: shapes, realism, determinism and fault counts.

Counts are checked with a small reference ingestion written from the contract (section 1), not
with the generator's own bookkeeping: every line is parsed, validated, and sorted into accepted,
duplicate or rejected-with-reason, then compared with the summaries.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from devkit.sample_data import (
    CONFLICT,
    NATIVE_COLUMNS,
    REJECT_REASONS,
    GeneratedSample,
    generate_events,
    render_line,
    write_benchmark_catalog,
    write_csv,
    write_jsonl,
    write_parquet,
)
from pipelines.catalog.loader import load_catalog
from pipelines.catalog.models import Catalog
from tests.support.environment import EXAMPLE_CATALOG

NATIVE_KEYS = set(NATIVE_COLUMNS)
CE_KEYS = {"specversion", "id", "source", "type", "subject", "time", "data"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def sample(catalog: Catalog) -> GeneratedSample:
    return generate_events(catalog, customers=None, events=3000, month="2026-03", seed=11)


@pytest.fixture(scope="module")
def jsonl(sample: GeneratedSample, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jsonl") / "events.jsonl"
    write_jsonl(sample, path)
    return path


# ---------------------------------------------------------------------------------------------
# A reference ingestion, from the contract


def _native(obj: dict[str, Any]) -> dict[str, Any]:
    if "specversion" in obj:
        return {"event_id": obj.get("id"), "event_name": obj.get("type"),
                "customer_id": obj.get("subject"), "timestamp": obj.get("time"),
                "properties": obj.get("data"), "source": obj.get("source"),
                "subscription_id": None}
    return dict(obj)


def _check(obj: Any, customers: set[str]) -> tuple[str | None, dict[str, Any] | None]:
    """(reject reason or None, the event in native shape)."""
    if not isinstance(obj, dict):
        return "malformed_line", None
    event = _native(obj)
    for name in ("event_id", "event_name", "customer_id", "timestamp"):
        if not isinstance(event.get(name), str) or not event[name].strip():
            return "missing_field", event
    if len(event["event_id"]) > 255:
        return "event_id_too_long", event
    try:
        moment = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    except ValueError:
        return "timestamp_unparseable", event
    if moment.tzinfo is None:
        return "timestamp_without_offset", event
    if not isinstance(event.get("properties", {}), dict):
        return "properties_not_object", event
    if event["customer_id"] not in customers:
        return "unknown_customer", event
    event["instant"] = moment.astimezone(UTC)
    return None, event


class Ingest:
    """Identity (source, event_id) across every file given, in order."""

    def __init__(self, customers: set[str]) -> None:
        self.customers = customers
        self.seen: dict[tuple[str, str], Any] = {}
        self.accepted: list[dict[str, Any]] = []

    def file(self, records: list[Any]) -> Counter[str]:
        """records: parsed objects, or None for a line that is not JSON."""
        counts: Counter[str] = Counter()
        for obj in records:
            reason, event = _check(obj, self.customers)
            if reason:
                counts[reason] += 1
                continue
            assert event is not None
            identity = (event.get("source") or "", event["event_id"])
            payload = (event["event_name"], event["customer_id"], event["instant"],
                       json.dumps(event.get("properties") or {}, sort_keys=True, default=str),
                       event.get("subscription_id"))
            if identity in self.seen:
                counts["duplicate" if self.seen[identity] == payload else CONFLICT] += 1
            else:
                self.seen[identity] = payload
                self.accepted.append(event)
                counts["accepted"] += 1
        return counts


def _parse_lines(text: str) -> list[Any]:
    records: list[Any] = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append(None)
    return records


def _csv_records(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["properties"] = json.loads(row["properties"])
        for name in ("customer_id", "subscription_id", "event_name"):
            row[name] = row[name] or None
    return rows


def _expected(summary: Any) -> Counter[str]:
    counts = Counter({"accepted": summary.events_valid, "duplicate": summary.duplicates})
    counts.update(summary.rejected)
    return +counts


# ---------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_the_same_bytes(catalog: Catalog, tmp_path: Path) -> None:
    paths = []
    for run in ("a", "b", "c"):
        seed = 5 if run != "c" else 6
        sample = generate_events(catalog, customers=None, events=1500, month="2026-02",
                                 seed=seed, chunk_events=400)
        for fmt in ("jsonl", "csv", "parquet"):
            path = tmp_path / run / f"events.{fmt}"
            path.parent.mkdir(exist_ok=True)
            {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}[fmt](sample, path)
            paths.append(path)
    first, second, other = paths[:3], paths[3:6], paths[6:]
    for a, b, c in zip(first, second, other, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
        assert a.read_bytes() != c.read_bytes(), a.name


def test_gzip_holds_the_same_lines(sample: GeneratedSample, jsonl: Path, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    write_jsonl(sample, path, gzip=True)
    assert gzip.decompress(path.read_bytes()) == jsonl.read_bytes()


# ---------------------------------------------------------------------------------------------
# Shapes and faults


def test_every_line_is_native_or_cloudevents_except_the_bad_ones(
    sample: GeneratedSample, jsonl: Path, catalog: Catalog
) -> None:
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    kinds = sample.frame()["kind"].cast(pl.String).to_list()
    assert len(lines) == len(kinds) == sample.summary.total_lines
    shapes = Counter()
    for line, kind in zip(lines, kinds, strict=True):
        if kind == "malformed_line":
            with pytest.raises(ValueError):
                json.loads(line)
            continue
        obj = json.loads(line)
        if "specversion" in obj:
            assert obj["specversion"] == "1.0"
            keys, shapes["ce"] = CE_KEYS, shapes["ce"] + 1
        else:
            keys, shapes["native"] = NATIVE_KEYS, shapes["native"] + 1
        reason, _ = _check(obj, set(catalog.customers))
        if kind in REJECT_REASONS:
            assert reason == kind, line
        else:
            assert reason is None, line
        if kind == "missing_field":
            assert set(obj) <= keys
        else:
            assert set(obj) == keys, line
    share = shapes["ce"] / (shapes["ce"] + shapes["native"])
    assert 0.06 < share < 0.14


def test_summary_counts_match_the_jsonl_file(
    sample: GeneratedSample, jsonl: Path, catalog: Catalog
) -> None:
    summary = sample.summary
    assert summary.duplicates >= 1 and summary.conflicts >= 1
    assert all(summary.bad_lines[r] >= 1 for r in REJECT_REASONS)
    counts = Ingest(set(catalog.customers)).file(_parse_lines(jsonl.read_text(encoding="utf-8")))
    assert counts == _expected(summary)
    assert sum(counts.values()) == summary.total_lines


def test_writer_summary_matches_the_file_and_per_customer_counts(
    sample: GeneratedSample, catalog: Catalog, tmp_path: Path
) -> None:
    result = write_jsonl(sample, tmp_path / "events.jsonl")
    (only,) = result.files
    ingest = Ingest(set(catalog.customers))
    counts = ingest.file(_parse_lines(only.path.read_text(encoding="utf-8")))
    assert counts["accepted"] == only.accepted == sample.summary.events_valid
    assert counts["duplicate"] == only.duplicates
    assert +Counter({k: v for k, v in counts.items() if k not in ("accepted", "duplicate")}) \
        == Counter(only.rejected)
    assert only.lines == only.accepted + only.duplicates + only.rejected_total
    per_customer = Counter((e["customer_id"], e["event_name"]) for e in ingest.accepted)
    reported = Counter({(c, n): k for c, names in only.accepted_by_customer.items()
                        for n, k in names.items()})
    assert per_customer == reported
    table = sample.event_counts()
    assert Counter({(c, n): k for c, n, k in table.iter_rows()}) == reported


def test_faults_scale_and_can_be_set(catalog: Catalog) -> None:
    small = generate_events(catalog, customers=None, events=99, month="2026-03")
    assert small.summary.total_lines == 99 and not small.summary.rejected
    big = generate_events(catalog, customers=None, events=20_000, month="2026-03")
    assert big.summary.duplicates == big.summary.conflicts == 20
    assert big.summary.bad_total == 20
    set_ = generate_events(catalog, customers=None, events=500, month="2026-03",
                           duplicates=7, conflicts=3, bad_lines=13)
    assert (set_.summary.duplicates, set_.summary.conflicts, set_.summary.bad_total) == (7, 3, 13)
    assert set_.summary.bad_lines["malformed_line"] == 3  # 13 dealt over 6 reasons in turn
    frame = set_.frame()
    assert Counter(frame["kind"].cast(pl.String)) == Counter(
        {"event": 500, "duplicate": 7, "conflict": 3, **set_.summary.bad_lines})


def test_duplicates_and_conflicts_come_after_their_original(sample: GeneratedSample) -> None:
    frame = sample.frame().with_row_index("line")
    first = (frame.filter(pl.col("kind") == "event")
             .select("source", "event_id", first_line="line"))
    copies = frame.filter(pl.col("kind").is_in(["duplicate", "conflict"]))
    joined = copies.join(first, on=["source", "event_id"], how="left")
    assert joined["first_line"].null_count() == 0
    assert (joined["line"] > joined["first_line"]).all()
    # some right after, some far later
    gaps = (joined["line"] - joined["first_line"]).to_list()
    assert min(gaps) <= 60


def test_render_line_matches_the_vectorised_writer(sample: GeneratedSample, jsonl: Path) -> None:
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    rows = sample.frame().to_dicts()
    checked = 0
    for line, row in zip(lines, rows, strict=True):
        if row["raw"] is None:
            assert render_line(row) == line
            checked += 1
    assert checked > 2900


# ---------------------------------------------------------------------------------------------
# Realism


def test_events_follow_subscriptions_plans_and_month(catalog: Catalog, tmp_path: Path) -> None:
    sample = generate_events(catalog, customers=None, events=4000, month="2026-01", seed=3)
    path = tmp_path / "events.jsonl"
    write_jsonl(sample, path)
    ingest = Ingest(set(catalog.customers))
    ingest.file(_parse_lines(path.read_text(encoding="utf-8")))
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    # soylent starts in March, initech mid-February: no January events
    assert set(sample.customer_ids) == {"acme_corp_001", "globex_002", "umbrella_004",
                                        "hooli_005"}
    seen_names: dict[str, set[str]] = {}
    for event in ingest.accepted:
        moment = event["instant"]
        assert start <= moment < end
        subs = [s for s in catalog.subscriptions.values()
                if s.customer == event["customer_id"] and s.active_on(moment.date())]
        assert subs, event
        names = {catalog.meters[p.meter].event_name for s in subs
                 for p in catalog.plans[s.plan].prices if p.meter}
        assert event["event_name"] in names
        if event.get("subscription_id"):
            assert event["subscription_id"] in {s.id for s in subs}
        seen_names.setdefault(event["customer_id"], set()).add(event["event_name"])
    # acme starts on 2026-01-20
    acme = [e["instant"] for e in ingest.accepted if e["customer_id"] == "acme_corp_001"]
    assert acme and min(acme) >= datetime(2026, 1, 20, tzinfo=UTC)
    assert seen_names["globex_002"] == {"api.request", "user.login", "compute.run"}
    assert seen_names["hooli_005"] == {"api.request", "storage.snapshot"}
    # every timestamp, faults included, lies within the month
    for stamp in sample.frame()["timestamp"]:
        if stamp.endswith("Z") or stamp[-6] in "+-":
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert start <= moment < end


def test_timestamps_offsets_sources_and_ids(sample: GeneratedSample) -> None:
    frame = sample.frame().filter(pl.col("kind") == "event")
    stamps = frame["timestamp"]
    assert stamps.str.ends_with("Z").mean() > 0.7
    assert stamps.str.ends_with("+02:00").sum() > 100
    assert stamps.str.contains(r"\.\d{3}").sum() > 300
    assert set(frame["source"]) == {"gateway-eu", "gateway-us", "batch-import"}
    assert frame.select("source", "event_id").is_unique().all()
    assert frame["subscription_id"].drop_nulls().len() > 300


def test_properties_fit_the_meters(sample: GeneratedSample, catalog: Catalog) -> None:
    frame = sample.frame().filter(pl.col("kind") == "event")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for name, properties in frame.select("event_name", "properties").iter_rows():
        by_name.setdefault(name, []).append(json.loads(properties))
    tokens = [p["tokens"] for p in by_name["api.request"]]
    assert all(isinstance(t, int) and 10 <= t <= 4000 for t in tokens)
    gbs = [p["gb"] for p in by_name["storage.snapshot"]]
    assert any(isinstance(g, str) for g in gbs) and any(isinstance(g, float) for g in gbs)
    assert all(Decimal("1") <= Decimal(str(g)) <= Decimal("500") for g in gbs)
    compute = by_name["compute.run"]
    assert all(isinstance(p["resources"]["minutes"], int) for p in compute)  # dotted → nested
    eu = sum(p["region"] == "eu" for p in compute) / len(compute)
    assert 0.75 < eu < 0.99  # the filter matches most events, not all
    users = {p["user_id"] for p in by_name["user.login"]}
    assert 3 < len(users) < len(by_name["user.login"])
    meter = catalog.meters["active_users"]
    assert all(meter.unique_property in p for p in by_name["user.login"])


def test_customers_caps_and_never_invents(catalog: Catalog) -> None:
    two = generate_events(catalog, customers=2, events=500, month="2026-03")
    assert two.customer_ids == ("acme_corp_001", "globex_002")
    assert set(two.frame().filter(pl.col("kind") == "event")["customer_id"]) == set(
        two.customer_ids)
    many = generate_events(catalog, customers=100, events=500, month="2026-03")
    assert len(many.customer_ids) == 6 == many.summary.customers


def test_bad_arguments(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        generate_events(catalog, customers=None, events=10, month="2026-13")
    with pytest.raises(ValueError, match="exceed"):
        generate_events(catalog, customers=None, events=10, month="2026-03", duplicates=6,
                        conflicts=5)
    with pytest.raises(ValueError, match="no catalog customer"):
        generate_events(catalog, customers=None, events=10, month="2020-01")


# ---------------------------------------------------------------------------------------------
# Chunks, parts, CSV and Parquet


def test_chunks_and_parts_keep_counts_per_file(catalog: Catalog, tmp_path: Path) -> None:
    sample = generate_events(catalog, customers=None, events=2500, month="2026-03", seed=9,
                             duplicates=40, conflicts=30, bad_lines=24, chunk_events=300)
    result = write_jsonl(sample, tmp_path / "events.jsonl", parts=3)
    assert [p.name for p in result.paths] == [f"events-000{i}.jsonl" for i in (1, 2, 3)]
    ingest = Ingest(set(catalog.customers))
    home: dict[tuple[str, str], int] = {}
    same_file = other_file = 0
    for number, summary in enumerate(result.files):
        records = _parse_lines(summary.path.read_text(encoding="utf-8"))
        counts = ingest.file(records)
        for obj in records:
            if isinstance(obj, dict) and _check(obj, set(catalog.customers))[0] is None:
                event = _native(obj)
                identity = (event["source"], event["event_id"])
                if identity in home:
                    same_file += home[identity] == number
                    other_file += home[identity] != number
                home.setdefault(identity, number)
        assert counts["accepted"] == summary.accepted
        assert counts["duplicate"] == summary.duplicates
        rejected = +Counter({k: v for k, v in counts.items()
                             if k not in ("accepted", "duplicate")})
        assert rejected == Counter(summary.rejected)
    assert result.lines == sample.summary.total_lines
    assert Counter(result.rejected) == Counter(sample.summary.rejected)
    # duplicates and conflicts land in the same file as their original, and in later ones
    assert same_file > 0 and other_file > 0
    assert same_file + other_file == 40 + 30
    # chunked generation still gives whole, ordered data
    assert len(ingest.accepted) == 2500


def test_csv_is_native_and_counts_match(sample: GeneratedSample, catalog: Catalog,
                                        tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    result = write_csv(sample, path)
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(NATIVE_COLUMNS)
    records = _csv_records(path)
    expected = sample.summary.for_format("csv")
    assert expected.bad_lines["malformed_line"] == 0
    assert len(records) == expected.total_lines == result.lines
    counts = Ingest(set(catalog.customers)).file(records)
    assert counts == _expected(expected)


@pytest.mark.parametrize("properties_as", ["json", "struct"])
def test_parquet_counts_match(sample: GeneratedSample, catalog: Catalog, tmp_path: Path,
                              properties_as: str) -> None:
    path = tmp_path / "events.parquet"
    result = write_parquet(sample, path, properties_as=properties_as)  # type: ignore[arg-type]
    frame = pl.read_parquet(path)
    assert frame.columns == list(NATIVE_COLUMNS)
    fmt = "parquet" if properties_as == "json" else "parquet_struct"
    expected = sample.summary.for_format(fmt)  # type: ignore[arg-type]
    assert frame.height == expected.total_lines == result.lines
    if properties_as == "struct":
        schema = frame.schema["properties"]
        assert isinstance(schema, pl.Struct)
        fields = {f.name: f.dtype for f in schema.fields}
        assert fields["resources"] == pl.Struct({"minutes": pl.Int64})
        assert expected.bad_lines["properties_not_object"] == 0
        records = [{**r, "properties": {k: v for k, v in r["properties"].items() if v is not None}}
                   for r in frame.to_dicts()]
    else:
        records = [{**r, "properties": json.loads(r["properties"])} for r in frame.to_dicts()]
    counts = Ingest(set(catalog.customers)).file(records)
    assert counts == _expected(expected)


# ---------------------------------------------------------------------------------------------
# Benchmark catalog


def test_benchmark_catalog_loads_with_n_customers(tmp_path: Path) -> None:
    folder = write_benchmark_catalog(tmp_path / "bench", 250, seed=3)
    catalog = load_catalog(folder)
    assert len(catalog.customers) == 250
    assert len(catalog.subscriptions) == 250
    assert {s.customer for s in catalog.subscriptions.values()} == set(catalog.customers)
    example = load_catalog(EXAMPLE_CATALOG)
    assert set(catalog.meters) == set(example.meters)
    assert set(catalog.plans) == set(example.plans)
    assert {s.plan for s in catalog.subscriptions.values()} == set(example.plans)
    assert all(s.start_date < date(2026, 2, 1) for s in catalog.subscriptions.values())
    sample = generate_events(catalog, customers=None, events=5000, month="2026-03")
    assert sample.summary.customers == 250
    assert sample.frame().filter(pl.col("kind") == "event")["customer_id"].n_unique() > 200
    again = write_benchmark_catalog(tmp_path / "again", 250, seed=3)
    assert (again / "customers.yaml").read_text() == (folder / "customers.yaml").read_text()


def test_identifiers_needing_json_escapes(tmp_path: Path) -> None:
    folder = tmp_path / "catalog"
    folder.mkdir()
    for file in EXAMPLE_CATALOG.iterdir():
        text = file.read_text(encoding="utf-8")
        if file.name == "customers.yaml":
            text = text.replace("id: acme_corp_001,", "id: 'acme \\ \"corp\" café',")
            text = text.replace("customer: acme_corp_001,", "customer: 'acme \\ \"corp\" café',")
        (folder / file.name).write_text(text, encoding="utf-8")
    catalog = load_catalog(folder)
    odd = 'acme \\ "corp" café'
    assert odd in catalog.customers
    sample = generate_events(catalog, customers=None, events=800, month="2026-03")
    path = tmp_path / "events.jsonl"
    write_jsonl(sample, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    counts = Ingest(set(catalog.customers)).file(_parse_lines("\n".join(lines)))
    assert counts == _expected(sample.summary)
    customers = {(_native(json.loads(line)).get("customer_id")) for line in lines
                 if line.endswith("}") and '"customer_id"' in line}
    assert odd in customers
    for line, row in zip(lines, sample.frame().to_dicts(), strict=True):
        if row["raw"] is None:
            assert render_line(row) == line


def test_summary_text_names_every_count(sample: GeneratedSample) -> None:
    text = sample.summary_text("csv")
    total = sample.summary.for_format("csv").total_lines
    assert text.startswith(f"{total} lines for 2026-03")
    assert "malformed_line" not in text and "conflict 3" in text
    assert "malformed_line 1" in sample.summary_text()
