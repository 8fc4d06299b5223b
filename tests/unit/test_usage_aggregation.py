"""Usage aggregation in DuckDB (contract section 3): one row per subscription x billed meter x
service period, with hand-computed quantities for every aggregation, measured from events
ingested through the production ingestion code into a real warehouse file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipelines.catalog import load_catalog
from pipelines.catalog.warehouse_tables import write_catalog_tables
from pipelines.invoicing.usage_measurement import (
    USAGE_SCHEMA,
    UsagePeriod,
    aggregate_usage,
    register_periods,
    usage_mapping,
)
from pipelines.rating.invoices import build_invoice
from pipelines.rating.periods import service_periods
from pipelines.warehouse import connect_writer
from tests.support.landing import event, write_lines

JAN, FEB = date(2026, 1, 1), date(2026, 2, 1)
LATER = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # ingestion clock for February events

# A second catalog file: the aggregations and filters the example catalog does not use.
LAB_CATALOG = """
meters:
  - {key: latency_min, event_name: probe.latency, aggregation: min, value_property: ms}
  - {key: latency_avg, event_name: probe.latency, aggregation: avg, value_property: ms}
  - {key: queue_latest, event_name: queue.depth, aggregation: latest, value_property: depth}
  - key: gold_calls
    event_name: api.request
    aggregation: count
    filters: {tier: 2, premium: true, plan: gold, meta.env: prod}
  - {key: lab_tokens, event_name: api.request, aggregation: sum, value_property: usage.tokens}
plans:
  - key: lab
    name: Lab
    currency: USD
    billing_period: monthly
    prices:
      - {key: latency_min, meter: latency_min, type: per_unit, unit_price: "1"}
      - {key: latency_avg, meter: latency_avg, type: per_unit, unit_price: "1"}
      - {key: queue_latest, meter: queue_latest, type: per_unit, unit_price: "1"}
      - {key: gold_calls, meter: gold_calls, type: per_unit, unit_price: "1"}
      - {key: lab_tokens, meter: lab_tokens, type: per_unit, unit_price: "1"}
  - key: tokens_only
    name: Tokens only
    currency: USD
    billing_period: monthly
    prices:
      - {key: tokens, meter: tokens, type: per_unit, unit_price: "0.001"}
customers:
  - {id: lab_007, name: Lab Customer}
subscriptions:
  - {id: sub_lab, customer: lab_007, plan: lab, start_date: 2026-01-01, billing_anchor: 1}
  - {id: sub_acme_tokens, customer: acme_corp_001, plan: tokens_only, start_date: 2026-01-01}
"""


def measure(env: dict[str, Path], until: date = date(2026, 3, 1),
            periods: list[UsagePeriod] | None = None) -> pl.DataFrame:
    """Write the catalog tables, register every subscription's periods before `until` (or the
    given ones) and aggregate."""
    catalog = load_catalog(env["catalog"])
    if periods is None:
        periods = [UsagePeriod.of(s, p) for s in catalog.subscriptions.values()
                   for p in service_periods(s, catalog.plans[s.plan], until)]
    with connect_writer(str(env["warehouse"])) as con:
        write_catalog_tables(con, catalog)
        register_periods(con, periods)
        return aggregate_usage(con)


def row(frame: pl.DataFrame, subscription: str, meter: str, start: date) -> dict[str, object]:
    found = frame.filter((pl.col("subscription_id") == subscription)
                         & (pl.col("meter_key") == meter) & (pl.col("period_start") == start))
    assert found.height == 1, f"{subscription}/{meter}/{start}: {found.height} rows"
    return found.row(0, named=True)


def qty(frame: pl.DataFrame, subscription: str, meter: str, start: date) -> Decimal:
    return row(frame, subscription, meter, start)["quantity"]


def counts(frame: pl.DataFrame, subscription: str, meter: str, start: date) -> tuple[int, int]:
    found = row(frame, subscription, meter, start)
    return found["events_counted"], found["events_without_value"]


@pytest.fixture
def lab(billing_env: dict[str, Path]) -> dict[str, Path]:
    (billing_env["catalog"] / "lab.yaml").write_text(LAB_CATALOG, encoding="utf-8")
    return billing_env


def test_golden_quantities_of_the_example_meters(billing_env, ingest):
    landing = billing_env["landing"]
    acme = "acme_corp_001"
    write_lines(landing / "january.jsonl", [
        # acme, professional: api_requests (count), storage_gb (max), exports (count);
        # first period [2026-01-20, 2026-02-01)
        event("a1", customer=acme, ts="2026-01-20T08:00:00Z"),
        event("a2", customer=acme, ts="2026-01-25T08:00:00Z",
              properties={"endpoint": "/v1/x", "tokens": 50}),
        event("a3", customer=acme, ts="2026-01-31T23:00:00Z"),
        event("a0", customer=acme, ts="2026-01-19T23:59:59Z"),      # before start_date
        event("s1", customer=acme, name="storage.snapshot", properties={"gb": 12.5}),
        event("s2", customer=acme, name="storage.snapshot", properties={"gb": "30.25"}),
        event("s3", customer=acme, name="storage.snapshot", properties={"gb": 7}),
        event("s4", customer=acme, name="storage.snapshot", properties={"gb": "lots"}),
        event("x1", customer=acme, name="report.exported", properties={}),
        event("x2", customer=acme, name="report.exported", properties={"format": "csv"}),
        event("u1", customer=acme, name="unknown.thing", properties={"gb": 1000}),
        # globex, business_eu: api_requests, active_users (unique_count of user_id),
        # eu_compute_minutes (sum of resources.minutes where region = eu); period January
        event("g1", customer="globex_002", ts="2026-01-02T10:00:00Z"),
        event("g2", customer="globex_002", ts="2026-01-03T10:00:00Z"),
        event("l1", customer="globex_002", name="user.login", properties={"user_id": "u1"}),
        event("l2", customer="globex_002", name="user.login", properties={"user_id": "u2"}),
        event("l3", customer="globex_002", name="user.login", properties={"user_id": "u1"}),
        event("l4", customer="globex_002", name="user.login", properties={"user": "u3"}),
        event("l5", customer="globex_002", name="user.login", properties={"user_id": None}),
        event("l6", customer="globex_002", name="user.login", properties={"user_id": 7}),
        event("l7", customer="globex_002", name="user.login", properties={"user_id": "7"}),
        event("c1", customer="globex_002", name="compute.run",
              properties={"region": "eu", "resources": {"minutes": 10}}),
        event("c2", customer="globex_002", name="compute.run",
              properties={"region": "eu", "resources": {"minutes": 20.5}}),
        event("c3", customer="globex_002", name="compute.run",
              properties={"region": "us", "resources": {"minutes": 100}}),
        event("c4", customer="globex_002", name="compute.run",
              properties={"resources": {"minutes": 1000}}),
        event("c5", customer="globex_002", name="compute.run",
              properties={"region": "EU", "resources": {"minutes": 7}}),
        event("c6", customer="globex_002", name="compute.run",
              properties={"region": "eu", "minutes": 3}),
        # hooli, enterprise_annual (quarterly): storage_gb max over [2026-01-01, 2026-04-01)
        event("h1", customer="hooli_005", name="storage.snapshot", ts="2026-01-05T00:00:00Z",
              properties={"gb": "120.125"}),
        event("h2", customer="hooli_005", name="storage.snapshot", ts="2026-01-28T00:00:00Z",
              properties={"gb": 99}),
    ])
    [counts_] = ingest().ingested
    assert (counts_.accepted, counts_.rejected) == (28, 0)
    frame = measure(billing_env)

    assert qty(frame, "sub_acme_pro", "api_requests", date(2026, 1, 20)) == 3
    assert counts(frame, "sub_acme_pro", "api_requests", date(2026, 1, 20)) == (3, 0)
    assert qty(frame, "sub_acme_pro", "storage_gb", date(2026, 1, 20)) == Decimal("30.25")
    assert counts(frame, "sub_acme_pro", "storage_gb", date(2026, 1, 20)) == (4, 1)
    assert qty(frame, "sub_acme_pro", "exports", date(2026, 1, 20)) == 2
    # professional does not price tokens: acme has no tokens row
    assert frame.filter((pl.col("subscription_id") == "sub_acme_pro")
                        & (pl.col("meter_key") == "tokens")).height == 0

    assert qty(frame, "sub_globex_business", "api_requests", JAN) == 2
    # u1, u2 and 7 ("7" and 7 are one value); l4 and l5 have no user_id
    assert qty(frame, "sub_globex_business", "active_users", JAN) == 3
    assert counts(frame, "sub_globex_business", "active_users", JAN) == (7, 2)
    assert qty(frame, "sub_globex_business", "eu_compute_minutes", JAN) == Decimal("30.5")
    # c3, c4, c5 do not match the filter; c6 matches but has no resources.minutes
    assert counts(frame, "sub_globex_business", "eu_compute_minutes", JAN) == (3, 1)

    assert qty(frame, "sub_hooli_enterprise", "storage_gb", JAN) == Decimal("120.125")
    assert qty(frame, "sub_hooli_enterprise", "api_requests", JAN) == 0


def test_every_billed_meter_has_a_row_even_without_usage(billing_env):
    frame = measure(billing_env)
    assert frame.schema == pl.Schema(USAGE_SCHEMA)
    catalog = load_catalog(billing_env["catalog"])
    expected = {(s.id, meter, p.start)
                for s in catalog.subscriptions.values()
                for p in service_periods(s, catalog.plans[s.plan], date(2026, 3, 1))
                for meter in catalog.plans[s.plan].meter_keys}
    keys = set(frame.select("subscription_id", "meter_key", "period_start").iter_rows())
    assert keys == expected and frame.height == len(expected)
    assert ("sub_umbrella_pro", "exports", JAN) in keys
    assert frame["quantity"].cast(pl.Float64).abs().sum() == 0
    assert frame["events_counted"].sum() == 0
    assert frame["latest_event_id"].null_count() == frame.height


def test_period_edges(billing_env, ingest):
    acme = "acme_corp_001"
    write_lines(billing_env["landing"] / "edges.jsonl", [
        event("start", customer=acme, ts="2026-01-20T00:00:00Z"),           # first instant: in
        event("before", customer=acme, ts="2026-01-19T23:59:59.999999Z"),   # before start_date
        event("last", customer=acme, ts="2026-01-31T23:59:59.999999Z"),     # last instant: in
        event("end", customer=acme, ts="2026-02-01T00:00:00Z"),             # at end: next period
        event("end_offset", customer=acme, ts="2026-02-01T01:00:00+01:00"),  # the same instant
        event("feb", customer=acme, ts="2026-01-31T19:30:00-05:00"),         # 2026-02-01T00:30Z
    ])
    ingest()
    frame = measure(billing_env)
    assert qty(frame, "sub_acme_pro", "api_requests", date(2026, 1, 20)) == 2
    assert qty(frame, "sub_acme_pro", "api_requests", FEB) == 3
    assert row(frame, "sub_acme_pro", "api_requests", FEB)["period_end"] == date(2026, 3, 1)


def test_other_customers_events_are_not_counted(billing_env, ingest):
    write_lines(billing_env["landing"] / "mixed.jsonl", [
        event("u1", customer="umbrella_004", ts="2026-01-10T00:00:00Z"),
        event("u2", customer="umbrella_004", ts="2026-01-21T00:00:00Z"),
        event("a1", customer="acme_corp_001", ts="2026-01-21T00:00:00Z"),
        # soylent is a customer, but its subscription only starts in March
        event("s1", customer="soylent_006", ts="2026-01-21T00:00:00Z"),
    ])
    ingest()
    frame = measure(billing_env)
    assert qty(frame, "sub_umbrella_pro", "api_requests", JAN) == 2
    assert qty(frame, "sub_acme_pro", "api_requests", date(2026, 1, 20)) == 1
    assert frame["events_counted"].sum() == 3
    assert frame.filter(pl.col("customer_id") == "soylent_006").height == 0


def test_subscription_id_scopes_an_event(lab, ingest):
    acme = "acme_corp_001"
    write_lines(lab["landing"] / "scoped.jsonl", [
        # no subscription_id: counts for each of acme's subscriptions billing a meter of it
        event("e1", customer=acme, properties={"tokens": 5}),
        # scoped to sub_acme_pro: its api_requests only, not sub_acme_tokens' tokens
        event("e2", customer=acme, properties={"tokens": 7}, subscription_id="sub_acme_pro"),
        # scoped to sub_acme_tokens: its tokens only
        event("e3", customer=acme, properties={"tokens": 11}, subscription_id="sub_acme_tokens"),
        # another customer's subscription: nobody's
        event("e4", customer=acme, properties={"tokens": 13},
              subscription_id="sub_globex_business"),
        # an unknown subscription: nobody's
        event("e5", customer=acme, properties={"tokens": 17}, subscription_id="sub_nope"),
    ])
    [counts_] = ingest().ingested
    assert counts_.accepted == 5
    frame = measure(lab)
    assert qty(frame, "sub_acme_pro", "api_requests", date(2026, 1, 20)) == 2
    assert qty(frame, "sub_acme_tokens", "tokens", JAN) == 16
    assert counts(frame, "sub_acme_tokens", "tokens", JAN) == (2, 0)
    assert qty(frame, "sub_globex_business", "api_requests", JAN) == 0


def test_filters_compare_json_scalars_and_missing_properties_fail(lab, ingest):
    gold = {"tier": 2, "premium": True, "plan": "gold", "meta": {"env": "prod", "x": 1}}
    variants = [
        gold,                                   # match
        {**gold, "tier": 2.0},                  # match: numbers compare by value
        {**gold, "endpoint": "/v1/extra"},      # match: other properties do not matter
        {**gold, "tier": "2"},                  # a string is not the number 2
        {**gold, "premium": "true"},            # a string is not the boolean true
        {**gold, "premium": False},
        {**gold, "plan": "Gold"},               # case-sensitive
        {**gold, "tier": 3},
        {**gold, "premium": None},              # null is not true
        {k: v for k, v in gold.items() if k != "premium"},            # premium missing
        {**{k: v for k, v in gold.items() if k != "tier"}, "x": {"tier": 2}},  # nested elsewhere
        {**{k: v for k, v in gold.items() if k != "meta"}, "meta.env": "prod"},  # dotted = nested
        {**gold, "meta": {"env": "dev"}},
    ]
    write_lines(lab["landing"] / "filters.jsonl", [
        event(f"f{i}", customer="lab_007", properties=props)
        for i, props in enumerate(variants)])
    ingest()
    frame = measure(lab)
    assert qty(frame, "sub_lab", "gold_calls", JAN) == 3
    assert counts(frame, "sub_lab", "gold_calls", JAN) == (3, 0)


def test_min_and_avg_with_values_that_are_missing_or_not_numeric(lab, ingest):
    def probe(i: str, ts: str, **props: object) -> dict[str, object]:
        return event(i, customer="lab_007", name="probe.latency", ts=ts, properties=props)

    write_lines(lab["landing"] / "latency.jsonl", [
        probe("p1", "2026-01-05T00:00:00Z", ms=10),
        probe("p2", "2026-01-06T00:00:00Z", ms=7.5),
        probe("p3", "2026-01-07T00:00:00Z", ms="30"),
        probe("p4", "2026-01-08T00:00:00Z", ms=-2),
        probe("p5", "2026-01-09T00:00:00Z", ms=1),
        probe("p6", "2026-01-10T00:00:00Z", ms=2),
        probe("p7", "2026-01-11T00:00:00Z", region="eu"),     # no value
        probe("p8", "2026-01-12T00:00:00Z", ms="fast"),       # not numeric
        probe("p9", "2026-01-13T00:00:00Z", ms=True),         # not numeric
        probe("p10", "2026-01-14T00:00:00Z", ms={"v": 1}),    # not numeric
        # February, measured in shorter periods: 2 / 3, rounded at 12 decimals, then
        # exact halves at the 13th decimal, rounded away from zero
        probe("q1", "2026-02-02T00:00:00Z", ms=1),
        probe("q2", "2026-02-03T00:00:00Z", ms=1),
        probe("q3", "2026-02-04T00:00:00Z", ms=0),
        probe("r1", "2026-02-12T00:00:00Z", ms="0.000000000001"),
        probe("r2", "2026-02-13T00:00:00Z", ms=0),
        probe("n1", "2026-02-21T00:00:00Z", ms="-0.000000000001"),
        probe("n2", "2026-02-22T00:00:00Z", ms=0),
    ])
    ingest(now=LATER)
    frame = measure(lab)
    assert qty(frame, "sub_lab", "latency_min", JAN) == -2
    # (10 + 7.5 + 30 - 2 + 1 + 2) / 6 = 48.5 / 6 = 8.08333…
    assert qty(frame, "sub_lab", "latency_avg", JAN) == Decimal("8.083333333333")
    assert counts(frame, "sub_lab", "latency_avg", JAN) == (10, 4)
    assert counts(frame, "sub_lab", "latency_min", JAN) == (10, 4)

    spans = [(FEB, date(2026, 2, 10)), (date(2026, 2, 10), date(2026, 2, 20)),
             (date(2026, 2, 20), date(2026, 2, 25)), (date(2026, 2, 25), date(2026, 3, 1))]
    feb = measure(lab, periods=[UsagePeriod("sub_lab", "lab_007", "lab", start, end)
                                for start, end in spans])
    assert [qty(feb, "sub_lab", "latency_avg", start) for start, _ in spans] == [
        Decimal("0.666666666667"), Decimal("0.000000000001"), Decimal("-0.000000000001"), 0]
    assert [qty(feb, "sub_lab", "latency_min", start) for start, _ in spans] == [
        0, 0, Decimal("-0.000000000001"), 0]
    assert counts(feb, "sub_lab", "latency_min", FEB) == (3, 0)
    assert counts(feb, "sub_lab", "latency_avg", date(2026, 2, 25)) == (0, 0)


def test_latest_takes_the_newest_valued_event_ties_to_the_greatest_event_id(lab, ingest):
    def depth(i: str, ts: str, **props: object) -> dict[str, object]:
        return event(i, customer="lab_007", name="queue.depth", ts=ts, properties=props)

    write_lines(lab["landing"] / "queue.jsonl", [
        depth("evt_q1", "2026-01-10T10:00:00Z", depth=5),
        depth("evt_q3", "2026-01-10T11:00:00Z", depth=4),
        depth("evt_q2", "2026-01-10T11:00:00Z", depth=9),   # same instant: evt_q3 wins
        depth("evt_q4", "2026-01-10T12:00:00Z"),            # newer, but no value: ignored
        depth("evt_q0", "2026-01-10T12:30:00Z", depth="n/a"),
        depth("evt_q9", "2026-01-09T00:00:00Z", depth=100),  # older
    ])
    ingest()
    found = row(measure(lab), "sub_lab", "queue_latest", JAN)
    assert found["quantity"] == 4
    assert found["latest_event_id"] == "evt_q3"
    assert found["latest_source"] == "gateway-eu"
    assert found["latest_timestamp"] == datetime(2026, 1, 10, 11, 0, tzinfo=UTC)
    assert (found["events_counted"], found["events_without_value"]) == (6, 2)


def test_decimals_are_exact(lab, ingest):
    def tokens(i: str, value: object) -> dict[str, object]:
        return event(i, customer="lab_007", properties={"usage": {"tokens": value}})

    write_lines(lab["landing"] / "decimals.jsonl", [
        tokens("d1", 0.1), tokens("d2", 0.2), tokens("d3", "0.3"),
        tokens("d4", "123456789.123456789012"),   # as a string: exact to 12 decimals
        tokens("d5", 1234567.12345678),           # a JSON number of 15 significant digits
        event("d6", customer="lab_007", properties={"usage": 5}),   # no usage.tokens
    ])
    ingest()
    found = row(measure(lab), "sub_lab", "lab_tokens", JAN)
    assert found["quantity"] == Decimal("0.6") + Decimal("123456789.123456789012") \
        + Decimal("1234567.12345678")
    assert str(found["quantity"]) == "124691356.846913569012"
    assert (found["events_counted"], found["events_without_value"]) == (6, 1)


def test_many_values_sum_exactly(lab, ingest):
    # 10 000 x 0.1 is 1000 exactly; a DOUBLE sum would be off in the 12th decimal
    write_lines(lab["landing"] / "many.jsonl", [
        event(f"m{i}", customer="lab_007", ts=f"2026-01-{1 + i % 28:02d}T00:00:00Z",
              properties={"usage": {"tokens": 0.1}}) for i in range(10_000)])
    ingest()
    assert qty(measure(lab), "sub_lab", "lab_tokens", JAN) == Decimal("1000")


def test_usage_mapping_feeds_build_invoice(billing_env, ingest):
    write_lines(billing_env["landing"] / "calls.jsonl", [
        event(f"c{i}", ts=f"2026-01-2{i}T00:00:00Z") for i in range(1, 6)])
    ingest()
    frame = measure(billing_env)
    usage = usage_mapping(frame)
    assert set(usage) == set(frame["subscription_id"].unique())
    assert usage["sub_acme_pro"][("api_requests", date(2026, 1, 20))] == 5
    assert usage["sub_acme_pro"][("exports", FEB)] == 0
    catalog = load_catalog(billing_env["catalog"])
    subscription = catalog.subscriptions["sub_acme_pro"]
    draft = build_invoice(subscription, catalog.plans[subscription.plan], catalog.meters,
                          FEB, usage["sub_acme_pro"])
    [calls] = [line for line in draft.lines if line.price_key == "api_calls"]
    assert calls.quantity == 5 and calls.amount == Decimal("10.05")  # 5 x 0.01 + 10.00 flat


def test_register_periods_checks_and_deduplicates(billing_env):
    row_ = UsagePeriod("sub_acme_pro", "acme_corp_001", "professional", JAN, FEB)
    with connect_writer(str(billing_env["warehouse"])) as con:
        assert register_periods(con, [row_, tuple(row_), row_._asdict()]) == 1
        assert con.execute("SELECT period_start, period_end FROM usage_periods").fetchall() == [
            (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))]
        with pytest.raises(ValueError, match="before it starts"):
            register_periods(con, [row_._replace(end=JAN)])
        with pytest.raises(ValueError, match="not a UTC midnight"):
            register_periods(con, [row_._replace(start=datetime(2026, 1, 1, 5, tzinfo=UTC))])
        with pytest.raises(ValueError, match="overlap"):
            register_periods(con, [row_, row_._replace(start=date(2026, 1, 31), end=FEB)])
        assert register_periods(con, [row_, row_._replace(start=FEB, end=date(2026, 3, 1))]) == 2
        assert register_periods(con, []) == 0
        assert aggregate_usage(con).height == 0


def test_aggregate_usage_needs_registered_periods(billing_env):
    with connect_writer(str(billing_env["warehouse"])) as con, \
            pytest.raises(RuntimeError, match="register_periods"):
        aggregate_usage(con)


def test_usage_audit_agrees_with_the_aggregation_on_typed_and_nested_filters(lab, ingest):
    """The blocking check counts events independently; it must use the same filter rules."""
    from pipelines.catalog import load_catalog
    from pipelines.invoicing import audit
    from pipelines.invoicing.month_cuts import due_cuts
    from pipelines.invoicing.usage_measurement import measure_month
    from pipelines.warehouse import connect_reader

    gold = {"tier": 2, "premium": True, "plan": "gold", "meta": {"env": "prod"}}
    write_lines(lab["landing"] / "filters.jsonl", [
        event(f"g{i}", customer="lab_007", properties=props) for i, props in enumerate([
            gold, {**gold, "tier": 2.0}, {**gold, "tier": "2"}, {**gold, "meta": {"env": "dev"}},
            {k: v for k, v in gold.items() if k != "meta"}])])
    ingest()
    catalog = load_catalog(lab["catalog"])
    with connect_writer(str(lab["warehouse"])) as con:
        write_catalog_tables(con, catalog)
        frame = measure_month(con, "2026-02", due_cuts(catalog, "2026-02", LATER),
                              rated_at=LATER)
    assert qty(frame, "sub_lab", "gold_calls", JAN) == 2
    with connect_reader(str(lab["warehouse"])) as con:
        result = audit.usage_coverage(con, "2026-02")
    assert result.passed, result.metadata
