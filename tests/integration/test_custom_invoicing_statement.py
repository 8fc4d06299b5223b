"""Invoice statements: a custom invoicing integration's complete view of our invoices, reported
through the integration API (`POST /api/v1/apps/custom-invoicing/statement`) and applied by the
sync job as the `custom_invoicing` rows of `sync.provider_invoices` (what reconciliation compares
the ledger with).

The API over real HTTP (`billing api` in its own process, the `api` fixture); the pipeline's
side through real Dagster sync runs, with the local ERP (the `erp` fixture) answering the hooks
and keeping the invoices it made.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devkit.api_client import ApiError
from pipelines.api import rules
from tests.support.api import RunningApi, assert_validation_error, error
from tests.support.dagster_runs import run_billing, run_sync
from tests.support.erp import Erp
from tests.support.statements import AS_OF, credit_note_entry, entry, statement
from tests.support.warehouse import query

STATEMENT = "/api/v1/apps/custom-invoicing/statement"


# ---------------------------------------------------------------------- the endpoint


def test_statement_needs_a_token_with_invoices_sync(api: RunningApi) -> None:
    body = statement(entry("erp_auth_1"))
    missing = api.post(STATEMENT, body, token=None)
    assert missing.status_code == 401 and error(missing)["code"] == "missing_token"
    for token in ("pay", "stripe"):
        refused = api.post(STATEMENT, body, token=token)
        assert refused.status_code == 403, refused.text
        assert error(refused)["code"] == "insufficient_scope"
        assert "invoices:sync" in str(error(refused)["message"])
    assert api.post(STATEMENT, body, token="sync").status_code == 202


@pytest.mark.parametrize(("body", "field", "words"), [
    # amounts are exact decimal strings: a JSON number (a float) is refused, naming the field
    (statement(entry("a"), entry("b"), entry("c", total=123.45)),
     "invoices[2].total", "not a JSON number"),
    (statement(entry("a"), entry("b"), entry("c"), entry("d", lines=[
        {"external_id": "d_l1", "line_id": "line_1", "amount": 100}])),
     "invoices[3].lines[0].amount", "not a JSON number"),
    (statement(entry("a", amount_paid=0.0)), "invoices[0].amount_paid", "not a JSON number"),
    (statement({k: v for k, v in entry("a").items() if k != "currency"}),
     "invoices[0].currency", "required"),
    (statement({k: v for k, v in entry("a").items() if k != "lines"}),
     "invoices[0].lines", "required"),
    ({"invoices": []}, "as_of", "required"),
    ({"as_of": AS_OF}, "invoices", "required"),
    (statement(entry("erp_1"), entry("erp_2"), entry("erp_1", invoice_id="inv_2")),
     "invoices[2].external_id", "given more than once (also invoices[0].external_id)"),
    (statement(entry("a", lines=[{"external_id": "x", "line_id": "l1", "amount": "1"},
                                 {"external_id": "x", "line_id": "l2", "amount": "2"}])),
     "invoices[0].lines[1].external_id", "more than once in this invoice"),
    (statement(entry("a", total="12.3456789012345")), "invoices[0].total", "12 after"),
    (statement(entry("a", total="1e3")), "invoices[0].total", "decimal string"),
    (statement(entry("a", amount_refunded="-1.00")), "invoices[0].amount_refunded",
     "negative"),
    (statement(entry("a", currency="EURO")), "invoices[0].currency", "3-letter"),
    (statement(entry("a", status="refunded")), "invoices[0].status", "draft, open, paid"),
    (statement(entry("a", colour="red")), "invoices[0].colour", "unknown field"),
    (statement(entry("a"), as_of="2026-02-03T10:00:00"), "as_of", "UTC offset"),
    (statement("nope"), "invoices[0]", "must be an object"),
    # credit notes: amounts credited, exact and not negative; Stripe's statuses and draft
    ({**statement(), "credit_notes": [credit_note_entry("a", total=23.45)]},
     "credit_notes[0].total", "not a JSON number"),
    ({**statement(), "credit_notes": [credit_note_entry("a", total="-23.45")]},
     "credit_notes[0].total", "negative"),
    ({**statement(), "credit_notes": [credit_note_entry("a", status="refunded")]},
     "credit_notes[0].status", "draft, issued, void"),
    ({**statement(), "credit_notes": [credit_note_entry("a"), credit_note_entry("a")]},
     "credit_notes[1].external_id", "given more than once (also credit_notes[0].external_id)"),
    ({**statement(), "credit_notes": [credit_note_entry("a", lines=[
        {"external_id": "x", "line_id": "l1", "amount": "1"}])]},
     "credit_notes[0].lines[0].line_id", "unknown field"),
    ({**statement(), "credit_notes": "all of them"}, "credit_notes", "must be a list"),
    # tax (docs/tax.md): the total including tax is total + tax_total (123.45 + 19.00 = 142.45,
    # tax on top) or total (tax in the lines); a tax without it is refused
    (statement(entry("a", tax_total="19.00", total_including_tax="150.00")),
     "invoices[0].total_including_tax", "must be total + tax_total (142.45: tax added on top)"),
    ({**statement(), "credit_notes": [credit_note_entry("a", tax_total="4.46")]},
     "credit_notes[0].total_including_tax", "required with a tax_total other than 0"),
])
def test_bad_statement_gets_422_naming_the_field(api: RunningApi, body: object, field: str,
                                                 words: str) -> None:
    before = api.store.pending_count()
    assert_validation_error(api.post(STATEMENT, body), field, words)
    assert api.store.pending_count() == before


def test_every_problem_is_listed_up_to_a_limit(api: RunningApi) -> None:
    body = statement(*[entry(f"erp_{i}", total=float(i)) for i in range(150)])
    problem = error(api.post(STATEMENT, body))
    assert problem["field"] == "invoices[0].total"
    assert len(problem["details"]) == 100     # type: ignore[arg-type]
    assert str(problem["message"]).endswith("(and 140 more problems)")


def test_orphans_are_accepted_and_a_replay_is_answered_as_the_first(api: RunningApi) -> None:
    body = statement(entry("erp_r1", invoice_id="inv_we_never_made"),
                     entry("erp_r2", invoice_id=None, lines=[]),
                     {k: v for k, v in entry("erp_r3").items() if k != "invoice_id"},
                     as_of="2026-02-03T11:00:00+01:00")
    first = api.post(STATEMENT, body)
    assert first.status_code == 202, first.text
    accepted = first.json()
    assert {k: v for k, v in accepted.items() if k not in ("inbox_item_id", "received_at")} == {
        "status": "accepted", "kind": "custom_invoicing.statement",
        "as_of": "2026-02-03T11:00:00+01:00", "invoice_count": 3}
    before = api.store.pending_count()
    replay = api.post(STATEMENT, body)
    assert replay.status_code == 202 and replay.json() == accepted
    assert replay.headers["idempotent-replayed"] == "true"
    assert api.store.pending_count() == before
    item = api.store.inbox_item(accepted["inbox_item_id"])
    assert item is not None and item.kind == rules.STATEMENT and item.invoice_id is None
    assert item.body == body and item.token_name == "erp-sync"
    # the outcome is readable with the scope that sent it, not with another
    view = api.get(f"/api/v1/inbox-items/{accepted['inbox_item_id']}").json()
    assert (view["kind"], view["status"], view["invoice_id"]) == (
        "custom_invoicing.statement", "pending", None)
    assert api.get(f"/api/v1/inbox-items/{accepted['inbox_item_id']}",
                   token="pay").status_code == 404


def test_client_sends_decimals_exactly_and_raises_on_floats(api: RunningApi) -> None:
    with api.client("sync") as client:
        answer = client.send_statement(
            [entry("erp_c1", total=Decimal("0.000000000001"), amount_paid=Decimal("0"),
                   lines=[{"external_id": "c1", "line_id": None,
                           "amount": Decimal("0.000000000001")}])],
            as_of=datetime(2026, 2, 3, 10, tzinfo=UTC))
        assert answer["as_of"] == "2026-02-03T10:00:00+00:00"
        with pytest.raises(ApiError) as refused:
            client.send_statement([entry("erp_c2", total=1.1)], as_of=AS_OF)
    assert refused.value.status_code == 422 and refused.value.field == "invoices[0].total"
    item = api.store.inbox_item(answer["inbox_item_id"])
    assert item is not None
    [invoice] = item.body["invoices"]
    assert (invoice["total"], invoice["amount_paid"], invoice["lines"][0]["amount"]) == (
        "0.000000000001", "0", "0.000000000001")


# ---------------------------------------------------------------------- the pipeline's side


def provider_rows(warehouse: Path) -> list[tuple[Any, ...]]:
    return query(warehouse, """
        SELECT external_id, invoice_id, external_customer_id, number, status, currency, total,
               amount_paid, amount_remaining, amount_refunded, line_count,
               CAST(lines AS VARCHAR), snapshot_at
        FROM sync.provider_invoices WHERE provider = 'custom_invoicing'
        ORDER BY external_id""")


def statement_events(warehouse: Path) -> list[tuple[Any, ...]]:
    return query(warehouse, """
        SELECT outcome, created_at, invoice_id, object_id, received_via
        FROM sync.provider_events
        WHERE provider = 'custom_invoicing' AND event_type = 'custom_invoicing.statement'
        ORDER BY CAST(split_part(event_id, ':', 2) AS INTEGER)""")


def issue_through_hooks(erp: Erp) -> str:
    """Umbrella's February invoice through both hooks, answered by the local ERP."""
    run_billing("2026-02", "2026-02-01T12:00:00Z")
    umbrella = erp.invoice("umbrella_004")
    for now in ("2026-02-01T12:00:00Z", "2026-02-01T12:20:00Z", "2026-02-01T12:40:00Z"):
        run_sync(now)
        erp.integration.wait_idle()
    assert erp.status("umbrella_004") == "payment_processing.pending"
    assert erp.integration.errors == []
    return umbrella


def test_the_erps_statement_lands_exactly_and_replaces_the_earlier_one(erp: Erp) -> None:
    umbrella = issue_through_hooks(erp)
    record = erp.integration.invoices[umbrella]

    # the ERP kept the invoice it was sent: the ledger's currency, total and lines (golden)
    ledger = query(erp.warehouse, """
        SELECT i.currency, i.total, i.invoice_number,
               list((l.line_type, l.amount) ORDER BY l.position),
               list(l.line_id ORDER BY l.position)
        FROM billing.invoices i JOIN billing.invoice_lines l USING (invoice_id)
        WHERE invoice_id = $i GROUP BY ALL""", {"i": umbrella})
    line_ids = [line.line_id for line in record.lines]
    assert ledger == [("USD", Decimal("50"), record.number, [
        ("usage", Decimal("0")), ("usage", Decimal("0")), ("usage", Decimal("0")),
        ("minimum_commitment", Decimal("40")), ("flat", Decimal("10"))], line_ids)]
    golden_lines = ["0.00", "0.00", "0.00", "40.00", "10.00"]   # as notified: cents
    assert erp.integration.statement() == [{
        "external_id": record.external_id, "invoice_id": umbrella,
        "invoice_number": record.number, "currency": "USD", "total": "50.00",
        "status": "open", "amount_paid": "0", "amount_refunded": "0",
        "lines": [{"external_id": record.line_ids[line_id], "line_id": line_id,
                   "amount": amount} for line_id, amount in zip(line_ids, golden_lines,
                                                                strict=True)]}]

    # the statement, applied by the next sync run, becomes the custom_invoicing rows
    erp.integration.pay(umbrella)
    accepted = erp.integration.send_statement("2026-02-02T09:00:00+01:00")
    steps = run_sync("2026-02-02T09:00:00Z")
    assert steps["sync/api_inbox"]["items_applied"] == 2      # the payment, then the statement
    assert erp.status("umbrella_004") == "paid"
    lines = [{"external_id": record.line_ids[line_id], "line_id": line_id, "amount": amount}
             for line_id, amount in zip(line_ids, golden_lines, strict=True)]
    first_as_of = datetime(2026, 2, 2, 8, tzinfo=UTC)
    [row] = provider_rows(erp.warehouse)
    assert (*row[:11], json.loads(row[11]), row[12]) == (
        record.external_id, umbrella, None, record.number, "paid", "USD", Decimal("50.00"),
        Decimal("50.00"), Decimal("0"), Decimal("0"), 5, lines, first_as_of)
    assert erp.store.inbox_item(accepted["inbox_item_id"]).status == "applied"

    # discrepancies made in the ERP reach the warehouse with the next statement only
    erp.integration.change_total(umbrella, "49.999999999999")
    erp.integration.change_line_amount(umbrella, record.lines[0].line_id, "0.000000000001")
    erp.integration.refund_outside(umbrella)
    orphan = erp.integration.create_orphan(None, "eur", "12345678901234567890123456.5")
    claimed = erp.integration.create_orphan("inv_nobody_knows", "EUR", "-10.10")
    second = erp.integration.duplicate(umbrella)
    erp.integration.send_statement("2026-02-03T10:00:00Z")
    run_sync("2026-02-03T10:05:00Z")
    second_as_of = datetime(2026, 2, 3, 10, tzinfo=UTC)
    rows = {row[0]: row for row in provider_rows(erp.warehouse)}
    assert set(rows) == {record.external_id, orphan, claimed, second}
    assert rows[record.external_id][4:11] == (
        "paid", "USD", Decimal("49.999999999999"), Decimal("50"), Decimal("0"),
        Decimal("50"), 5)
    assert json.loads(rows[record.external_id][11])[0]["amount"] == "0.000000000001"
    assert rows[orphan][1:11] == (
        None, None, None, "open", "EUR", Decimal("12345678901234567890123456.5"), Decimal("0"),
        Decimal("12345678901234567890123456.5"), Decimal("0"), 1)
    assert rows[claimed][1] == "inv_nobody_knows" and rows[claimed][6] == Decimal("-10.10")
    assert rows[claimed][8] == Decimal("0")               # nothing to collect on a credit
    assert rows[second][1] == umbrella and rows[second][3] != record.number
    assert {row[12] for row in rows.values()} == {second_as_of}
    assert statement_events(erp.warehouse) == [
        ("applied", first_as_of, None, None, "api"), ("applied", second_as_of, None, None, "api")]

    # the ERP forgets the invoice: the next statement drops its row
    erp.integration.delete(umbrella)
    erp.integration.send_statement("2026-02-04T10:00:00Z")
    run_sync("2026-02-04T10:05:00Z")
    assert [row[0] for row in provider_rows(erp.warehouse)] == sorted([orphan, claimed])


def credit_note_rows(warehouse: Path) -> list[tuple[Any, ...]]:
    return query(warehouse, """
        SELECT external_id, credit_note_id, invoice_id, external_invoice_id, number, status,
               currency, total, line_count, CAST(lines AS VARCHAR), snapshot_at
        FROM sync.provider_credit_notes WHERE provider = 'custom_invoicing'
        ORDER BY external_id""")


def test_the_statements_credit_notes_replace_the_earlier_ones(erp: Erp) -> None:
    """Credit notes listed in a statement become the custom_invoicing rows of
    sync.provider_credit_notes (an unknown or missing credit note id is what reconciliation
    reports as an orphan); a statement without `credit_notes` says the ERP holds none; an older
    statement replaces nothing."""
    client = erp.integration.client
    client.send_statement([entry("erp_inv_1")], "2026-02-03T10:00:00Z", credit_notes=[
        credit_note_entry("erp_cn_1", total="23.450000000001", lines=[
            {"external_id": "erp_cn_1_l1", "credit_note_line_id": "cnl_1",
             "amount": "23.450000000001"}]),
        credit_note_entry("erp_cn_2", credit_note_id=None, invoice_id=None, status="void",
                          credit_note_number=None, currency="eur", lines=[])])
    run_sync("2026-02-03T10:05:00Z")
    as_of = datetime(2026, 2, 3, 10, tzinfo=UTC)
    assert credit_note_rows(erp.warehouse) == [
        ("erp_cn_1", "cn_1", "inv_1", "erp_inv_1", "ERP-CN-2026-0001", "issued", "EUR",
         Decimal("23.450000000001"), 1,
         json.dumps([{"external_id": "erp_cn_1_l1", "credit_note_line_id": "cnl_1",
                      "amount": "23.450000000001"}]), as_of),
        ("erp_cn_2", None, None, "erp_inv_1", None, "void", "EUR", Decimal("23.45"), 0, "[]",
         as_of)]

    client.send_statement([], "2026-02-03T09:00:00Z", credit_notes=[])   # older: ignored
    run_sync("2026-02-03T10:10:00Z")
    assert len(credit_note_rows(erp.warehouse)) == 2
    client.send_statement([entry("erp_inv_1")], "2026-02-03T11:00:00Z")   # no credit notes
    run_sync("2026-02-03T11:05:00Z")
    assert credit_note_rows(erp.warehouse) == []
    assert len(provider_rows(erp.warehouse)) == 1


def test_an_older_statement_is_recorded_but_does_not_replace_a_newer_one(erp: Erp) -> None:
    client = erp.integration.client
    newer = client.send_statement([entry("erp_new", total="10.01")], "2026-02-03T10:00:00Z")
    run_sync("2026-02-03T10:05:00Z")
    assert [row[0:7] for row in provider_rows(erp.warehouse)] == [
        ("erp_new", "inv_1", None, "ERP-2026-0001", "open", "EUR", Decimal("10.01"))]

    # a statement taken earlier arrives late (a retry, another sender): kept, not applied
    older = client.send_statement([entry("erp_old", total="20.02")], "2026-02-03T09:59:59Z")
    # and an empty one, later still: the integration holds nothing any more
    empty = client.send_statement([], "2026-02-03T11:00:00Z")
    steps = run_sync("2026-02-03T11:05:00Z")
    assert steps["sync/api_inbox"]["items_applied"] == 1
    assert steps["sync/api_inbox"]["items_rejected"] == 1
    assert provider_rows(erp.warehouse) == []
    item = erp.store.inbox_item(older["inbox_item_id"])
    assert item is not None and item.status == "rejected"
    assert item.reason is not None and item.reason.startswith("superseded:")
    assert "2026-02-03T10:00:00+00:00" in item.reason
    assert [erp.store.inbox_item(a["inbox_item_id"]).status for a in (newer, empty)] == [
        "applied", "applied"]
    assert [row[:2] for row in statement_events(erp.warehouse)] == [
        ("applied", datetime(2026, 2, 3, 10, tzinfo=UTC)),
        ("ignored", datetime(2026, 2, 3, 9, 59, 59, tzinfo=UTC)),
        ("applied", datetime(2026, 2, 3, 11, tzinfo=UTC))]

    # the pipeline stopped before marking the items in the API's store: applying them again
    # gives the recorded outcomes and writes nothing
    from pipelines.custom_invoicing.inbox import apply_item
    from pipelines.warehouse import connect_writer

    items = [erp.store.inbox_item(a["inbox_item_id"]) for a in (newer, older)]
    with connect_writer(str(erp.warehouse)) as con:
        again = [apply_item(con, item, now=datetime(2026, 2, 3, 12, tzinfo=UTC))
                 for item in items if item is not None]
    assert [(r.outcome, r.reason) for r in again] == [("applied", None),
                                                      ("ignored", item.reason)]
    assert len(statement_events(erp.warehouse)) == 3
    assert provider_rows(erp.warehouse) == []
