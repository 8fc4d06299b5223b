"""Customers and subscriptions from a CRM (contract section 11), end to end: put over real HTTP
to `billing api` on 127.0.0.1, billed by the next real Dagster run, a change of plan picked up
by the run after, one definition per id across the YAML and the API, and a bulk table's bad row
named by the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devkit.api_client import ApiError
from devkit.events_client import EventsClient
from pipelines.api.store import ApiStore
from pipelines.jobs import BILLING_JOB
from tests.support.api import error, start_api, stop_api
from tests.support.dagster_runs import ingest_landed, run_billing, run_job, step_failures
from tests.support.landing import event, write_lines
from tests.support.warehouse import query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H}
customers:
  - {id: acme_corp_001, name: Acme Corporation, billing_profile: manual}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""
SUBSCRIPTION = {"customer": "crm_007", "plan": "professional", "start_date": "2026-01-01",
                "billing_anchor": 1}


@pytest.fixture
def crm(billing_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[tuple[EventsClient, dict[str, Path]]]:
    """`billing api` over the store the pipeline reads (beside the warehouse), a small YAML
    catalog, and a client with a `catalog:write` token."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS, encoding="utf-8")
    store_path = billing_env["warehouse"].parent / "api_store.sqlite"
    monkeypatch.setenv("BILLING_API_STORE", str(store_path))
    token = ApiStore(str(store_path)).create_token("crm", ["catalog:write"])
    server = start_api(store_path, store_path.parent / "api.log",
                       settings={"BILLING_LANDING": str(billing_env["landing"])})
    try:
        with EventsClient(server.url, token) as client:
            yield client, billing_env
    finally:
        stop_api(server)


def invoices_of(warehouse: Path, subscription: str) -> list[tuple[object, ...]]:
    return query(warehouse, """
        SELECT boundary::VARCHAR, plan_key, currency, total > 0 FROM billing.invoices
        WHERE subscription_id = $s ORDER BY boundary""", {"s": subscription})


def test_a_crm_customer_is_billed_by_the_next_run_and_its_plan_change_by_the_one_after(
        crm: tuple[EventsClient, dict[str, Path]]) -> None:
    client, env = crm
    created = client.put_customer("crm_007", {"name": "CRM Seven", "email": "ap@crm7.example",
                                              "billing_profile": "manual"})
    assert (created["change"], created["version"], created["changed_by"]) == (
        "created", 1, "crm")
    assert client.put_subscription("sub_crm_007", SUBSCRIPTION)["change"] == "created"
    again = client.put_subscription("sub_crm_007", SUBSCRIPTION)
    assert (again["change"], again["version"]) == ("unchanged", 1)

    # the customer's events are accepted (the ingestion's catalog has it), then billed
    write_lines(env["landing"] / "jan.jsonl", [
        event(f"crm_{i}", customer="crm_007", ts=f"2026-01-{1 + i:02d}T10:00:00Z")
        for i in range(20)])
    ingest_landed("2026-02-01T06:00:00Z")
    assert query(env["warehouse"], "SELECT count(*) FROM raw.events "
                 "WHERE customer_id = 'crm_007'") == [(20,)]
    run_billing("2026-02", "2026-02-03T00:00:00Z")
    assert invoices_of(env["warehouse"], "sub_crm_007") == [
        ("2026-02-01", "professional", "USD", True)]
    [(count,)] = query(env["warehouse"], """
        SELECT sum(u.events_counted) FROM billing.usage_quantities u
        WHERE u.subscription_id = 'sub_crm_007' AND u.meter_key = 'api_requests'""")
    assert count == 20

    # a change of plan in the CRM: the run after bills the new plan
    changed = client.put_subscription("sub_crm_007", {**SUBSCRIPTION, "plan": "business_eu"})
    assert (changed["change"], changed["version"]) == ("updated", 2)
    run_billing("2026-03", "2026-03-03T00:00:00Z")
    assert invoices_of(env["warehouse"], "sub_crm_007")[-1] == (
        "2026-03-01", "business_eu", "EUR", True)
    # finance sees which version the run used, and who put it
    assert query(env["warehouse"], """
        SELECT source_file, source_version, changed_by, plan_key FROM billing.subscriptions
        WHERE subscription_id = 'sub_crm_007'""") == [("api store", 2, "crm", "business_eu")]
    history = client.subscription_versions("sub_crm_007")
    assert [(v["version"], v["fields"]["plan"]) for v in history] == [
        (2, "business_eu"), (1, "professional")]


def test_one_definition_per_id_across_the_yaml_and_the_api(
        crm: tuple[EventsClient, dict[str, Path]]) -> None:
    client, env = crm
    customers_yaml = env["catalog"] / "customers.yaml"
    # an id the YAML defines is refused at the put, naming where it is defined
    with pytest.raises(ApiError) as refused:
        client.put_customer("acme_corp_001", {"name": "Acme from the CRM"})
    assert (refused.value.status_code, refused.value.field) == (409, "id")
    assert f"{customers_yaml}: customers[acme_corp_001]" in str(refused.value)
    # the YAML gains an id the API already holds: the next run fails naming both places
    client.put_customer("crm_007", {"name": "CRM Seven", "billing_profile": "manual"})
    customers_yaml.write_text(CUSTOMERS.replace(
        "customers:\n", "customers:\n  - {id: crm_007, name: CRM Seven in YAML}\n"),
        encoding="utf-8")
    result = run_job(BILLING_JOB, "2026-02-03T00:00:00Z", partition="2026-02-01")
    assert not result.success
    failure = "\n".join(step_failures(result))
    assert ("api store (version 1): customers[crm_007]: duplicate id 'crm_007' "
            f"(also defined at {customers_yaml}: customers[crm_007])") in failure


def test_a_put_naming_a_plan_the_yaml_lacks_is_a_422_naming_the_field(
        crm: tuple[EventsClient, dict[str, Path]]) -> None:
    client, _ = crm
    client.put_customer("crm_007", {"name": "CRM Seven"})
    with pytest.raises(ApiError) as refused:
        client.put_subscription("sub_crm_007", {**SUBSCRIPTION, "plan": "platinum"})
    assert (refused.value.status_code, refused.value.field) == (422, "plan")
    assert "unknown plan 'platinum'" in str(refused.value)
    with pytest.raises(ApiError) as refused:
        client.put_subscription("sub_crm_007", {**SUBSCRIPTION, "start_date": "2026-02-30"})
    assert (refused.value.status_code, refused.value.field) == (422, "start_date")


def test_a_bulk_tables_bad_row_fails_the_run_naming_file_row_and_field(
        billing_env: dict[str, Path]) -> None:
    catalog = billing_env["catalog"]
    (catalog / "customers.yaml").write_text(CUSTOMERS, encoding="utf-8")
    (catalog / "crm.yaml").write_text("customers_table: crm_customers.csv\n", encoding="utf-8")
    (catalog / "crm_customers.csv").write_text(
        "id,name,billing_profile\ncrm_1,One,manual\ncrm_2,Two,platinum\n", encoding="utf-8")
    result = run_job(BILLING_JOB, "2026-02-03T00:00:00Z", partition="2026-02-01")
    assert not result.success
    assert (f"{catalog / 'crm_customers.csv'}: row 2: customers[crm_2]: unknown "
            "billing_profile 'platinum'") in "\n".join(step_failures(result))


def test_the_customer_endpoints_answer_by_scope_and_show_the_current_version(
        crm: tuple[EventsClient, dict[str, Path]]) -> None:
    client, env = crm
    base = str(client.http.base_url)
    other = ApiStore(str(env["warehouse"].parent / "api_store.sqlite")).create_token(
        "erp", ["invoices:sync"])
    refused = httpx.put(f"{base}/api/v1/customers/crm_007", json={"name": "X"},
                        headers={"Authorization": f"Bearer {other}"}, timeout=30)
    assert refused.status_code == 403 and error(refused)["code"] == "insufficient_scope"
    headers = dict(client.http.headers)
    assert httpx.get(f"{base}/api/v1/customers/crm_007", headers=headers,
                     timeout=30).status_code == 404
    client.put_customer("crm_007", {"name": "CRM Seven"})
    client.put_customer("crm_007", {"name": "CRM 7", "metadata": {"tier": "gold"}})
    current = httpx.get(f"{base}/api/v1/customers/crm_007", headers=headers, timeout=30).json()
    assert (current["version"], current["fields"]["name"], current["changed_by"]) == (
        2, "CRM 7", "crm")
    assert [v["version"] for v in client.customer_versions("crm_007")] == [2, 1]
    spaced = httpx.put(f"{base}/api/v1/customers/%20crm", json={"name": "X"}, headers=headers,
                       timeout=30)
    assert spaced.status_code == 422 and error(spaced)["field"] == "id"
    not_json = httpx.put(f"{base}/api/v1/customers/crm_008", content=b"{name:", timeout=30,
                         headers={**headers, "Content-Type": "application/json"})
    assert not_json.status_code == 422 and error(not_json)["field"] == "body"
