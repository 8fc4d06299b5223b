"""The integration API's rules and store without HTTP: body validation paths, state projection,
the pipeline's side of the inbox (arrival order, marking), tokens, and migrating an old store.
`billing token` in its own process: tests/integration/test_billing_token_commands.py."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.api import rules
from pipelines.api.store import (
    SCHEMA,
    SCHEMA_VERSION,
    ApiStore,
    Call,
    PublishedInvoice,
    PublishedLine,
    hash_token,
)
from tests.support.statements import entry, statement

AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def test_project_applies_calls_in_order_and_skips_those_no_longer_allowed() -> None:
    pay = rules.PAYMENT_STATUS
    assert rules.project("draft.syncing", [(rules.DRAFT_SYNCHRONIZED, {})]) == "issuing"
    assert rules.project("issuing.syncing", [(rules.ISSUING_SYNCHRONIZED, {})]) == \
        "payment_processing.pending"
    calls = [(pay, {"trigger": "payment_overdue"}), (pay, {"trigger": "paid"}),
             (pay, {"trigger": "payment_failed"}), (pay, {"trigger": "refunded"})]
    # payment_failed after paid is skipped (no state regresses)
    assert rules.project("payment_processing.pending", calls) == "refunded"
    # the pipeline published a newer state (voided): the pending paid call no longer projects
    assert rules.project("voided", [(pay, {"trigger": "paid"})]) == "voided"
    # stripe events never move a custom invoicing projection
    assert rules.project("draft.syncing", [(rules.STRIPE_EVENT, {"id": "evt"})]) == \
        "draft.syncing"


@pytest.mark.parametrize(("state", "kind", "body", "code"), [
    ("draft.syncing", rules.DRAFT_SYNCHRONIZED, {}, None),
    ("draft.sync_failed", rules.DRAFT_SYNCHRONIZED, {}, "invalid_state"),
    ("issuing", rules.ISSUING_SYNCHRONIZED, {}, "invalid_state"),
    ("issuing.syncing", rules.ISSUING_SYNCHRONIZED, {}, None),
    ("issued", rules.PAYMENT_STATUS, {"trigger": "paid"}, None),
    ("issuing.syncing", rules.PAYMENT_STATUS, {"trigger": "paid"}, "invalid_state"),
    ("paid", rules.PAYMENT_STATUS, {"trigger": "payment_failed"}, "invalid_state"),
    ("paid", rules.PAYMENT_STATUS, {"trigger": "paid"}, "already_in_state"),
    ("paid", rules.PAYMENT_STATUS, {"trigger": "refunded"}, None),
    ("voided", rules.PAYMENT_STATUS, {"trigger": "void"}, "already_in_state"),
])
def test_state_conflicts(state: str, kind: str, body: dict[str, str], code: str | None) -> None:
    conflict = rules.state_conflict(state, kind, body)
    assert (conflict.code if conflict else None) == code


def test_validation_reports_every_problem_with_its_path() -> None:
    lines = {"l1": "usage", "l2": "flat", "d1": "discount"}
    problems = rules.validate_draft_synchronized({"invoicing": {
        "external_id": 7, "invoice_number": "x" * 300,
        "line_external_ids": [{"line_id": "l1"}, "nope", {"line_id": 3, "external_id": "e"}],
        "line_discount_external_ids": {"d1": "e"}}}, lines)
    assert [str(p) for p in problems] == [
        "invoicing.invoice_number: must be at most 255 characters",
        "invoicing.external_id: must be a non-empty string",
        "invoicing.line_external_ids[0].external_id: required",
        "invoicing.line_external_ids[1]: must be an object",
        "invoicing.line_external_ids[2].line_id: must be a string",
        "invoicing.line_discount_external_ids: must be a list",
    ]
    assert rules.validate_draft_synchronized({"invoicing": {"external_id": "e"}}, lines) == []
    assert [p.field for p in rules.validate_issuing_synchronized(
        {"invoicing": {"sent_to_customer_at": "2026-02-01T10:00:00Z"},
         "payment": {"external_id": "", "extra": 1}})] == ["payment.extra", "payment.external_id"]
    assert rules.validate_payment_status({"trigger": "void"}) == []
    assert [p.field for p in rules.validate_payment_status({})] == ["trigger"]


def test_check_scopes_names_unknown_ones() -> None:
    assert rules.check_scopes(["payments:write", "invoices:sync", "payments:write"]) == (
        "payments:write", "invoices:sync")
    with pytest.raises(ValueError, match="'invoices:write'"):
        rules.check_scopes(["invoices:sync", "invoices:write"])
    with pytest.raises(ValueError, match="at least one"):
        rules.check_scopes([])


def _call(invoice_id: str, kind: str, body: dict[str, object], key: str) -> Call:
    return Call(kind=kind, invoice_id=invoice_id, body=body, token_name="erp", token_id=1,
                request_key=key, fingerprint=key, received_at=AT)


def test_pending_items_come_in_arrival_order_and_marking_keeps_the_first_outcome(
        tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    lines = (PublishedLine("l1", "usage"), PublishedLine("d1", "discount"))
    store.publish_invoices([
        PublishedInvoice(f"inv_{n}", "c1", "custom_invoicing", "payment_processing.pending",
                         "JPY", Decimal("1200"), lines) for n in range(3)])
    ids = [store.accept(_call(f"inv_{n}", rules.PAYMENT_STATUS, {"trigger": "paid"},
                              f"k{n}")).body["inbox_item_id"] for n in (2, 0, 1)]
    assert ids == sorted(ids)
    assert [(i.item_id, i.invoice_id) for i in store.pending_items()] == list(
        zip(ids, ["inv_2", "inv_0", "inv_1"], strict=True))
    assert [i.invoice_id for i in store.pending_items(limit=1)] == ["inv_2"]
    assert store.pending_count() == 3
    store.mark_item(ids[0], "applied", None, AT)
    store.mark_item(ids[0], "rejected", "too late", AT)    # already decided: unchanged
    store.mark_item(ids[1], "rejected", "invoice is voided", AT)
    assert store.pending_count() == 1
    first = store.inbox_item(ids[0])
    assert first is not None and (first.status, first.reason, first.applied_at) == (
        "applied", None, AT)
    with pytest.raises(KeyError):
        store.mark_item(999, "applied", None, AT)
    with pytest.raises(ValueError):
        store.mark_item(ids[2], "pending", None, AT)  # type: ignore[arg-type]
    published = store.published_invoice("inv_0")
    assert published is not None and published.total == Decimal("1200")
    assert published.lines == lines and published.currency == "JPY"
    assert store.unpublish_invoices(["inv_0", "inv_unknown"]) == 1
    assert store.published_invoice("inv_0") is None
    gone = store.accept(_call("inv_0", rules.PAYMENT_STATUS, {"trigger": "void"}, "k9"))
    assert gone.status_code == 404


def test_tokens_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    token = store.create_token("erp", ["invoices:sync"])
    with pytest.raises(ValueError, match="already named 'erp'"):
        store.create_token("erp", ["payments:write"])
    with sqlite3.connect(store.path) as con:
        rows = con.execute("SELECT token_hash, hint FROM tokens").fetchall()
    assert rows == [(hash_token(token), token[-4:])]
    info = store.authenticate(token)
    assert info is not None and info.scopes == ("invoices:sync",)
    assert store.revoke_token("erp") and store.authenticate(token) is None
    replacement = store.create_token("erp", ["invoices:sync"])   # the name is free again
    assert [t.revoked_at is None for t in store.list_tokens()] == [False, True]
    assert store.authenticate(replacement) is not None


def test_a_store_of_schema_version_1_is_migrated_keeping_its_items(tmp_path: Path) -> None:
    """Stores made before statements existed refuse the new kind in their CHECK constraint;
    opening one rebuilds the inbox, keeping every item, answer and item id."""
    path = tmp_path / "api_store.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    v1 = SCHEMA.replace(f", '{rules.STATEMENT}'", "")
    assert v1 != SCHEMA
    con.executescript(f"PRAGMA journal_mode=WAL; {v1}; PRAGMA user_version=1;")
    con.execute("INSERT INTO inbox (item_id, kind, invoice_id, body, token_name, request_key, "
                "received_at) VALUES (7, ?, 'inv_old', '{\"trigger\": \"paid\"}', 'erp', 'k7', "
                "'2026-02-01T12:00:00+00:00')", (rules.PAYMENT_STATUS,))
    con.execute("INSERT INTO responses VALUES ('k7', 'f7', 202, '{}', 7, "
                "'2026-02-01T12:00:00+00:00')")
    with pytest.raises(sqlite3.IntegrityError):   # what a v1 store does with a statement
        con.execute("INSERT INTO inbox (kind, body, token_name, request_key, received_at) "
                    "VALUES (?, '{}', 'erp', 'k8', 'x')", (rules.STATEMENT,))
    con.close()

    store = ApiStore(str(path))
    call = Call(kind=rules.STATEMENT, invoice_id=None, body=statement(entry("erp_m1")),
                token_name="erp", token_id=1, request_key="k9", fingerprint="f9",
                received_at=datetime(2026, 2, 3, 10, tzinfo=UTC))
    answer = store.accept(call)
    assert answer.status_code == 202 and answer.body["inbox_item_id"] == 8
    assert [(i.item_id, i.kind) for i in store.pending_items()] == [
        (7, rules.PAYMENT_STATUS), (8, rules.STATEMENT)]
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert check.execute("PRAGMA foreign_key_check").fetchall() == []
        assert {row[1] for row in check.execute("PRAGMA index_list(inbox)")} >= {
            "inbox_status", "inbox_invoice"}
    ApiStore(str(path))    # opening it again changes nothing
    assert store.accept(call).replayed


def test_a_credit_note_is_published_beside_invoices_and_answers_on_its_own_calls(
        tmp_path: Path) -> None:
    """A custom invoicing credit note takes the invoice hooks on its own endpoints: its calls
    are checked against its lines and projected state; an invoice call about it, or a credit
    note call about an invoice, is a 404."""
    store = ApiStore(str(tmp_path / "store.sqlite"))
    store.publish_invoices([
        PublishedInvoice("inv_1", "c1", "custom_invoicing", "payment_processing.pending", "EUR",
                         Decimal("50"), (PublishedLine("l1", "flat"),)),
        PublishedInvoice("inv_2", "c1", "custom_invoicing", "draft.syncing", "EUR",
                         Decimal("2"), (PublishedLine("l2", "correction", "l1"),),
                         corrects_invoice_id="inv_1"),
        PublishedInvoice("cn_1", "c1", "custom_invoicing", "draft.syncing", "EUR",
                         Decimal("2"), (PublishedLine("cnl_1", "credit", "l1"),),
                         document_type=rules.CREDIT_NOTE_DOCUMENT, corrects_invoice_id="inv_1")])
    draft = {"invoicing": {"external_id": "erp_cn_1", "credit_note_number": "ERP-CN-1",
                           "line_external_ids": [{"credit_note_line_id": "cnl_1",
                                                  "external_id": "erp_cn_1_l1"}]}}
    bad = store.accept(_call("cn_1", rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED, {"invoicing": {
        "external_id": "e", "line_external_ids": [{"credit_note_line_id": "l1",
                                                   "external_id": "x"}]}}, "k0"))
    assert (bad.status_code, bad.body["error"]["field"]) == (
        422, "invoicing.line_external_ids[0].credit_note_line_id")
    accepted = store.accept(_call("cn_1", rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED, draft, "k1"))
    assert accepted.status_code == 202
    assert (accepted.body["credit_note_id"], accepted.body["projected_state"]) == (
        "cn_1", "issuing")
    assert "invoice_id" not in accepted.body
    issuing = {"invoicing": {"sent_to_customer_at": "2026-02-01T13:00:00Z"}}
    early = store.accept(_call("cn_1", rules.CREDIT_NOTE_ISSUING_SYNCHRONIZED, issuing, "k2"))
    assert (early.status_code, early.body["error"]["current_state"]) == (409, "issuing")
    store.publish_invoices([PublishedInvoice(
        "cn_1", "c1", "custom_invoicing", "issuing.syncing", "EUR", Decimal("2"),
        (PublishedLine("cnl_1", "credit", "l1"),), document_type=rules.CREDIT_NOTE_DOCUMENT,
        corrects_invoice_id="inv_1")])
    assert store.accept(_call("cn_1", rules.CREDIT_NOTE_ISSUING_SYNCHRONIZED, issuing,
                              "k3")).body["projected_state"] == "issued"
    # the wrong kind of document is not found
    as_invoice = store.accept(_call("cn_1", rules.ISSUING_SYNCHRONIZED, issuing, "k4"))
    assert (as_invoice.status_code, as_invoice.body["error"]["code"]) == (
        404, "invoice_not_found")
    as_credit_note = store.accept(_call("inv_2", rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED, draft,
                                        "k5"))
    assert (as_credit_note.status_code, as_credit_note.body["error"]["code"]) == (
        404, "credit_note_not_found")
    # what GET shows of each
    view = store.credit_note_view("cn_1")
    assert view is not None and {k: view[k] for k in (
        "credit_note_id", "invoice_id", "status", "projected_state", "total", "lines",
        "pending_calls")} == {
        "credit_note_id": "cn_1", "invoice_id": "inv_1", "status": "issuing.syncing",
        "projected_state": "issued", "total": "2",
        "lines": [{"credit_note_line_id": "cnl_1", "corrects_line_id": "l1",
                   # published without tax: no rate, a tax of 0
                   "tax_rate_key": None, "tax_rate_percent": None, "tax_inclusive": False,
                   "tax_amount": "0"}],
        "pending_calls": 2}
    assert store.invoice_view("cn_1") is None and store.credit_note_view("inv_2") is None
    supplementary = store.invoice_view("inv_2")
    assert supplementary is not None and supplementary["corrects_invoice_id"] == "inv_1"
    assert supplementary["lines"] == [{"line_id": "l2", "line_type": "correction",
                                       "corrects_line_id": "l1", "tax_rate_key": None,
                                       "tax_rate_percent": None, "tax_inclusive": False,
                                       "tax_amount": "0"}]


def test_a_store_of_schema_version_2_learns_credit_notes(tmp_path: Path) -> None:
    """A version-2 store refuses the credit note callbacks in its CHECK constraint and has no
    document columns; opening it rebuilds the inbox and adds them, its invoices staying
    invoices."""
    path = tmp_path / "api_store.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    v2 = SCHEMA
    for kind in rules.CREDIT_NOTE_KINDS:
        v2 = v2.replace(f", '{kind}'", "")
    v2 = v2.replace("DEFAULT 0,  --", "DEFAULT 0   --").replace(
        "\n    document_type TEXT NOT NULL DEFAULT 'invoice', corrects_invoice_id TEXT", "")
    assert "document_type" not in v2 and rules.CREDIT_NOTE_KINDS[0] not in v2
    con.executescript(f"PRAGMA journal_mode=WAL; {v2}; PRAGMA user_version=2;")
    con.execute("INSERT INTO published_invoices (invoice_id, customer_id, app, status, "
                "currency, total, lines, published_at) VALUES ('inv_old', 'c1', "
                "'custom_invoicing', 'draft.syncing', 'EUR', '5', "
                "'[{\"line_id\": \"l1\", \"line_type\": \"flat\"}]', "
                "'2026-02-01T12:00:00+00:00')")
    con.close()

    store = ApiStore(str(path))
    old = store.published_invoice("inv_old")
    assert old is not None and (old.document_type, old.corrects_invoice_id) == ("invoice", None)
    assert old.lines == (PublishedLine("l1", "flat"),)
    store.publish_invoices([PublishedInvoice(
        "cn_1", "c1", "custom_invoicing", "draft.syncing", "EUR", Decimal("2"), (),
        document_type=rules.CREDIT_NOTE_DOCUMENT, corrects_invoice_id="inv_old")])
    answer = store.accept(_call("cn_1", rules.CREDIT_NOTE_DRAFT_SYNCHRONIZED,
                                {"invoicing": {"external_id": "erp_cn_1"}}, "k1"))
    assert answer.status_code == 202, answer.body
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
