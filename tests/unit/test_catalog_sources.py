"""Customers and subscriptions from the systems that own them (contract section 11): the API's
puts validated by the YAML loader's own rules, kept as versions, merged with the YAML and bulk
tables at load time with one definition per id, and the catalog memo following the store."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipelines.api.store import ApiStore
from pipelines.catalog import CatalogError, load_catalog
from pipelines.catalog.loader import catalog_references, check_put_entry, field_of
from pipelines.catalog.warehouse_tables import catalog_frames
from tests.support.environment import EXAMPLE_CATALOG

AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
CUSTOMER = {"name": "CRM Seven", "email": "ap@crm7.example", "billing_profile": "manual",
            "metadata": {"segment": "smb"}}
SUBSCRIPTION = {"customer": "crm_007", "plan": "professional", "start_date": "2026-01-01",
                "billing_anchor": 1}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")


@pytest.fixture
def store(tmp_path: Path) -> ApiStore:
    return ApiStore(str(tmp_path / "api_store.sqlite"))


def put(store: ApiStore, section: str, entry_id: str, fields: dict[str, Any],
        token: str = "crm") -> str:
    return store.put_catalog_entry(section, entry_id, {**fields, "id": entry_id},  # type: ignore[arg-type]
                                   token_id=7, token_name=token, at=AT).change


def yaml_faults(folder: Path, section: str, entry: str) -> list[str]:
    """The loader's faults for one YAML entry appended to the example catalog."""
    (folder / "extra.yaml").write_text(f"{section}:\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(folder / "no-store.sqlite"))
    return caught.value.faults


@pytest.mark.parametrize(("section", "yaml_entry", "fields", "field"), [
    ("subscriptions",
     "{id: s1, customer: acme_corp_001, plan: gold, start_date: 2027-01-01}",
     {"customer": "acme_corp_001", "plan": "gold", "start_date": "2027-01-01"}, "plan"),
    ("subscriptions",
     "{id: s1, customer: soylent_006, plan: starter_jp, start_date: 2027-01-01, "
     "billing_anchor: 40}",
     {"customer": "soylent_006", "plan": "starter_jp", "start_date": "2027-01-01",
      "billing_anchor": 40}, "billing_anchor"),
    ("subscriptions",
     "{id: s1, customer: soylent_006, plan: starter_jp, start_date: 2027-01-01, "
     "discounts: [{type: percentage, percent: 120}]}",
     {"customer": "soylent_006", "plan": "starter_jp", "start_date": "2027-01-01",
      "discounts": [{"type": "percentage", "percent": 120}]}, "discounts[0].percent"),
    ("customers", "{id: c1, name: C, billing_profile: gold}",
     {"name": "C", "billing_profile": "gold"}, "billing_profile"),
    ("customers", "{id: c1, name: C, colour: red}", {"name": "C", "colour": "red"}, "colour"),
])
def test_a_put_is_refused_with_the_yaml_loaders_words_and_its_field(
        folder: Path, section: str, yaml_entry: str, fields: dict[str, Any], field: str) -> None:
    [from_yaml] = yaml_faults(folder, section, yaml_entry)
    (folder / "extra.yaml").unlink()
    entry_id = "s1" if section == "subscriptions" else "c1"
    built, faults = check_put_entry(section, entry_id, fields, catalog_references(folder))
    assert built is None
    [fault] = faults
    # the same rule, the same words: only the place differs (a file, or the API store)
    assert from_yaml.endswith(fault.message), (from_yaml, fault.message)
    assert field_of(fault, f"api store: {section}[{entry_id}]") == field


def test_a_put_subscription_may_name_a_customer_the_api_holds(folder: Path) -> None:
    references = catalog_references(folder)
    built, faults = check_put_entry("subscriptions", "sub_crm_007", SUBSCRIPTION, references,
                                    customer_known=lambda c: c == "crm_007")
    assert faults == [] and built.customer == "crm_007"
    _, faults = check_put_entry("subscriptions", "sub_crm_007", SUBSCRIPTION, references)
    assert [f.field for f in faults] == ["customer"]


def test_a_put_subscription_overlapping_the_customers_other_meters_is_refused(
        folder: Path) -> None:
    fields = {"customer": "acme_corp_001", "plan": "professional", "start_date": "2026-03-01"}
    _, faults = check_put_entry("subscriptions", "sub_acme_more", fields,
                                catalog_references(folder))
    assert [f.field for f in faults] == ["plan"]
    assert "overlaps subscription 'sub_acme_pro'" in faults[0].message


def test_the_id_in_the_body_must_be_the_paths(folder: Path) -> None:
    _, faults = check_put_entry("customers", "c1", {"id": "c2", "name": "C"},
                                catalog_references(folder))
    assert [(f.field, f.message) for f in faults] == [
        ("id", "id 'c2' differs from the id in the path 'c1'")]


def test_every_change_is_a_version_and_the_same_fields_again_add_none(store: ApiStore) -> None:
    assert put(store, "customers", "crm_007", CUSTOMER) == "created"
    assert put(store, "customers", "crm_007", dict(reversed(CUSTOMER.items()))) == "unchanged"
    assert put(store, "customers", "crm_007", {**CUSTOMER, "name": "CRM 7"}, "crm2") == "updated"
    assert put(store, "customers", "crm_007", CUSTOMER) == "updated"   # back: a new version
    history = store.catalog_entry_history("customers", "crm_007")
    assert [(v.version, v.fields["name"], v.token_name) for v in history] == [
        (3, "CRM Seven", "crm"), (2, "CRM 7", "crm2"), (1, "CRM Seven", "crm")]
    assert store.catalog_entry("customers", "crm_007").version == 3
    assert store.catalog_entry("subscriptions", "crm_007") is None


def test_the_catalog_merges_the_stores_entries_with_their_versions(
        folder: Path, store: ApiStore) -> None:
    put(store, "customers", "crm_007", CUSTOMER)
    put(store, "subscriptions", "sub_crm_007", SUBSCRIPTION)
    put(store, "subscriptions", "sub_crm_007", {**SUBSCRIPTION, "plan": "business_eu"})
    catalog = load_catalog(folder, api_store=store.path)
    assert "acme_corp_001" in catalog.customers           # the YAML's stay
    customer = catalog.customers["crm_007"]
    subscription = catalog.subscriptions["sub_crm_007"]
    assert (customer.billing_profile, customer.source_file) == ("manual", "api store")
    assert subscription.plan == "business_eu"
    assert (subscription.source_version.version, subscription.source_version.changed_by) == (
        2, "crm")
    frames = catalog_frames(catalog)
    row = frames["subscriptions"].filter(pl.col("subscription_id") == "sub_crm_007").row(
        0, named=True)
    assert (row["source_file"], row["source_version"], row["changed_by"]) == (
        "api store", 2, "crm")
    yaml_row = frames["customers"].filter(pl.col("customer_id") == "acme_corp_001").row(
        0, named=True)
    assert yaml_row["source_version"] is None


def test_the_memo_follows_the_store(folder: Path, store: ApiStore) -> None:
    first = load_catalog(folder, api_store=store.path)
    assert load_catalog(folder, api_store=store.path) is first
    put(store, "customers", "crm_007", CUSTOMER)
    second = load_catalog(folder, api_store=store.path)
    assert second is not first and "crm_007" in second.customers
    put(store, "customers", "crm_007", CUSTOMER)                     # unchanged: no revision
    assert load_catalog(folder, api_store=store.path) is second
    put(store, "customers", "crm_007", {**CUSTOMER, "name": "Renamed"})
    assert load_catalog(folder, api_store=store.path).customers["crm_007"].name == "Renamed"


def test_an_id_in_the_yaml_and_the_store_is_refused_naming_both(
        folder: Path, store: ApiStore) -> None:
    put(store, "customers", "acme_corp_001", {"name": "Acme from the CRM"})
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=store.path)
    [fault] = caught.value.faults
    assert fault.startswith("api store (version 1): customers[acme_corp_001]: duplicate id")
    assert f"also defined at {folder / 'customers.yaml'}: customers[acme_corp_001]" in fault


def test_a_store_entry_the_yaml_no_longer_supports_fails_the_load(
        folder: Path, store: ApiStore) -> None:
    put(store, "customers", "crm_007", CUSTOMER)
    put(store, "subscriptions", "sub_crm_007", {**SUBSCRIPTION, "plan": "starter_jp"})
    plans = folder / "plans.yaml"
    text = plans.read_text(encoding="utf-8")
    plans.write_text(text.replace("key: starter_jp", "key: starter_jp_v2"), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"api store \(version 1\): "
                       r"subscriptions\[sub_crm_007\]: unknown plan 'starter_jp'"):
        load_catalog(folder, api_store=store.path)


def test_no_store_file_is_created_by_loading(folder: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "api_store.sqlite"
    assert "acme_corp_001" in load_catalog(folder, api_store=str(missing)).customers
    assert not missing.parent.exists()


CSV_HEADER = "id,name,email,billing_profile,metadata\n"


def write_table(folder: Path, name: str, text: str, key: str = "customers_table") -> None:
    (folder / name).write_text(text, encoding="utf-8")
    (folder / "bulk.yaml").write_text(f"{key}: {name}\n", encoding="utf-8")


def test_customers_and_subscriptions_load_from_csv_and_parquet_tables(
        folder: Path, tmp_path: Path) -> None:
    write_table(folder, "crm_customers.csv", CSV_HEADER
                + 'crm_1,One,a@one.example,manual,"{""tier"": ""gold""}"\n'
                + "crm_2,Two,,,\n")
    pl.DataFrame({"id": ["sub_crm_1"], "customer": ["crm_1"], "plan": ["professional"],
                  "start_date": [datetime(2026, 1, 5).date()], "billing_anchor": [1],
                  "collection_method": ["send_invoice"], "days_until_due": [15]}
                 ).write_parquet(folder / "crm_subscriptions.parquet")
    with (folder / "bulk.yaml").open("a", encoding="utf-8") as out:
        out.write("subscriptions_table: crm_subscriptions.parquet\n")
    catalog = load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    one = catalog.customers["crm_1"]
    assert (one.email, one.billing_profile, one.metadata) == (
        "a@one.example", "manual", {"tier": "gold"})
    assert one.source_file == str(folder / "crm_customers.csv")
    assert catalog.customers["crm_2"].email is None
    subscription = catalog.subscriptions["sub_crm_1"]
    assert (subscription.anchor_day, subscription.days_until_due) == (1, 15)


def test_a_table_customer_carries_its_address_and_tax_id_for_tax(
        folder: Path, tmp_path: Path) -> None:
    """A CRM table's customer is taxed like a YAML one: `address` is JSON in a CSV cell."""
    write_table(folder, "crm_customers.csv", "id,name,address,tax_id\n"
                'crm_de,De GmbH,"{""country"": ""DE"", ""postal_code"": ""10115""}",DE123\n'
                'crm_bad,Bad,"{""country"": ""Germany""}",\n')
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    assert caught.value.faults == [
        f"{folder / 'crm_customers.csv'}: row 2: customers[crm_bad].address: country 'Germany' "
        "is not an ISO 3166-1 alpha-2 code such as DE"]
    write_table(folder, "crm_customers.csv", "id,name,address,tax_id\n"
                'crm_de,De GmbH,"{""country"": ""DE"", ""postal_code"": ""10115""}",DE123\n')
    customer = load_catalog(folder, api_store=str(tmp_path / "none.sqlite")).customers["crm_de"]
    assert customer.address is not None
    assert (customer.address.country, customer.address.postal_code, customer.tax_id) == (
        "DE", "10115", "DE123")


def test_a_bad_row_is_named_by_file_row_and_field(folder: Path, tmp_path: Path) -> None:
    write_table(folder, "crm_subscriptions.csv",
                "id,customer,plan,start_date,billing_anchor\n"
                "sub_ok,acme_corp_001,starter_jp,2027-01-01,1\n"
                "sub_bad,acme_corp_001,starter_jp,2027-02-01,forty\n",
                key="subscriptions_table")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    table = folder / "crm_subscriptions.csv"
    assert f"{table}: row 2: subscriptions[sub_bad]: billing_anchor must be a day of month " \
           "1-31, got 'forty'" in caught.value.faults


def test_an_id_in_a_table_and_the_yaml_is_refused_naming_both(
        folder: Path, tmp_path: Path) -> None:
    write_table(folder, "crm_customers.csv", CSV_HEADER + "globex_002,Globex,,,\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    [fault] = caught.value.faults
    assert fault.startswith(f"{folder / 'crm_customers.csv'}: row 1: customers[globex_002]: "
                            f"duplicate id 'globex_002' (also defined at "
                            f"{folder / 'customers.yaml'}: customers[globex_002])")


@pytest.mark.parametrize(("declared", "words"), [
    ("../outside.csv", "resolves outside the catalog folder"),
    ("/etc/passwd.csv", "is absolute"),
    ("customers.yaml", "neither .csv nor .parquet"),
    ("missing.csv", "is not a file in the catalog folder"),
    ("link.csv", "resolves outside the catalog folder"),
])
def test_a_table_outside_the_catalog_folder_is_refused(
        folder: Path, tmp_path: Path, declared: str, words: str) -> None:
    (tmp_path / "outside.csv").write_text(CSV_HEADER + "x,X,,,\n", encoding="utf-8")
    (folder / "link.csv").symlink_to(tmp_path / "outside.csv")
    (folder / "bulk.yaml").write_text(f"customers_table: {declared!r}\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    [fault] = caught.value.faults
    assert fault.startswith(f"{folder / 'bulk.yaml'}: customers_table: ") and words in fault


def test_a_changed_table_gives_a_new_catalog(folder: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "none.sqlite")
    write_table(folder, "crm_customers.csv", CSV_HEADER + "crm_1,One,,,\n")
    first = load_catalog(folder, api_store=store)
    assert load_catalog(folder, api_store=store) is first
    (folder / "crm_customers.csv").write_text(CSV_HEADER + "crm_1,Uno,,,\n", encoding="utf-8")
    assert load_catalog(folder, api_store=store).customers["crm_1"].name == "Uno"


def test_unknown_columns_are_named_once_for_the_table(folder: Path, tmp_path: Path) -> None:
    write_table(folder, "crm_customers.csv", "id,name,phone\ncrm_1,One,1\ncrm_2,Two,2\n")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder, api_store=str(tmp_path / "none.sqlite"))
    assert caught.value.faults == [f"{folder / 'crm_customers.csv'}: unknown column(s) phone "
                                   "(known: address, billing_profile, email, id, metadata, "
                                   "name, tax_id)"]


def test_a_store_from_before_the_crm_is_read_as_empty_then_migrated(
        folder: Path, tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old_store.sqlite"
    ApiStore(str(path))
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript("DROP TABLE catalog_versions; DROP TABLE catalog_revision; "
                      "PRAGMA user_version=5;")
    con.close()
    # the pipeline reads it read-only and finds no entries; it does not migrate it
    assert "crm_007" not in load_catalog(folder, api_store=str(path)).customers
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 5
    # the API (the store's writer) migrates it on opening
    store = ApiStore(str(path))
    assert put(store, "customers", "crm_007", CUSTOMER) == "created"
    assert "crm_007" in load_catalog(folder, api_store=str(path)).customers
