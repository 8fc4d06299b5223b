"""The ingestion job through Dagster: assets, the blocking check, the pool, the sensor, the CLI."""

from __future__ import annotations

import itertools
import json
import shutil

import dagster as dg
import pytest
import yaml

from pipelines.jobs import INGEST_JOB
from tests.support.environment import REPO
from tests.support.landing import event, write_lines
from tests.support.warehouse import query


def ingest_job() -> dg.JobDefinition:
    from pipelines.definitions import defs

    return defs.resolve_job_def(INGEST_JOB)


def test_whole_ingestion_job_on_a_temp_warehouse(billing_env):
    landing, warehouse = billing_env["landing"], billing_env["warehouse"]
    write_lines(landing / "a.jsonl", [event("e1"), event("e1"), "garbage",
                                      event("e2", customer="nobody")])
    with dg.instance_for_test() as instance:
        result = ingest_job().execute_in_process(instance=instance)
    assert result.success
    materialized = {e.asset_key.to_user_string()
                    for e in result.get_asset_materialization_events()}
    assert materialized == {"billing/catalog", "raw/events"}
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == "ingestion_counts_add_up"
    raw_meta = next(e.materialization.metadata
                    for e in result.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["raw", "events"]))
    assert {k: raw_meta[k].value for k in ("received", "accepted", "duplicates", "rejected")} == {
        "received": 4, "accepted": 1, "duplicates": 1, "rejected": 2}
    assert query(warehouse, "SELECT count(*) FROM billing.customers") == [(6,)]
    assert query(warehouse, "SELECT price_key, tier_mode FROM billing.prices "
                            "WHERE plan_key = 'professional' AND price_type = 'tiered'") == [
        ("api_calls", "graduated")]


def test_counts_check_catches_a_log_that_does_not_match_the_data(billing_env, ingest):
    from assets.ingestion import ingestion_counts_add_up
    from pipelines.resources import WarehouseResource
    from pipelines.warehouse import connect_writer

    write_lines(billing_env["landing"] / "a.jsonl", [event("e1"), event("e2"), "bad"])
    ingest()
    resource = WarehouseResource(path=str(billing_env["warehouse"]))
    assert ingestion_counts_add_up(warehouse=resource).passed
    with connect_writer(str(billing_env["warehouse"])) as con:
        # a lost event: the log still says 2 accepted, but only 1 is stored
        con.execute("DELETE FROM raw.events WHERE event_id = 'e2'")
    failed = ingestion_counts_add_up(warehouse=resource)
    assert not failed.passed
    assert "accepted differs" in failed.metadata["failure_cases"].value
    with connect_writer(str(billing_env["warehouse"])) as con:
        con.execute("UPDATE raw.ingestion_log SET accepted = 1, duplicates = 5")
    failed = ingestion_counts_add_up(warehouse=resource)
    assert not failed.passed
    assert "received != accepted + duplicates + rejected" in (
        failed.metadata["failure_cases"].value)


def test_invalid_catalog_fails_the_run_naming_file_entry_and_fault(billing_env):
    plans = billing_env["catalog"] / "plans.yaml"
    doc = yaml.safe_load(plans.read_text())
    doc["plans"][0]["prices"][1]["tiers"][1]["up_to"] = 500   # below the tier before it
    doc["plans"][0]["prices"][0]["amount"] = "10.001"          # not payable in USD... and
    plans.write_text(yaml.safe_dump(doc, sort_keys=False))
    with dg.instance_for_test() as instance:
        result = ingest_job().execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    messages = " ".join(str(e.event_specific_data.error.message) for e in failures)
    assert f"{plans}: plans[professional].prices[api_calls].tiers[1]" in messages
    assert "tiers out of order" in messages


def test_flat_amount_finer_than_the_currency_is_refused_by_the_pandera_schema(billing_env):
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.catalog.warehouse_tables import catalog_frames, check_catalog_frames

    plans = billing_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace('amount: "1500"', 'amount: "1500.5"'))
    frames = catalog_frames(load_catalog(billing_env["catalog"]))
    with pytest.raises(CatalogError) as err:
        check_catalog_frames(frames)
    [fault] = err.value.faults
    assert fault.startswith(f"{plans}: prices[starter_jp.platform_fee]")
    assert "more decimals than the currency" in fault


def get_ingest_job() -> dg.JobDefinition:
    """Module-level, so the multiprocess executor can rebuild the job in its subprocesses."""
    return ingest_job()


def test_multiprocess_run_keeps_warehouse_writers_apart(billing_env, tmp_path):
    """billing/catalog and raw/events do not depend on each other, so the multiprocess executor
    would run them at once; the shipped pool limit keeps one warehouse step at a time."""
    write_lines(billing_env["landing"] / "a.jsonl", [event(f"e{i}") for i in range(1000)])
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    multiprocess = {"execution": {"config": {"multiprocess": {"max_concurrent": 4}}}}
    with (dg.DagsterInstance.from_config(str(home)) as instance,
          dg.execute_job(dg.reconstructable(get_ingest_job), instance=instance,
                         run_config=multiprocess) as result):
        assert result.success
        records = instance.get_records_for_run(result.run_id).records
    assert any("blocked by limit for pool warehouse" in (r.event_log_entry.message or "")
               for r in records), "the pool never held a step back"
    windows: dict[str, list[float]] = {}
    for record in records:
        entry = record.event_log_entry
        if entry.dagster_event is None or entry.step_key is None:
            continue
        kind = entry.dagster_event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            windows.setdefault(entry.step_key, [0.0, 0.0])[0] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            windows.setdefault(entry.step_key, [0.0, 0.0])[1] = entry.timestamp
    assert {"billing__catalog", "raw__events"} <= set(windows)
    spans = sorted(windows.values())
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"warehouse steps overlapped: {windows}"
    assert query(billing_env["warehouse"], "SELECT count(*) FROM raw.events") == [(1000,)]


def test_sensor_requests_new_files_once(billing_env):
    from pipelines.resources import LandingZoneResource
    from pipelines.sensors import landing_zone_sensor

    landing = billing_env["landing"]
    resource = LandingZoneResource(path=str(landing))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": resource})
        empty = landing_zone_sensor(context)
        assert not empty.run_requests
        write_lines(landing / "a.jsonl", [event("e1")])
        (landing / "b.jsonl.part").write_text("{}\n")           # still being written
        first = landing_zone_sensor(dg.build_sensor_context(
            instance=instance, cursor=empty.cursor, resources={"landing": resource}))
        [request] = first.run_requests
        assert request.run_config["ops"]["raw__events"]["config"]["files"] == [
            str(landing / "a.jsonl")]
        again = landing_zone_sensor(dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"landing": resource}))
        assert not again.run_requests
        write_lines(landing / "c.csv", [])
        third = landing_zone_sensor(dg.build_sensor_context(
            instance=instance, cursor=first.cursor, resources={"landing": resource}))
        assert third.run_requests[0].run_config["ops"]["raw__events"]["config"]["files"] == [
            str(landing / "c.csv")]
        assert json.loads(third.cursor)["seen"].keys() == {str(landing / "a.jsonl"),
                                                           str(landing / "c.csv")}


def test_sensor_launches_again_files_whose_run_failed(billing_env):
    from pipelines.resources import LandingZoneResource
    from pipelines.sensors import MAX_ATTEMPTS, landing_zone_sensor

    landing = billing_env["landing"]
    resources = {"landing": LandingZoneResource(path=str(landing))}
    write_lines(landing / "a.jsonl", [event("e1")])
    plans = billing_env["catalog"] / "plans.yaml"
    good_plans = plans.read_text()
    plans.write_text(good_plans.replace("currency: USD", "currency: XXY", 1))  # invalid

    def tick(instance, cursor):
        return landing_zone_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                           resources=resources))

    def launch(instance, request):
        return ingest_job().execute_in_process(
            instance=instance, run_config=request.run_config, raise_on_error=False,
            tags={"dagster/run_key": request.run_key})

    with dg.instance_for_test() as instance:
        first = tick(instance, None)
        [request] = first.run_requests
        # still running (no run recorded yet): nothing is launched twice
        assert not tick(instance, first.cursor).run_requests
        assert not launch(instance, request).success
        retry = tick(instance, first.cursor)
        [again] = retry.run_requests
        assert again.run_key == f"{request.run_key}-attempt2"
        assert again.run_config == request.run_config
        plans.write_text(good_plans)
        assert launch(instance, again).success
        done = tick(instance, retry.cursor)
        assert not done.run_requests and json.loads(done.cursor)["launched"] == {}
        assert query(billing_env["warehouse"], "SELECT event_id FROM raw.events") == [("e1",)]
    # a file that keeps failing is launched MAX_ATTEMPTS times in all, then left to a person
    plans.write_text(good_plans.replace("currency: USD", "currency: XXY", 1))
    write_lines(landing / "b.jsonl", [event("e2")])
    with dg.instance_for_test() as instance:
        cursor, launches = retry.cursor, 0
        state = tick(instance, json.dumps({"seen": json.loads(cursor)["seen"],
                                            "launched": {}}))
        while state.run_requests:
            [request] = state.run_requests
            launches += 1
            launch(instance, request)
            state = tick(instance, state.cursor)
        assert launches == MAX_ATTEMPTS


def test_billing_ingest_and_reprocess_commands(billing_env, capsys):
    from pipelines.cli import main

    write_lines(billing_env["landing"] / "a.jsonl", [
        event("e1"), event("e1"), "garbage", event("e2", customer="newco_007")])
    main(["ingest"])
    out = capsys.readouterr().out
    assert "a.jsonl" in out
    [total] = [line.split() for line in out.splitlines() if line.startswith("total")]
    assert total == ["total", "4", "1", "1", "2", "0"]
    assert "malformed_line 1" in out and "unknown_customer 1" in out

    main(["ingest"])
    assert "no new files to ingest" in capsys.readouterr().out

    customers = billing_env["catalog"] / "customers.yaml"
    customers.write_text(customers.read_text().replace(
        "customers:\n", "customers:\n  - {id: newco_007, name: NewCo}\n", 1))
    main(["reprocess-rejected"])
    out = capsys.readouterr().out
    assert "re-processed 1 unknown-customer events: accepted 1" in out
    assert query(billing_env["warehouse"], "SELECT count(*) FROM raw.events") == [(2,)]
