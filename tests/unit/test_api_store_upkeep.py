"""The API store kept small, private and quick to answer: bodies validated outside its write
lock, pending items read a page at a time, decided items and stored answers pruned after the
retention period, the file readable by its owner only, and every item naming its token by id."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import duckdb
import pytest

from pipelines.api import rules
from pipelines.api.store import (
    SCHEMA,
    SCHEMA_VERSION,
    ApiStore,
    Call,
    InboxItem,
    PublishedInvoice,
    PublishedLine,
)
from tests.support.statements import entry, statement

AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def _payment(invoice_id: str, key: str, *, trigger: str = "paid", at: datetime = AT,
             token_id: int = 1) -> Call:
    return Call(kind=rules.PAYMENT_STATUS, invoice_id=invoice_id, body={"trigger": trigger},
                token_name="erp", token_id=token_id, request_key=key, fingerprint=key,
                received_at=at)


def _published(store: ApiStore, *invoice_ids: str, status: str = "payment_processing.pending",
               at: datetime = AT) -> None:
    store.publish_invoices([
        PublishedInvoice(invoice_id, "c1", "custom_invoicing", status, "EUR", Decimal("10"),
                         (PublishedLine("l1", "flat"),)) for invoice_id in invoice_ids], at=at)


def _writable_by_another(path: str) -> bool:
    """Whether another connection could take the store's write lock at once."""
    con = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def test_a_statement_is_validated_without_holding_the_write_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    seen: list[bool] = []
    validate = rules.validate_statement

    def spying(body: Any) -> list[rules.FieldError]:
        seen.append(_writable_by_another(store.path))
        return validate(body)

    monkeypatch.setattr(rules, "validate_statement", spying)
    call = Call(kind=rules.STATEMENT, invoice_id=None, body=statement(entry("erp_1")),
                token_name="erp", token_id=1, request_key="k1", fingerprint="k1",
                received_at=AT)
    assert store.accept(call).status_code == 202
    bad = Call(kind=rules.STATEMENT, invoice_id=None, body={"as_of": "x", "invoices": []},
               token_name="erp", token_id=1, request_key="k2", fingerprint="k2",
               received_at=AT)
    refused = store.accept(bad)
    assert (refused.status_code, refused.body["error"]["field"]) == (422, "as_of")
    assert seen == [True, True]


def test_a_callback_is_validated_outside_the_lock_and_again_if_its_invoice_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is checked against the invoice as read before the lock; an invoice published
    anew in between (other lines) is checked again inside, so nothing stale is accepted."""
    store = ApiStore(str(tmp_path / "store.sqlite"))
    store.publish_invoices([PublishedInvoice(
        "inv_1", "c1", "custom_invoicing", "draft.syncing", "EUR", Decimal("10"),
        (PublishedLine("l1", "flat"),))])
    body = {"invoicing": {"external_id": "e1",
                          "line_external_ids": [{"line_id": "l1", "external_id": "x1"}]}}
    seen: list[bool] = []
    validate = rules.validate_draft_synchronized

    def spying(checked: Any, lines: Any) -> list[rules.FieldError]:
        seen.append(_writable_by_another(store.path))
        if len(seen) == 1:   # the pipeline publishes the invoice anew, without line l1
            store.publish_invoices([PublishedInvoice(
                "inv_1", "c1", "custom_invoicing", "draft.syncing", "EUR", Decimal("10"),
                (PublishedLine("l2", "flat"),))])
        return validate(checked, lines)

    monkeypatch.setattr(rules, "validate_draft_synchronized", spying)
    call = Call(kind=rules.DRAFT_SYNCHRONIZED, invoice_id="inv_1", body=body, token_name="erp",
                token_id=1, request_key="k1", fingerprint="k1", received_at=AT)
    answer = store.accept(call)
    assert seen == [True, False]     # before the lock; again inside, the invoice had changed
    assert answer.status_code == 422
    assert answer.body["error"]["field"] == "invoicing.line_external_ids[0].line_id"


def test_pending_items_are_read_a_page_at_a_time(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    _published(store, *(f"inv_{n}" for n in range(5)))
    ids = [store.accept(_payment(f"inv_{n}", f"k{n}")).body["inbox_item_id"] for n in range(5)]
    pages: list[int] = []
    read = store.pending_items

    def counting(limit: int | None = None, *, after: int = 0) -> list[InboxItem]:
        page = read(limit, after=after)
        pages.append(len(page))
        return page

    monkeypatch.setattr(store, "pending_items", counting)
    seen: list[int] = []
    for item in store.each_pending(page_size=2):
        seen.append(item.item_id)
        store.mark_item(item.item_id, "applied", None, AT)   # as the inbox pass does
    assert seen == ids
    assert pages == [2, 2, 1]


def _answers(store: ApiStore) -> set[str]:
    with sqlite3.connect(store.path) as con:
        return {row[0] for row in con.execute("SELECT request_key FROM responses")}


def test_decided_items_and_their_answers_are_pruned_after_the_retention_period(
        tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    old, recent = AT - timedelta(days=40), AT - timedelta(days=3)
    _published(store, "inv_old", "inv_pending", "inv_unpublished_yet", "inv_recent", "inv_rej",
               at=old)
    applied = store.accept(_payment("inv_old", "k_old", at=old)).body["inbox_item_id"]
    pending = store.accept(_payment("inv_pending", "k_pending", at=old)).body["inbox_item_id"]
    # applied long ago, but the pipeline has not published the invoice since: still projected
    projected = store.accept(_payment("inv_unpublished_yet", "k_proj",
                                      at=old)).body["inbox_item_id"]
    fresh = store.accept(_payment("inv_recent", "k_recent", at=recent)).body["inbox_item_id"]
    rejected = store.accept(_payment("inv_rej", "k_rej", trigger="void",
                                     at=old)).body["inbox_item_id"]
    store.mark_item(applied, "applied", None, old)
    store.mark_item(rejected, "rejected", "voided elsewhere", old)
    store.mark_item(projected, "applied", None, old)
    store.mark_item(fresh, "applied", None, recent)
    _published(store, "inv_old", "inv_recent", status="paid", at=old)

    pruned = store.prune_decided(AT - timedelta(days=30))

    assert (pruned.items, pruned.responses) == (2, 3)
    assert store.inbox_item(applied) is None and store.inbox_item(rejected) is None
    assert [i.item_id for i in store.pending_items()] == [pending]
    assert store.inbox_item(projected) is not None and store.inbox_item(fresh) is not None
    assert _answers(store) == {"k_pending", "k_recent"}
    assert store.projected_state("inv_unpublished_yet") == "paid"
    # a replay after its answer was pruned is a new call, decided on the state as it is now
    again = store.accept(_payment("inv_old", "k_old"))
    assert (again.status_code, again.replayed) == (409, False)
    assert store.prune_decided(AT - timedelta(days=30)) == type(pruned)(0, 0)


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """The usual umask (022), which leaves new files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("wide_umask")
def test_the_store_and_its_wal_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "new" / "store.sqlite"))
    store.create_token("erp", ["invoices:sync"])
    with sqlite3.connect(store.path) as held:     # keeps -wal and -shm while we look
        held.execute("SELECT count(*) FROM tokens").fetchone()
        modes = {suffix: _mode(store.path + suffix) for suffix in ("", "-wal", "-shm")}
    assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    # a store an earlier version left readable by everyone is narrowed when opened
    os.chmod(store.path, 0o644)
    ApiStore(store.path)
    assert _mode(store.path) == 0o600


def test_items_name_their_token_by_id_so_a_reused_name_is_told_apart(tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "store.sqlite"))
    first = store.create_token("erp", ["payments:write"])
    first_info = store.authenticate(first)
    assert first_info is not None
    store.revoke_token("erp")
    second_info = store.authenticate(store.create_token("erp", ["payments:write"]))
    assert second_info is not None and second_info.token_id != first_info.token_id
    assert [t.token_id for t in store.list_tokens()] == [first_info.token_id,
                                                         second_info.token_id]
    _published(store, "inv_1", "inv_2")
    for invoice_id, key, info in (("inv_1", "k1", first_info), ("inv_2", "k2", second_info)):
        store.accept(_payment(invoice_id, key, token_id=info.token_id))
    actors = [(i.token_id, i.actor) for i in store.pending_items()]
    assert actors == [(first_info.token_id, f"api:erp#{first_info.token_id}"),
                      (second_info.token_id, f"api:erp#{second_info.token_id}")]


def test_a_store_of_schema_version_4_learns_token_ids(tmp_path: Path) -> None:
    """Items of a version-4 store have no token id: they keep the name as their actor."""
    path = tmp_path / "api_store.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    v4 = SCHEMA.replace("\n    token_id    INTEGER,", "")
    assert "token_id" not in v4.split("CREATE TABLE IF NOT EXISTS responses")[0]
    con.executescript(f"PRAGMA journal_mode=WAL; {v4}; PRAGMA user_version=4;")
    con.execute("INSERT INTO inbox (item_id, kind, invoice_id, body, token_name, request_key, "
                "received_at) VALUES (3, ?, 'inv_old', '{\"trigger\": \"paid\"}', 'erp', 'k3', "
                "'2026-02-01T12:00:00+00:00')", (rules.PAYMENT_STATUS,))
    con.close()
    store = ApiStore(str(path))
    [old] = store.pending_items()
    assert (old.item_id, old.token_id, old.actor) == (3, None, "api:erp")
    _published(store, "inv_new")
    store.accept(_payment("inv_new", "k4", token_id=7))
    assert [i.actor for i in store.pending_items()] == ["api:erp", "api:erp#7"]
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9


def test_a_store_of_schema_version_5_learns_tax(tmp_path: Path) -> None:
    """A version-5 store publishes documents without tax: opening it adds the tax columns; a
    document published before reads as untaxed (tax 0, total including tax = total) until the
    pipeline publishes it again with its tax."""
    path = tmp_path / "api_store.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    v5 = SCHEMA.replace(", tax_total TEXT, total_including_tax TEXT, tax_note TEXT", "")
    assert "tax_note" not in v5
    con.executescript(f"PRAGMA journal_mode=WAL; {v5}; PRAGMA user_version=5;")
    con.execute("INSERT INTO published_invoices (invoice_id, customer_id, app, status, currency, "
                "total, lines, published_at) VALUES ('inv_old', 'c1', 'custom_invoicing', "
                "'issued', 'EUR', '39.20', '[{\"line_id\": \"l1\", \"line_type\": "
                "\"flat\"}]', '2026-02-01T12:00:00+00:00')")
    con.close()
    store = ApiStore(str(path))
    view = store.invoice_view("inv_old")
    assert view is not None
    assert (view["total"], view["tax_total"], view["total_including_tax"], view["tax_note"]) == (
        "39.20", "0", "39.20", None)
    assert view["lines"][0]["tax_amount"] == "0" and view["lines"][0]["tax_rate_key"] is None
    # published again with its tax: 39.20 + 7.45 (19 %) = 46.65
    store.publish_invoices([PublishedInvoice(
        "inv_old", "c1", "custom_invoicing", "issued", "EUR", Decimal("39.20"),
        (PublishedLine("l1", "flat", tax_rate_key="de_vat", tax_rate_percent=Decimal("19"),
                       tax_amount=Decimal("7.45")),),
        tax_total=Decimal("7.45"), total_including_tax=Decimal("46.65"))])
    view = store.invoice_view("inv_old")
    assert view is not None
    assert (view["tax_total"], view["total_including_tax"]) == ("7.45", "46.65")
    assert {k: view["lines"][0][k] for k in ("tax_rate_key", "tax_rate_percent",
                                              "tax_inclusive", "tax_amount")} == {
        "tax_rate_key": "de_vat", "tax_rate_percent": "19", "tax_inclusive": False,
        "tax_amount": "7.45"}
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_each_inbox_pass_prunes_what_is_past_the_retention_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.custom_invoicing.inbox import apply_inbox

    store = ApiStore(str(tmp_path / "store.sqlite"))
    _published(store, "inv_1", "inv_2")
    done = [store.accept(_payment(i, f"k_{i}", at=AT - timedelta(days=9))).body["inbox_item_id"]
            for i in ("inv_1", "inv_2")]
    store.mark_item(done[0], "applied", None, AT - timedelta(days=8))
    store.mark_item(done[1], "applied", None, AT - timedelta(days=6))
    _published(store, "inv_1", "inv_2", status="paid")
    monkeypatch.setenv("BILLING_API_RETENTION_DAYS", "7")
    update = apply_inbox(cast(duckdb.DuckDBPyConnection, None), store, now=AT)   # none pending
    assert (update.applied, update.rejected) == (0, 0)
    assert store.inbox_item(done[0]) is None and store.inbox_item(done[1]) is not None
    assert _answers(store) == {"k_inv_2"}
