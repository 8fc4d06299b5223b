"""Customer shards everywhere (contract section 12, issue 18): with BILLING_SHARDS=2, an event id
reused across shards is a conflict as on one warehouse; the commands on one document or customer
write that document's shard; the sensors launch one real Dagster run per shard; the API inbox is
applied by the shard of the document each item names.

Runs in subprocesses: the shard count is read when the code location loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines.sharding import shard_of
from tests.support.landing import event, write_lines

A, B = "initech_003", "hooli_005"
"""Two customers: A in shard 0 of 2, B in shard 1 of 2."""

CATALOG = """billing_profiles:
  - {key: manual, default: true, app: none, grace_period: PT2H}
  - {key: erp, app: custom_invoicing, grace_period: PT2H}
customers:
  - {id: initech_003, name: Initech, billing_profile: BILLING_PROFILE}
  - {id: hooli_005, name: Hooli, billing_profile: BILLING_PROFILE}
subscriptions:
  - {id: sub_initech_003, customer: initech_003, plan: professional, start_date: 2026-01-01}
  - {id: sub_hooli_005, customer: hooli_005, plan: professional, start_date: 2026-01-01}
"""


def setup(root: Path, shards: int, profile: str = "manual") -> dict[str, str]:
    """A landing zone and catalog under `root`; the environment of the `billing` command."""
    landing, catalog = root / "landing", root / "catalog"
    landing.mkdir(parents=True)
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalog", catalog)
    (catalog / "customers.yaml").write_text(CATALOG.replace("BILLING_PROFILE", profile))
    env = {**os.environ, "BILLING_SHARDS": str(shards),
           "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"), "BILLING_LANDING": str(landing),
           "BILLING_CATALOG": str(catalog), "BILLING_API_STORE": str(root / "api.sqlite3"),
           "BILLING_NOW": "2026-02-01T01:00:00Z", "PYTHONPATH": str(Path.cwd())}
    env.pop("DAGSTER_HOME", None)
    return env


def january() -> list[object]:
    """January for A and B; `shared_1` sent for A then for B, `shared_2` for B then A (each
    identity's first copy in another shard), and a second file repeating `shared_1` for B."""
    lines: list[object] = []
    for customer in (A, B):
        lines += [event(f"{customer}_api_{i}", customer=customer,
                        ts=f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z") for i in range(3000)]
    lines.insert(10, event("shared_1", customer=A, ts="2026-01-05T00:00:00Z"))
    lines.insert(4000, event("shared_1", customer=B, ts="2026-01-06T00:00:00Z"))
    lines.insert(20, event("shared_2", customer=B, ts="2026-01-07T00:00:00Z"))
    lines.insert(5000, event("shared_2", customer=A, ts="2026-01-08T00:00:00Z"))
    return lines


def billing(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def read(path: Path, query: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(query, params or {}).fetchall()


def shard_file(root: Path, shard: int) -> Path:
    return root / f"warehouse.shard-{shard}-of-2.duckdb"


EVENTS = "SELECT * EXCLUDE (ingested_at) FROM raw.events ORDER BY ALL"
REJECTS = ("SELECT file_id, line_number, reason, detail, source, event_id, customer_id, origin "
           "FROM raw.rejected_events ORDER BY ALL")
LOG = ("SELECT regexp_extract(path, '[^/]+$') AS file, sum(received), sum(accepted), "
       "sum(duplicates), sum(rejected), sum(conflicts) FROM raw.ingestion_log "
       "GROUP BY file ORDER BY file")


def union(root: Path, query: str) -> list[tuple]:
    rows: list[tuple] = []
    for shard in (0, 1):
        rows += read(shard_file(root, shard), query)
    return sorted(rows, key=repr)


def test_an_event_id_reused_across_shards_is_a_conflict_as_on_one_warehouse(tmp_path):
    assert (shard_of(A, 2), shard_of(B, 2)) == (0, 1)
    results = {}
    for shards in (1, 2):
        root = tmp_path / str(shards)
        env = setup(root, shards)
        write_lines(root / "landing" / "january.jsonl", january())
        out = billing(env, "ingest").stdout
        write_lines(root / "landing" / "repeat.jsonl",
                    [event("shared_1", customer=B, ts="2026-01-09T00:00:00Z"),
                     event("b_extra", customer=B, ts="2026-01-09T00:00:00Z")])
        billing(env, "ingest")
        if shards == 1:
            results[1] = [read(root / "warehouse.duckdb", q) for q in (EVENTS, REJECTS, LOG)]
            continue
        assert "2 event(s) rejected as conflicts" in out
        assert not (root / "warehouse.duckdb").exists()
        # the per-file counts summed over the shards' logs match one warehouse's too
        results[2] = [union(root, EVENTS), union(root, REJECTS), read_log_summed(root)]
        # running the check again moves nothing
        assert "rejected as conflicts" not in billing(env, "ingest").stdout
        assert union(root, REJECTS) == results[2][1]
    events_1, rejects_1, log_1 = results[1]
    events_2, rejects_2, log_2 = results[2]
    assert sorted(events_2, key=repr) == sorted(events_1, key=repr)
    assert rejects_2 == sorted(rejects_1, key=repr)
    conflicts = [(r[4], r[5], r[6]) for r in rejects_1 if r[2] == "conflict"]
    assert sorted(conflicts) == [("gateway-eu", "shared_1", B), ("gateway-eu", "shared_1", B),
                                 ("gateway-eu", "shared_2", A)]
    assert log_2 == log_1


def read_log_summed(root: Path) -> list[tuple]:
    """Each file's counts summed over the two shards' ingestion logs."""
    per_path: dict[str, list[int]] = {}
    for shard in (0, 1):
        for path, *counts in read(shard_file(root, shard), LOG):
            total = per_path.setdefault(path, [0] * 5)
            for i, value in enumerate(counts):
                total[i] += value
    return sorted((path, *counts) for path, counts in per_path.items())


def test_commands_on_one_document_write_its_shard(tmp_path):
    root = tmp_path / "two"
    env = setup(root, 2)
    write_lines(root / "landing" / "january.jsonl", january())
    billing(env, "ingest")
    billing(env, "run", "--month", "2026-02")     # within the grace period: drafts
    invoice_of = {customer: read(shard_file(root, shard_of(customer, 2)), """
        SELECT invoice_id FROM billing.invoices WHERE customer_id = $c""", {"c": customer})[0][0]
        for customer in (A, B)}

    adjusted = billing(env, "invoice", "adjust", invoice_of[B], "--description", "goodwill",
                       "--amount", "-5.00")
    assert f"invoice {invoice_of[B]}" in adjusted.stdout
    assert read(shard_file(root, 1), """
        SELECT count(*) FROM billing.invoice_lines WHERE invoice_id = $i
          AND line_type = 'adjustment'""", {"i": invoice_of[B]}) == [(1,)]

    env["BILLING_NOW"] = "2026-02-03T00:00:00Z"
    billing(env, "run", "--month", "2026-02")     # issued and numbered
    [(number_a,)] = read(shard_file(root, 0), "SELECT invoice_number FROM billing.invoices "
                                              "WHERE invoice_id = $i", {"i": invoice_of[A]})
    billing(env, "invoice", "void", number_a, "--reason", "sent twice")     # by its number
    assert read(shard_file(root, 0), "SELECT status FROM billing.invoices WHERE invoice_id = $i",
                {"i": invoice_of[A]}) == [("voided",)]

    billing(env, "credit-note", "create", "--invoice", invoice_of[B], "--amount", "1.00",
            "--reason", "late delivery")
    assert read(shard_file(root, 1), "SELECT count(*) FROM billing.credit_notes "
                                     "WHERE invoice_id = $i", {"i": invoice_of[B]}) == [(1,)]

    # late usage after issue: a correction waiting for approval, decided on B's shard
    write_lines(root / "landing" / "late.jsonl",
                [event(f"{B}_late_{i}", customer=B, ts="2026-01-25T10:00:00Z")
                 for i in range(3000)])
    billing(env, "ingest")
    env["BILLING_NOW"] = "2026-02-04T00:00:00Z"
    billing(env, "run", "--month", "2026-02")
    pending = read(shard_file(root, 1), "SELECT correction_id FROM billing.corrections "
                                        "WHERE status = 'pending_approval' ORDER BY ALL")
    assert pending
    correction = pending[0][0]
    billing(env, "corrections", "approve", correction)
    assert read(shard_file(root, 1), "SELECT status FROM billing.corrections "
                                     "WHERE correction_id = $c", {"c": correction}) \
        != [("pending_approval",)]

    erased = billing(env, "customer", "erase", B, "--reason", "request 42")
    assert "erased" in erased.stdout
    assert read(shard_file(root, 1), "SELECT customer_id FROM billing.erasures") == [(B,)]
    assert read(shard_file(root, 0), "SELECT count(*) FROM billing.erasures") == [(0,)]

    enabled = billing(env, "notify", "enable", "--channel", "ops")
    assert "was not disabled" in enabled.stdout

    # an id no shard holds is refused by name; the base file is never opened for writing
    for args in (("invoice", "void", "INV-000000-99999", "--reason", "x"),
                 ("invoice", "adjust", "inv_nope", "--description", "x", "--amount", "1"),
                 ("credit-note", "create", "--invoice", "inv_nope", "--amount", "1",
                  "--reason", "x"),
                 ("corrections", "reject", "corr_nope", "--reason", "x")):
        refused = billing(env, *args, ok=False)
        assert refused.returncode != 0
        assert "in any of the 2 customer shards" in refused.stderr, refused.stderr
    assert not (root / "warehouse.duckdb").exists()


def sensors_and_inbox(root: str) -> None:
    """Run in a process with BILLING_SHARDS=2 (see the test below): the landing sensor's and the
    inbox sensor's requests, each launched as a real Dagster run of its shard."""
    from datetime import UTC, datetime

    import dagster as dg

    from pipelines.api.rules import PAYMENT_STATUS, STATEMENT
    from pipelines.api.store import ApiStore
    from pipelines.api.store.calls import Call
    from pipelines.definitions import defs
    from pipelines.jobs import BILLING_JOB, INGEST_JOB, SYNC_JOB
    from pipelines.resources import ApiStoreResource, LandingZoneResource
    from pipelines.run_context import NOW_TAG, billing_partition_key, shard_tags
    from pipelines.sensors import api_inbox_sensor, landing_zone_sensor

    now = "2026-02-03T00:00:00Z"
    warehouse = Path(root)
    with dg.instance_for_test() as instance:
        def launch(job: str, request: dg.RunRequest) -> None:
            result = defs.resolve_job_def(job).execute_in_process(
                run_config=request.run_config, partition_key=request.partition_key,
                tags={**request.tags, NOW_TAG: now, "dagster/run_key": request.run_key},
                instance=instance)
            assert result.success

        landing = landing_zone_sensor(dg.build_sensor_context(
            instance=instance, resources={"landing": LandingZoneResource()}))
        requests = landing.run_requests
        assert [(r.partition_key, r.tags["billing/shard"]) for r in requests] == [("0", "0"),
                                                                                ("1", "1")]
        assert len({r.run_key for r in requests}) == 2
        for request in requests:
            launch(INGEST_JOB, request)
        check_identity(instance, defs)
        for shard, customer in ((0, A), (1, B)):
            assert read(shard_file(warehouse, shard),
                        "SELECT DISTINCT customer_id FROM raw.events") == [(customer,)]
            launch(BILLING_JOB, dg.RunRequest(
                partition_key=billing_partition_key("2026-02", shard), tags=shard_tags(shard)))
            launch(SYNC_JOB, dg.RunRequest(partition_key=str(shard), tags=shard_tags(shard)))

        store = ApiStore(str(warehouse / "api.sqlite3"))
        invoice_of = {store_invoice.customer_id: store_invoice.invoice_id
                      for store_invoice in map(store.published_invoice, store.published_ids())}
        assert set(invoice_of) == {A, B}
        at = datetime(2026, 2, 3, 1, tzinfo=UTC)

        def accept(kind: str, invoice_id: str | None, body: dict, key: str) -> int:
            answer = store.accept(Call(kind=kind, invoice_id=invoice_id, body=body,
                                       token_name="erp", token_id=1, request_key=key,
                                       fingerprint=key, received_at=at))
            assert answer.status_code == 202, answer
            return int(answer.body["inbox_item_id"])

        item_a = accept(PAYMENT_STATUS, invoice_of[A], {"trigger": "paid"}, "a")
        item_b = accept(PAYMENT_STATUS, invoice_of[B], {"trigger": "paid"}, "b")
        statement = accept(STATEMENT, None, {"as_of": "2026-02-03T00:30:00Z", "invoices": []},
                           "s")

        def inbox_requests() -> list[dg.RunRequest]:
            result = api_inbox_sensor(dg.build_sensor_context(
                instance=instance, resources={"api_store": ApiStoreResource()}))
            return list(getattr(result, "run_requests", None) or [])

        requests = inbox_requests()
        assert [(r.partition_key, r.tags["billing/inbox_first_item"]) for r in requests] == [
            ("0", str(item_a)), ("1", str(item_b))]
        launch(SYNC_JOB, requests[1])        # shard 1 applies B's item only
        assert store.inbox_item(item_b).status == "applied"
        assert store.inbox_item(item_a).status == "pending"
        assert read(shard_file(warehouse, 1), "SELECT status FROM billing.invoices "
                                              "WHERE invoice_id = $i", {"i": invoice_of[B]}) \
            == [("paid",)]
        requests = inbox_requests()          # only shard 0 has an item left
        assert [r.partition_key for r in requests] == ["0"]
        launch(SYNC_JOB, requests[0])
        assert store.inbox_item(item_a).status == "applied"
        assert read(shard_file(warehouse, 0), "SELECT status FROM billing.invoices "
                                              "WHERE invoice_id = $i", {"i": invoice_of[A]}) \
            == [("paid",)]
        # the statement was offered to both shards: each took its share with its items
        assert store.inbox_item(statement).status == "applied"
        assert sorted(store.item_shares(statement, 2)) == [0, 1]
        assert inbox_requests() == []


def check_identity(instance, defs) -> list[str]:
    """The identity check sensor evaluated for every successful ingestion run, and the job it
    asks for launched once per distinct run key; the keys."""
    import dagster as dg

    from pipelines.jobs import IDENTITY_JOB, INGEST_JOB

    sensor = defs.get_sensor_def("identity_check_after_ingestion")
    keys: list[str] = []
    for run in instance.get_runs(dg.RunsFilter(job_name=INGEST_JOB,
                                               statuses=[dg.DagsterRunStatus.SUCCESS])):
        success = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)[0]
        request = sensor(dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=success.dagster_event,
            dagster_instance=instance, dagster_run=run,
            repository_def=defs.get_repository_def()))
        assert request is not None and request.run_key not in keys
        keys.append(request.run_key)
        assert defs.resolve_job_def(IDENTITY_JOB).execute_in_process(
            instance=instance, tags={"dagster/run_key": request.run_key}).success
    return keys


def sensor_identity(root: str) -> None:
    """Run in a process with BILLING_SHARDS=2: the landing sensor's ingestion runs accept
    `shared_1` and `shared_2` in both shards; billing a shard refuses until the identity check
    the run-status sensor asks for has run; then the later copies are conflicts."""
    import json

    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.jobs import BILLING_JOB, INGEST_JOB
    from pipelines.resources import LandingZoneResource
    from pipelines.run_context import NOW_TAG, billing_partition_key, shard_tags
    from pipelines.sensors import landing_zone_sensor

    warehouse = Path(root)
    with dg.instance_for_test() as instance:
        def launch(job: str, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
            return defs.resolve_job_def(job).execute_in_process(
                run_config=request.run_config, partition_key=request.partition_key,
                tags={**request.tags, NOW_TAG: "2026-02-03T00:00:00Z",
                      "dagster/run_key": request.run_key},
                instance=instance, raise_on_error=False)

        landing = landing_zone_sensor(dg.build_sensor_context(
            instance=instance, resources={"landing": LandingZoneResource()}))
        for request in landing.run_requests:
            assert launch(INGEST_JOB, request).success
        before = union(warehouse, EVENTS)
        billed = launch(BILLING_JOB, dg.RunRequest(
            run_key="bill-0", partition_key=billing_partition_key("2026-02", 0),
            tags=shard_tags(0)))
        refusal = [str(getattr(getattr(e.event_specific_data, "error", None), "message", None)
                       or e.message) for e in billed.all_events if e.is_step_failure]
        keys = check_identity(instance, defs)
        again = check_identity(instance, defs)      # asked again: the same keys, nothing moved
        billed_after = launch(BILLING_JOB, dg.RunRequest(
            run_key="bill-0-again", partition_key=billing_partition_key("2026-02", 0),
            tags=shard_tags(0)))
        print(json.dumps({
            "accepted_before": len(before), "billing_refused": not billed.success,
            "refusal": refusal, "keys": keys, "again": again,
            "billed_after": billed_after.success,
            "events": union(warehouse, EVENTS), "rejects": union(warehouse, REJECTS),
            "log": read_log_summed(warehouse)}, default=str))


def test_a_reused_event_id_ingested_by_sensor_runs_is_a_conflict_once_checked(tmp_path):
    """The landing sensor's per-shard runs, then the identity check job launched by its
    run-status sensor: the same events, rejects and per-file counts as one warehouse."""
    import json

    one = tmp_path / "one"
    env = setup(one, 1)
    write_lines(one / "landing" / "january.jsonl", january())
    billing(env, "ingest")
    expected = [read(one / "warehouse.duckdb", q) for q in (EVENTS, REJECTS, LOG)]

    two = tmp_path / "two"
    env = setup(two, 2)
    write_lines(two / "landing" / "january.jsonl", january())
    done = subprocess.run(
        [sys.executable, "-c", "from tests.integration.test_shard_routing import "
                               f"sensor_identity; sensor_identity({str(two)!r})"],
        env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # before the check both shards accepted shared_1 and shared_2: billing refused to run
    assert seen["accepted_before"] == len(expected[0]) + 2
    assert seen["billing_refused"]
    assert any("not yet checked for event ids reused across customer shards" in m
               for m in seen["refusal"]), seen["refusal"]
    assert len(seen["keys"]) == 2 and all(k.startswith("identity-after-") for k in seen["keys"])
    assert seen["again"] == seen["keys"]
    assert seen["billed_after"]
    as_lists = json.loads(json.dumps(expected, default=str))
    assert seen["events"] == sorted(as_lists[0], key=repr)
    assert seen["rejects"] == sorted(as_lists[1], key=repr)
    conflicts = sorted([r[4], r[5], r[6]] for r in seen["rejects"] if r[2] == "conflict")
    assert conflicts == [["gateway-eu", "shared_1", B], ["gateway-eu", "shared_2", A]]
    assert seen["log"] == as_lists[2]


def test_sensors_launch_a_run_per_shard_and_the_inbox_reaches_the_documents_shard(tmp_path):
    env = setup(tmp_path, 2, profile="erp")
    write_lines(tmp_path / "landing" / "january.jsonl",
                [e for e in january() if "shared" not in e["event_id"]])
    env["BILLING_NOW"] = "2026-02-03T00:00:00Z"
    done = subprocess.run(
        [sys.executable, "-c", "from tests.integration.test_shard_routing import "
                               f"sensors_and_inbox; sensors_and_inbox({str(tmp_path)!r})"],
        env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


def test_one_warehouse_inbox_sensor_launches_as_before(tmp_path):
    """N = 1 (this process): one run keyed by the first pending item, no partition, no shard
    tag; nothing while the inbox is empty or that run is in flight."""
    from datetime import UTC, datetime

    import dagster as dg

    from pipelines.api.rules import STATEMENT
    from pipelines.api.store import ApiStore
    from pipelines.api.store.calls import Call
    from pipelines.resources import ApiStoreResource
    from pipelines.sensors import api_inbox_sensor

    path = str(tmp_path / "api.sqlite3")
    resources = {"api_store": ApiStoreResource(path=path)}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(api_inbox_sensor(context), dg.SkipReason)
        answer = ApiStore(path).accept(Call(
            kind=STATEMENT, invoice_id=None, body={"as_of": "2026-02-03T00:30:00Z",
                                                   "invoices": []},
            token_name="erp", token_id=1, request_key="s", fingerprint="s",
            received_at=datetime(2026, 2, 3, 1, tzinfo=UTC)))
        first = answer.body["inbox_item_id"]
        result = api_inbox_sensor(dg.build_sensor_context(instance=instance,
                                                          resources=resources))
        [request] = result.run_requests
        assert request.run_key == f"inbox-{first}-1"
        assert request.partition_key is None
        assert request.tags == {"billing/inbox_first_item": str(first)}
