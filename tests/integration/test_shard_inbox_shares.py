"""Statements and Stripe webhook events with customer shards (issue 18): every shard takes its
share of the item through its real sync runs, the item is decided once all shards recorded
theirs, and nothing is applied twice on a later run.

- A custom invoicing statement listing invoices of every shard (and orphans) gives, with 2 and
  4 shards, the `sync.provider_invoices` and `sync.provider_credit_notes` rows and the
  invoice and credit note reconciliation of one warehouse.
- A Stripe `invoice.paid` webhook event for an invoice of shard 1 (mapped in shard 1's
  `sync.external_ids`) is recorded by shard 1 only and marks the invoice paid there; an event
  about a Stripe invoice no shard mapped is "not ours" only after every shard looked.

Runs in subprocesses: the shard count is read when the code location loads."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.sharding import shard_of
from tests.support.landing import event, write_lines

CUSTOMERS = ["acme_corp_001", "initech_003", "hooli_005", "globex_002"]
"""Shards of 4: 3, 2, 1, 0; of 2: 1, 0, 1, 0."""

CATALOG = ("billing_profiles:\n"
           "  - {key: erp, default: true, app: custom_invoicing, grace_period: PT2H}\n"
           "customers:\n" + "".join(f"  - {{id: {c}, name: {c}}}\n" for c in CUSTOMERS)
           + "subscriptions:\n" + "".join(
               f"  - {{id: sub_{c}, customer: {c}, plan: professional, "
               "start_date: 2026-01-01}\n" for c in CUSTOMERS))

NOW = "2026-02-03T00:00:00Z"


def setup(root: Path, shards: int) -> dict[str, str]:
    """January's usage for the four customers, their catalog; the process environment."""
    landing, catalog = root / "landing", root / "catalog"
    landing.mkdir(parents=True)
    shutil.copytree(Path(__file__).resolve().parents[2] / "catalog", catalog)
    (catalog / "customers.yaml").write_text(CATALOG)
    write_lines(landing / "january.jsonl", [
        event(f"{customer}_api_{i}", customer=customer, ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z")
        for index, customer in enumerate(CUSTOMERS) for i in range(1000 * (index + 1))])
    env = {**os.environ, "BILLING_SHARDS": str(shards),
           "BILLING_WAREHOUSE": str(root / "warehouse.duckdb"), "BILLING_LANDING": str(landing),
           "BILLING_CATALOG": str(catalog), "BILLING_API_STORE": str(root / "api.sqlite3"),
           "BILLING_NOW": NOW, "PYTHONPATH": str(Path.cwd())}
    env.pop("DAGSTER_HOME", None)
    return env


def _run(env: dict[str, str], call: str) -> dict:
    done = subprocess.run([sys.executable, "-c", "from tests.integration.test_shard_inbox_shares "
                           f"import {call}; {call}()"], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _accept(kind: str, body: dict, key: str, event_id: str | None = None) -> int:
    from datetime import UTC, datetime

    from pipelines.api.store import ApiStore, Call

    answer = ApiStore().accept(Call(kind=kind, invoice_id=None, body=body, token_name="erp",
                                    token_id=1, request_key=key, fingerprint=key,
                                    received_at=datetime(2026, 2, 3, 1, tzinfo=UTC),
                                    event_id=event_id))
    assert answer.status_code == 202, answer
    return int(answer.body["inbox_item_id"])


def _month_and_sync() -> list[str]:
    """Ingest, bill February (issued: past the grace period) and sync every shard (the custom
    invoicing invoices are issued and published to the API's store); their ids."""
    from pipelines import settings
    from pipelines.api.store import ApiStore
    from pipelines.cli.launch import run_every_shard, run_job
    from pipelines.jobs import (
        BILLING_JOB,
        IDENTITY_JOB,
        INGEST_JOB,
        NUMBERING_JOB,
        SYNC_JOB,
        ingest_run_config,
    )
    from pipelines.run_context import now_tags

    tags = now_tags(settings.now())
    run_every_shard(INGEST_JOB, ingest_run_config())
    if settings.shard_count() > 1:
        run_job(IDENTITY_JOB, tags=tags)
    run_every_shard(BILLING_JOB, month="2026-02", tags=tags)
    run_every_shard(SYNC_JOB, tags=tags)
    if settings.shard_count() > 1:
        run_job(NUMBERING_JOB)
    return sorted(ApiStore().published_ids())


STATEMENT_TABLES = {
    "sync.provider_invoices": "SELECT * FROM sync.provider_invoices",
    "sync.provider_credit_notes": "SELECT * FROM sync.provider_credit_notes",
    "finance.invoice_reconciliation": "SELECT * FROM finance.invoice_reconciliation",
    "finance.credit_note_reconciliation": "SELECT * FROM finance.credit_note_reconciliation",
}


def statement_scenario() -> None:
    """In a process with BILLING_SHARDS set: a statement over every shard's invoices (one paid,
    one with another total), an orphan, an unknown invoice id and an orphan credit note,
    applied by the sync runs, then reconciled; prints the tables and the item's outcome."""
    from pipelines import settings
    from pipelines.api.rules import STATEMENT
    from pipelines.api.store import ApiStore
    from pipelines.cli.launch import run_every_shard
    from pipelines.jobs import RECONCILE_JOB, SYNC_JOB
    from pipelines.run_context import now_tags
    from pipelines.sharding import connect_finance_reader
    from tests.support.statements import credit_note_entry, entry, statement

    invoices = _month_and_sync()
    with connect_finance_reader() as con:
        ledger = dict(con.execute("SELECT invoice_id, CAST(total AS VARCHAR) "
                                  "FROM billing.invoices").fetchall())
    entries = [entry(f"erp_{n}", invoice_id=invoice_id, currency="EUR",
                     total=ledger[invoice_id] if n else "1.00", lines=[],
                     status="paid" if n == 1 else "open",
                     amount_paid=ledger[invoice_id] if n == 1 else "0.00")
               for n, invoice_id in enumerate(invoices)]
    body = statement(*entries, entry("erp_orphan", invoice_id=None),
                     entry("erp_unknown", invoice_id="inv_nobody"))
    body["credit_notes"] = [credit_note_entry("erp_cn_orphan", credit_note_id=None,
                                              invoice_id=None)]
    item = _accept(STATEMENT, body, "statement-1")
    tags = now_tags(settings.now())
    run_every_shard(SYNC_JOB, tags=tags)
    store = ApiStore()
    decided = store.inbox_item(item)
    with connect_finance_reader() as con:
        recorded = con.execute("SELECT count(*) FROM sync.provider_events "
                               "WHERE event_id = $e", {"e": f"inbox:{item}"}).fetchall()
    run_every_shard(SYNC_JOB, tags=tags)          # a later run: nothing applied again
    run_every_shard(RECONCILE_JOB, tags=tags)
    with connect_finance_reader() as con:
        tables = {name: sorted(con.execute(query).fetchall(), key=repr)
                  for name, query in STATEMENT_TABLES.items()}
        again = con.execute("SELECT count(*) FROM sync.provider_events "
                            "WHERE event_id = $e", {"e": f"inbox:{item}"}).fetchall()
    print(json.dumps({
        "invoices": invoices, "status": decided.status, "reason": decided.reason,
        "shares": sorted((s.shard, s.outcome) for s in
                         store.item_shares(item, settings.shard_count()).values()),
        "recorded": recorded, "again": again, "tables": tables}, default=str))


def test_a_statement_over_every_shard_gives_the_results_of_one_warehouse(tmp_path):
    assert [shard_of(c, 4) for c in CUSTOMERS] == [3, 2, 1, 0]
    assert [shard_of(c, 2) for c in CUSTOMERS] == [1, 0, 1, 0]
    seen = {shards: _run(setup(tmp_path / str(shards), shards), "statement_scenario")
            for shards in (1, 2, 4)}
    one = seen[1]
    assert len(one["invoices"]) == 4 and one["status"] == "applied" and one["shares"] == []
    assert len(one["tables"]["sync.provider_invoices"]) == 6
    assert len(one["tables"]["sync.provider_credit_notes"]) == 1
    statuses = {row[2] for row in one["tables"]["finance.invoice_reconciliation"]}
    assert len(statuses) > 1        # matched, mismatched, orphan: a comparison worth making
    for shards in (2, 4):
        many = seen[shards]
        assert many["invoices"] == one["invoices"]
        assert (many["status"], many["reason"]) == ("applied", None)
        assert many["shares"] == [[k, "applied"] for k in range(shards)]
        # each shard recorded its own part once; a later run applied nothing again
        assert many["recorded"] == many["again"] == [[shards]]
        for table in STATEMENT_TABLES:
            assert many["tables"][table] == one["tables"][table], (shards, table)


def stripe_scenario() -> None:
    """In a process with BILLING_SHARDS=2: the month issued and published; shard 1's invoice of
    hooli_005 mapped to the Stripe invoice `in_hooli` (as Stripe's sync records it); webhook
    events `invoice.paid` for `in_hooli` and for `in_stranger` (mapped nowhere), applied by
    real sync runs (their inbox step) of one shard, then the other; the Stripe events applied
    as the sync's `stripe_events` step applies them after polling."""
    from datetime import UTC, datetime

    import dagster as dg

    from pipelines import settings
    from pipelines.api.rules import STRIPE_EVENT
    from pipelines.api.store import ApiStore
    from pipelines.definitions import defs
    from pipelines.jobs import SYNC_JOB
    from pipelines.providers.stripe_sync.inbound import apply_provider_events
    from pipelines.resources import ApiStoreResource
    from pipelines.run_context import now_tags
    from pipelines.sensors import api_inbox_sensor
    from pipelines.sharding import warehouse_paths
    from pipelines.warehouse import connect_writer

    _month_and_sync()
    paths = warehouse_paths()
    now = datetime(2026, 2, 3, 2, tzinfo=UTC)
    with connect_writer(paths[1]) as con:
        [(hooli,)] = con.execute("SELECT invoice_id FROM billing.invoices "
                                 "WHERE customer_id = 'hooli_005'").fetchall()
        con.execute("INSERT INTO sync.external_ids VALUES ('stripe', 'invoice', $i, 'in_hooli', "
                    "$now)", {"i": hooli, "now": now})

    def paid(stripe_invoice: str, event_id: str) -> dict:
        return {"id": event_id, "type": "invoice.paid", "created": 1770084000,
                "data": {"object": {"object": "invoice", "id": stripe_invoice,
                                    "metadata": {}}}}

    ours = _accept(STRIPE_EVENT, paid("in_hooli", "evt_ours"), "evt_ours", "evt_ours")
    stranger = _accept(STRIPE_EVENT, paid("in_stranger", "evt_stranger"), "evt_stranger",
                       "evt_stranger")
    store = ApiStore()
    seen: dict[str, object] = {}
    with dg.instance_for_test() as instance:
        def requests() -> list[dg.RunRequest]:
            result = api_inbox_sensor(dg.build_sensor_context(
                instance=instance, resources={"api_store": ApiStoreResource()}))
            return list(getattr(result, "run_requests", None) or [])

        def launch(request: dg.RunRequest) -> None:
            # the sync job's inbox step (its Stripe steps would call Stripe: no key here)
            assert defs.resolve_job_def(SYNC_JOB).execute_in_process(
                partition_key=request.partition_key, instance=instance,
                asset_selection=[dg.AssetKey(["sync", "api_inbox"])],
                tags={**request.tags, **now_tags(now),
                      "dagster/run_key": request.run_key}).success

        first = requests()
        seen["first"] = [(r.partition_key, r.tags["billing/inbox_first_item"]) for r in first]
        launch(first[1])                  # shard 1 takes its shares first
        seen["after_shard_1"] = [store.inbox_item(i).status for i in (ours, stranger)]
        seen["left"] = [(r.partition_key, r.tags["billing/inbox_first_item"])
                        for r in requests()]
        launch(requests()[0])             # then shard 0
        seen["after_both"] = [(store.inbox_item(i).status, store.inbox_item(i).reason)
                              for i in (ours, stranger)]
        seen["then"] = [r.partition_key for r in requests()]
        for request in first:             # launched again: no share taken twice
            launch(dg.RunRequest(run_key=f"{request.run_key}-again",
                                 partition_key=request.partition_key, tags=request.tags))
    recorded = []
    for path in paths:
        with connect_writer(path) as con:
            apply_provider_events(con, now=now)
            recorded.append(con.execute("SELECT event_id, outcome FROM sync.provider_events "
                                        "WHERE provider = 'stripe' ORDER BY ALL").fetchall())
            recorded.append(con.execute("SELECT status FROM billing.invoices "
                                        "WHERE invoice_id = $i", {"i": hooli}).fetchall())
    seen["recorded"] = recorded
    seen["shares"] = [sorted((s.shard, s.outcome, s.detail) for s in
                             store.item_shares(i, settings.shard_count()).values())
                      for i in (ours, stranger)]
    seen["items"] = [ours, stranger]
    print(json.dumps(seen, default=str))


def test_a_stripe_webhook_event_is_applied_by_the_shard_whose_mapping_knows_it(tmp_path):
    seen = _run(setup(tmp_path, 2), "stripe_scenario")
    ours, _ = seen["items"]
    # both events are offered to both shards, keyed by each shard's first item
    assert seen["first"] == [["0", str(ours)], ["1", str(ours)]]
    # after shard 1 alone: neither item is decided (shard 0 has not looked yet)
    assert seen["after_shard_1"] == ["pending", "pending"]
    assert seen["left"] == [["0", str(ours)]]
    assert seen["after_both"] == [
        ["applied", "shard 0: not ours (stripe invoice in_hooli is not mapped to an invoice "
                    "of ours)"],
        ["rejected", "not ours in any of the 2 customer shards: stripe invoice in_stranger is "
                     "not mapped to an invoice of ours"]]
    assert seen["then"] == []
    shard_0_events, shard_0_invoice, shard_1_events, shard_1_invoice = seen["recorded"]
    assert shard_0_events == [] and shard_0_invoice == []
    assert shard_1_events == [["evt_ours", "applied"]] and shard_1_invoice == [["paid"]]
    not_mapped = "stripe invoice in_stranger is not mapped to an invoice of ours"
    assert seen["shares"] == [
        [[0, "not_ours", "stripe invoice in_hooli is not mapped to an invoice of ours"],
         [1, "applied", None]],
        [[0, "not_ours", not_mapped], [1, "not_ours", not_mapped]]]
