"""Erasure on request (contract section 11, GDPR art. 17) after real Dagster runs: events
ingested (some rejected), a month billed and issued at the local Stripe, notifications sent;
then `billing customer erase`. No column of any table of the warehouse and no text column of
the API store holds the customer's name, email or personal properties afterwards, while every
invoice, line, amount, journal row and count is what it was; Stripe's customer is anonymised,
the integrations get a signed `customer.erased`, and the customer stays erased through the next
catalog step, new events and a CRM's later put."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from devkit.booking_system import FINANCE_PATH, BookingSystem
from pipelines.cli import main
from tests.support.dagster_runs import ingest_landed, run_billing
from tests.support.landing import event, write_lines
from tests.support.local_stripe import (
    bill,
    client,
    sync,
    writer_taken_while_stripe_answers,
)
from tests.support.receivers import BOOKING_SECRET, FINANCE_SECRET
from tests.support.warehouse import query

NAME, EMAIL, USER = "Acme Corporation", "Billing@Acme.example", "jane.doe@acme.example"
PERSONAL = (NAME, EMAIL, USER, "Jane Doe", "Wile E. Coyote", "acme-vat-DE123")
"""What must not be found anywhere after the erasure (any case)."""
KEPT = "Globex GmbH"
"""Another customer's name: untouched."""


def catalog_yaml(finance_url: str) -> str:
    return f"""
billing_profiles:
  - {{key: stripe_auto, default: true, app: stripe, grace_period: PT1H}}
customers:
  - {{id: acme_corp_001, name: {NAME}, email: {EMAIL},
     metadata: {{contact: Wile E. Coyote, vat: acme-vat-DE123}}}}
  - {{id: globex_002, name: {KEPT}, email: ap@globex.example}}
subscriptions:
  - {{id: sub_acme, customer: acme_corp_001, plan: business_eu, start_date: 2026-01-01,
     billing_anchor: 1}}
  - {{id: sub_globex, customer: globex_002, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}}
personal_properties: [user_id, user.full_name]
notification_channels:
  - key: finance
    url: {finance_url}
    secret_env: FINANCE_WEBHOOK_SECRET
    event_types: [invoice.issued, customer.erased]
"""


def usage(prefix: str, day: str = "2026-01-05", *, named: bool = True) -> list[object]:
    """Logins of 7 people (5 included seats: 2 billed) and requests naming the customer in
    free text (`named`: after an erasure the pipeline no longer knows the name, so only the
    catalog's personal_properties of new events can be pseudonymised)."""
    users = [USER] + [f"user{i}@acme.example" for i in range(6)]
    lines: list[object] = [
        event(f"{prefix}l{i}", name="user.login", ts=f"{day}T10:00:00Z",
              properties={"user_id": user, "user": {"full_name": "Jane Doe"}})
        for i, user in enumerate(users)]
    lines += [event(f"{prefix}r{i}", ts=f"{day}T11:00:00Z",
                    properties={"endpoint": "/v1/x", "note": f"by {NAME}" if named else "-"})
              for i in range(3)]
    lines += [event(f"{prefix}g{i}", customer="globex_002", ts=f"{day}T11:00:00Z",
                    properties={"note": f"by {KEPT}"}) for i in range(2)]
    # rejected: a timestamp without offset (the customer's line kept raw), a malformed line
    lines += [json.dumps(event(f"{prefix}bad", ts="2026-01-05 10:00:00",
                               properties={"user_id": USER, "who": NAME if named else "-"})),
              '{"event_id": "' + prefix + 'broken", "customer_id": "acme_corp_001", ' + EMAIL]
    return lines


def all_text(warehouse: Path) -> dict[str, list[str]]:
    """Every text value of every column of every table of the warehouse (lists and JSON
    as text), by schema.table.column: a table added later is read too."""
    found: dict[str, list[str]] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        columns = con.execute("""
            SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c
            JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
            WHERE t.table_type = 'BASE TABLE' AND (c.data_type IN ('VARCHAR', 'JSON')
                  OR c.data_type LIKE '%VARCHAR%' OR c.data_type LIKE 'STRUCT%')""").fetchall()
        assert len(columns) > 100          # the scan reads the whole warehouse
        for schema, table, column in columns:
            found[f"{schema}.{table}.{column}"] = [
                v for (v,) in con.execute(
                    f'SELECT CAST("{column}" AS VARCHAR) FROM "{schema}"."{table}" '
                    f'WHERE "{column}" IS NOT NULL').fetchall()]
    return found


def store_text(store: Path) -> dict[str, list[str]]:
    """Every text value of every table of the API store."""
    found: dict[str, list[str]] = {}
    with sqlite3.connect(store) as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for column in [row[1] for row in con.execute(f'PRAGMA table_info("{table}")')]:
                found[f"{table}.{column}"] = [
                    str(v) for (v,) in con.execute(
                        f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')]
    return found


def holding(texts: dict[str, list[str]], needles: tuple[str, ...]) -> dict[str, list[str]]:
    """The columns whose values contain a needle (any case, also JSON-escaped)."""
    lowered = [n.lower() for n in needles]
    return {column: [v for v in values if any(n in v.lower() for n in lowered)][:2]
            for column, values in texts.items()
            if any(n in v.lower() for v in values for n in lowered)}


FINANCE_ROWS = {
    "invoices": "SELECT invoice_id, invoice_number, customer_id, status, subtotal, "
                "discount_total, total, currency, issued_at FROM billing.invoices",
    "lines": "SELECT line_id, invoice_id, line_type, quantity, unit_price, amount "
             "FROM billing.invoice_lines",
    "history": "SELECT invoice_id, from_status, to_status, changed_at "
               "FROM billing.invoice_status_history",
    "usage": "SELECT * EXCLUDE (rated_at) FROM billing.usage_quantities",
    "ingestion": "SELECT file_id, received, accepted, duplicates, rejected, conflicts "
                 "FROM raw.ingestion_log",
    "rejects": "SELECT file_id, line_number, reason, detail, customer_id "
               "FROM raw.rejected_events",
    "mappings": "SELECT provider, object_type, internal_id, external_id FROM sync.external_ids",
}


def finance_state(warehouse: Path) -> dict[str, list[tuple]]:
    return {name: sorted(query(warehouse, text), key=repr) for name, text in FINANCE_ROWS.items()}


def table_counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                             "WHERE NOT temporary").fetchall()
        return {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0]
                for s, t in tables}


@pytest.fixture
def finance(stripe_env, monkeypatch):
    monkeypatch.setenv("FINANCE_WEBHOOK_SECRET", FINANCE_SECRET)
    with BookingSystem(booking_secret=BOOKING_SECRET, finance_secret=FINANCE_SECRET) as system:
        for name in ("customers.yaml",):
            (stripe_env["catalog"] / name).write_text(catalog_yaml(system.url(FINANCE_PATH)))
        yield system


def erase(capsys, customer: str = "acme_corp_001") -> str:
    main(["customer", "erase", customer, "--reason", "GDPR art. 17 request #42",
          "--actor", "dpo:alice"])
    return capsys.readouterr().out


def test_erasure_leaves_no_name_or_email_anywhere_and_every_amount_as_it_was(
        stripe_env, finance, local_stripe, capsys):
    warehouse = stripe_env["warehouse"]
    store = Path(stripe_env["warehouse"].parent / "api.sqlite")
    write_lines(stripe_env["landing"] / "jan.jsonl", usage("a"))
    bill()
    assert sync().success
    assert finance.events[FINANCE_PATH], "invoice.issued was delivered with the customer"
    stripe_customer = next(c for c in client(local_stripe).v1.customers.list().data
                           if c.metadata["customer_id"] == "acme_corp_001")
    assert stripe_customer.name == NAME
    texts = all_text(warehouse)
    before = holding(texts, PERSONAL)
    # the places the customer's personal data sat in before the erasure
    assert {"billing.customers.name", "billing.customers.email", "billing.customers.metadata",
            "raw.events.properties", "raw.rejected_events.raw", "notify.events.payload",
            } <= set(before), sorted(before)
    finance_before, counts_before = finance_state(warehouse), table_counts(warehouse)
    seats = query(warehouse, """SELECT quantity, amount FROM billing.invoice_lines
                                WHERE price_key = 'seats'""")
    assert seats and all(q == 7 for q, _ in seats)

    with writer_taken_while_stripe_answers(local_stripe, warehouse) as probes:
        out = erase(capsys)
    assert "customer acme_corp_001 erased (pass 1)" in out
    # the warehouse is free while Stripe answers the update
    assert [(p.method, p.writer_taken) for p in probes] == [("POST", True)]
    [(pseudonym, actor, reason, changes)] = query(warehouse, """
        SELECT pseudonym, actor, reason, changes FROM billing.erasures""")
    assert pseudonym.startswith("erased-") and pseudonym in out
    assert (actor, reason) == ("dpo:alice", "GDPR art. 17 request #42")
    # 7 logins by their personal properties, 3 requests whose free text names the customer
    assert json.loads(changes)["warehouse"]["raw.events.properties"] == 10

    # nothing of it is left in any column of any table, or in the API store
    assert holding(all_text(warehouse), PERSONAL) == {}
    assert holding(store_text(store), PERSONAL) == {}
    assert holding(all_text(warehouse), (KEPT,)), "another customer's data is untouched"
    # every amount, document, journal row and count is what it was
    assert finance_state(warehouse) == finance_before
    counts = table_counts(warehouse)
    grown = {t for t in counts if counts[t] != counts_before.get(t)}
    assert grown <= {"billing.erasures", "billing.erasure_requests", "notify.events",
                     "notify.deliveries", "sync.sync_attempts", "notify.channels"}, grown
    # one pseudonym everywhere: the customer row, the Stripe customer, the notification
    assert query(warehouse, "SELECT name, email FROM billing.customers "
                            "WHERE customer_id = 'acme_corp_001'") == [
        (pseudonym, f"{pseudonym}@erased.invalid")]
    anonymised = client(local_stripe).v1.customers.retrieve(stripe_customer.id)
    assert (anonymised.name, anonymised.email, anonymised.address) == (
        pseudonym, f"{pseudonym}@erased.invalid", None), out
    assert query(warehouse, """SELECT provider, status FROM billing.erasure_requests
                               ORDER BY 1""") == [("custom_invoicing", "pending"),
                                                  ("stripe", "done")]
    assert query(warehouse, """SELECT count(*) FROM sync.sync_attempts
                               WHERE operation = 'customers.update'""") == [(1,)]
    assert "warning: " in out and "customers.yaml" in out    # the YAML still names them

    # the next sync delivers customer.erased, signed, to the integration
    assert sync().success
    erased = [e for e in finance.events[FINANCE_PATH] if e["type"] == "customer.erased"]
    assert [e["data"]["customer"] for e in erased] == [
        {"id": "acme_corp_001", "name": pseudonym, "email": f"{pseudonym}@erased.invalid"}]

    # it stays erased: the catalog step (YAML unchanged), new events (February's period),
    # January measured again from the pseudonymised events for the issued invoice's audit
    write_lines(stripe_env["landing"] / "feb.jsonl",
                usage("b", day="2026-02-01", named=False))
    later = "2026-02-04T00:00:00Z"
    ingest_landed(later)
    run_billing("2026-02", later)
    assert holding(all_text(warehouse), PERSONAL) == {}
    assert query(warehouse, "SELECT count(*) FROM raw.rejected_events") == [(4,)]
    assert finance_state(warehouse)["invoices"] == finance_before["invoices"]
    assert query(warehouse, "SELECT count(*) FROM billing.corrections") == [(0,)]
    # the same people are still 7 different users (before and after): unique counts hold
    assert query(warehouse, """SELECT count(DISTINCT properties->>'user_id') FROM raw.events
                               WHERE customer_id = 'acme_corp_001'""") == [(7,)]
    assert query(warehouse, """SELECT count(*) FROM raw.events WHERE customer_id =
                               'acme_corp_001' AND properties->>'user_id' LIKE 'erased-%'""") \
        == [(14,)]

    # erasing again: nothing left, nothing recorded twice; Stripe not called again
    again = erase(capsys)
    assert "nothing left to change" in again
    assert query(warehouse, "SELECT count(*) FROM billing.erasures") == [(1,)]
    assert query(warehouse, """SELECT count(*) FROM sync.sync_attempts
                               WHERE operation = 'customers.update'""") == [(1,)]
    assert query(warehouse, """SELECT status FROM billing.erasure_requests
                               WHERE provider = 'custom_invoicing'""") == [("done",)]

    # the finance report written afterwards reads the pseudonymised warehouse
    report_dir = warehouse.parent / "report"
    main(["report", "--month", "2026-02", "--out", str(report_dir)])
    written = [p for p in report_dir.rglob("*") if p.is_file()]
    assert written
    for path in written:
        text = path.read_bytes().decode("utf-8", "replace").lower()
        assert not any(n.lower() in text for n in PERSONAL), path


def test_an_unknown_customer_is_refused_and_nothing_is_written(stripe_env, finance, capsys):
    with pytest.raises(SystemExit, match="unknown customer 'nobody_999'"):
        erase(capsys, "nobody_999")
    assert query(stripe_env["warehouse"], "SELECT count(*) FROM billing.erasures") == [(0,)]


CRM_CUSTOMER = {"name": "CRM Seven Ltd", "email": "ap@crm7.example", "billing_profile": "manual",
                "metadata": {"segment": "smb", "contact": "Seven Person"}}


def test_a_crm_customer_is_rewritten_in_the_store_and_a_later_put_stays_erased(
        billing_env, monkeypatch, capsys):
    from pipelines.api.store import ApiStore
    from pipelines.api.store.catalog_versions import read_revision
    from pipelines.catalog import load_catalog

    store_path = billing_env["warehouse"].parent / "api.sqlite"
    monkeypatch.setenv("BILLING_API_STORE", str(store_path))
    store = ApiStore(str(store_path))
    at = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)

    def put(fields: dict[str, object]) -> str:
        return store.put_catalog_entry("customers", "crm_007", {**fields, "id": "crm_007"},
                                       token_id=7, token_name="crm", at=at).change

    assert put({**CRM_CUSTOMER, "email": "old@crm7.example"}) == "created"
    assert put(CRM_CUSTOMER) == "updated"                 # two versions hold personal data
    ingest_landed("2026-02-01T12:00:00Z")                 # the catalog step writes it
    assert query(billing_env["warehouse"], "SELECT name FROM billing.customers WHERE "
                 "customer_id = 'crm_007'") == [("CRM Seven Ltd",)]
    revision = read_revision(str(store_path))

    out = erase(capsys, "crm_007")
    assert "warning" not in out                            # nothing of it is in the user's files
    personal = ("CRM Seven Ltd", "ap@crm7.example", "old@crm7.example", "Seven Person")
    assert holding(store_text(store_path), personal) == {}
    assert holding(all_text(billing_env["warehouse"]), personal) == {}
    assert read_revision(str(store_path)) > revision     # the catalog is read again
    [(pseudonym,)] = query(billing_env["warehouse"], "SELECT pseudonym FROM billing.erasures")
    history = store.catalog_entry_history("customers", "crm_007")
    assert [v.fields["name"] for v in history] == [pseudonym, pseudonym]
    assert load_catalog(billing_env["catalog"]).customers["crm_007"].name == pseudonym

    # the CRM syncs its whole state again: kept pseudonymised, nothing new to version
    assert put(CRM_CUSTOMER) == "unchanged"
    assert put({**CRM_CUSTOMER, "metadata": {"segment": "enterprise"}}) == "updated"
    assert holding(store_text(store_path), (*personal, "enterprise")) == {}
    ingest_landed("2026-02-01T12:00:00Z")
    assert holding(all_text(billing_env["warehouse"]), personal) == {}
