"""Shares of inbox items about several customer shards' documents (API store schema 9): a
statement or a Stripe webhook event is decided only once every shard has recorded what it did
with its part; the first share a shard records stays; a store of schema 8 gains the table."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.api import rules
from pipelines.api.store import SCHEMA, SCHEMA_VERSION, ApiStore, Call, PublishedInvoice
from pipelines.api.store.schema import SHARE_SCHEMA
from pipelines.custom_invoicing.inbox import item_shards, statement_part
from pipelines.sharding import shard_of
from tests.support.statements import credit_note_entry, entry, statement

AT = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def _stripe_event(store: ApiStore, key: str) -> int:
    answer = store.accept(Call(kind=rules.STRIPE_EVENT, invoice_id=None,
                               body={"id": f"evt_{key}", "type": "invoice.paid"},
                               token_name="stripe", token_id=1, request_key=key,
                               fingerprint=key, received_at=AT, event_id=f"evt_{key}"))
    assert answer.status_code == 202
    return int(answer.body["inbox_item_id"])


def test_an_item_is_decided_once_every_shard_recorded_its_share(tmp_path: Path) -> None:
    store = ApiStore(str(tmp_path / "api.sqlite3"))
    item = _stripe_event(store, "a")
    pending = store.inbox_item(item)
    assert pending is not None
    assert item_shards(store, pending, 3) == [0, 1, 2]
    assert store.record_share(item, 2, 3, "not_ours", "stripe invoice in_1 is not mapped", AT) \
        is None
    assert store.record_share(item, 0, 3, "not_ours", "stripe invoice in_1 is not mapped", AT) \
        is None
    assert item_shards(store, pending, 3) == [1]
    assert store.inbox_item(item).status == "pending"
    # recorded again by a shard (a run after a crash): the first share stays, nothing decided
    assert store.record_share(item, 0, 3, "applied", None, AT) is None
    assert store.item_shares(item, 3)[0].outcome == "not_ours"
    # shares of another shard count (before a re-shard) do not count towards 3
    assert store.record_share(item, 1, 2, "applied", None, AT) is None
    assert store.inbox_item(item).status == "pending"
    assert store.record_share(item, 1, 3, "applied", None, AT) == "applied"
    decided = store.inbox_item(item)
    assert decided.status == "applied"
    assert decided.reason == ("shard 0: not ours (stripe invoice in_1 is not mapped); "
                              "shard 2: not ours (stripe invoice in_1 is not mapped)")
    assert store.record_share(item, 1, 3, "applied", None, AT) is None     # decided once

    other = _stripe_event(store, "b")
    for shard in (0, 1, 2):
        store.record_share(other, shard, 3, "not_ours", "stripe invoice in_2 is not mapped "
                                                        "to an invoice of ours", AT)
    assert (store.inbox_item(other).status, store.inbox_item(other).reason) == (
        "rejected", "not ours in any of the 3 customer shards: stripe invoice in_2 is not "
                    "mapped to an invoice of ours")

    third = _stripe_event(store, "c")
    store.record_share(third, 0, 2, "rejected", "superseded", AT)
    store.record_share(third, 1, 2, "rejected", "superseded", AT)
    assert (store.inbox_item(third).status, store.inbox_item(third).reason) == (
        "rejected", "superseded")

    with pytest.raises(KeyError):
        store.record_share(999, 0, 2, "applied", None, AT)
    with pytest.raises(ValueError):
        store.record_share(third, 2, 2, "applied", None, AT)

    # decided items are pruned with their shares
    store.prune_decided(AT + timedelta(days=1))
    with sqlite3.connect(store.path) as con:
        assert con.execute("SELECT count(*) FROM inbox_item_shares").fetchone()[0] == 0


def test_a_store_of_schema_8_gains_the_shares_table(tmp_path: Path) -> None:
    path = tmp_path / "api.sqlite3"
    con = sqlite3.connect(path)
    v8 = SCHEMA.replace(SHARE_SCHEMA, "")
    assert "inbox_item_shares" not in v8
    con.executescript(f"PRAGMA journal_mode=WAL; {v8}; PRAGMA user_version=8;")
    con.close()
    store = ApiStore(str(path))
    item = _stripe_event(store, "a")
    store.record_share(item, 0, 2, "applied", None, AT)
    assert store.item_shares(item, 2)[0].outcome == "applied"
    ApiStore(str(path))                   # opening it again changes nothing
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
        assert check.execute("SELECT count(*) FROM inbox_item_shares").fetchone()[0] == 1


def test_each_statement_entry_is_in_exactly_one_shards_part(tmp_path: Path) -> None:
    """By the published document's customer; what names no published document is shard 0's."""
    store = ApiStore(str(tmp_path / "api.sqlite3"))
    customers = {"inv_a": "initech_003", "inv_b": "hooli_005", "cn_b": "hooli_005"}
    store.publish_invoices([
        PublishedInvoice(document, customer, "custom_invoicing", "issued", "EUR", Decimal("1"),
                         (), document_type="credit_note" if document.startswith("cn") else
                         "invoice") for document, customer in customers.items()], at=AT)
    assert (shard_of("initech_003", 2), shard_of("hooli_005", 2)) == (0, 1)
    body = statement(entry("e_a", invoice_id="inv_a"), entry("e_b", invoice_id="inv_b"),
                     entry("e_orphan", invoice_id=None), entry("e_unknown", invoice_id="inv_x"))
    body["credit_notes"] = [credit_note_entry("n_b", credit_note_id="cn_b", invoice_id="inv_b"),
                            credit_note_entry("n_by_invoice", credit_note_id=None,
                                              invoice_id="inv_b"),
                            credit_note_entry("n_orphan", credit_note_id=None, invoice_id=None)]
    parts = [statement_part(store, body, shard, 2) for shard in (0, 1)]
    assert [[e["external_id"] for e in part["invoices"]] for part in parts] == [
        ["e_a", "e_orphan", "e_unknown"], ["e_b"]]
    assert [[e["external_id"] for e in part["credit_notes"]] for part in parts] == [
        ["n_orphan"], ["n_b", "n_by_invoice"]]
    assert all(rules.validate_statement(part) == [] for part in parts)
    assert all(part["as_of"] == body["as_of"] for part in parts)
