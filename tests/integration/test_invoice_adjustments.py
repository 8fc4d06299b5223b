"""Draft adjustments by an operator (contract section 9): `billing invoice adjust` adds and
removes adjustment lines of a draft, priced by the rating's rules; the billing run's re-rating
keeps them; after the draft it refuses with a clear message and writes nothing; an issued
invoice's adjustment is never taken for a difference to correct."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pipelines.cli import main as billing
from tests.support.dagster_runs import ingest_landed, run_billing
from tests.support.landing import event, write_lines
from tests.support.warehouse import invoice_of, query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
  - {key: manual, app: none, grace_period: PT2H}
customers:
  - {id: initech_003, name: Initech KK, billing_profile: manual}
subscriptions:
  - {id: sub_initech_pro, customer: initech_003, plan: professional, start_date: 2026-01-01}
"""


@pytest.fixture
def draft(billing_env, monkeypatch):
    """Initech's February 1 invoice, still a draft (app none, 2 h grace): January's 2 API calls
    (graduated: 2 x 0.01 + 10.00 flat fee = 10.02), no storage nor exports, the minimum
    commitment's top-up 50.00 - (10.00 fee billed Jan 1 + 10.02) = 29.98, and February's fee
    10.00 in advance: 50.00."""
    (billing_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    write_lines(billing_env["landing"] / "jan.jsonl",
                [event(f"api_{i}", customer="initech_003", ts="2026-01-10T10:00:00Z")
                 for i in range(2)])
    ingest_landed()
    run_billing("2026-02", "2026-02-01T00:30:00Z")
    monkeypatch.setenv("BILLING_NOW", "2026-02-01T00:45:00Z")
    return billing_env


def invoice_lines(warehouse, invoice_id: str) -> list[tuple[str, str, Decimal]]:
    return query(warehouse, """SELECT line_type, description, amount FROM billing.invoice_lines
                               WHERE invoice_id = $i ORDER BY position""", {"i": invoice_id})


def totals(warehouse, invoice_id: str) -> tuple:
    return query(warehouse, "SELECT status, subtotal, discount_total, total "
                            "FROM billing.invoices WHERE invoice_id = $i", {"i": invoice_id})[0]


def line_id(warehouse, invoice_id: str, description: str) -> str:
    [(found,)] = query(warehouse, "SELECT line_id FROM billing.invoice_lines WHERE "
                                  "invoice_id = $i AND description = $d",
                       {"i": invoice_id, "d": description})
    return found


def test_adjust_a_draft_keep_it_through_re_rating_remove_and_refuse_after_draft(
        draft, capsys, monkeypatch):
    warehouse = draft["warehouse"]
    invoice = invoice_of(warehouse, "initech_003")
    assert totals(warehouse, invoice) == ("draft", Decimal("50.00"), Decimal("0.00"),
                                          Decimal("50.00"))

    billing(["invoice", "adjust", invoice, "--description", "Onboarding workshop",
             "--amount", "30", "--actor", "finance:ana"])
    out = capsys.readouterr().out
    assert "added adjustment" in out and "'Onboarding workshop': 30.00 USD" in out
    assert f"invoice {invoice} (draft): total 50.00 -> 80.00 USD" in out
    # a credit asked as quantity x unit price: 2 x -7.50 = -15.00
    billing(["invoice", "adjust", invoice, "--description", "Outage credit",
             "--quantity", "2", "--unit-price", "-7.50"])
    capsys.readouterr()
    # the adjustment does not count towards the minimum commitment: the top-up stays 29.98
    assert invoice_lines(warehouse, invoice) == [
        ("usage", "Api calls (graduated) 2026-01-01 \u2013 2026-02-01", Decimal("10.02")),
        ("usage", "Storage (per unit) 2026-01-01 \u2013 2026-02-01", Decimal("0.00")),
        ("usage", "Exports (package) 2026-01-01 \u2013 2026-02-01", Decimal("0.00")),
        ("minimum_commitment", "Minimum commitment top-up to 50.00 USD 2026-01-01 \u2013 "
                               "2026-02-01", Decimal("29.98")),
        ("flat", "Platform fee 2026-02-01 \u2013 2026-03-01", Decimal("10.00")),
        ("adjustment", "Onboarding workshop", Decimal("30.00")),
        ("adjustment", "Outage credit", Decimal("-15.00"))]
    assert totals(warehouse, invoice) == ("draft", Decimal("65.00"), Decimal("0.00"),
                                          Decimal("65.00"))
    onboarding = line_id(warehouse, invoice, "Onboarding workshop")
    outage = line_id(warehouse, invoice, "Outage credit")
    assert query(warehouse, """SELECT line_id, source, added_by, quantity, unit_price, amount
                               FROM billing.invoice_adjustments ORDER BY position""")[0] == (
        onboarding, "cli", "finance:ana", None, None, Decimal("30.00"))

    # the same command again would charge twice: refused, nothing written
    with pytest.raises(SystemExit, match="already on invoice"):
        billing(["invoice", "adjust", invoice, "--description", "Onboarding workshop",
                 "--amount", "30.00"])
    assert query(warehouse, "SELECT count(*) FROM billing.invoice_adjustments") == [(2,)]

    # a late call re-rates the draft: the API line and the top-up move, the adjustments stay
    write_lines(draft["landing"] / "late.jsonl",
                [event("api_late", customer="initech_003", ts="2026-01-31T23:00:00Z")])
    ingest_landed()
    run_billing("2026-02", "2026-02-01T00:50:00Z")
    lines = invoice_lines(warehouse, invoice)
    assert lines[0][2] == Decimal("10.03") and lines[3][2] == Decimal("29.97")
    assert lines[5:] == [("adjustment", "Onboarding workshop", Decimal("30.00")),
                         ("adjustment", "Outage credit", Decimal("-15.00"))]
    assert line_id(warehouse, invoice, "Onboarding workshop") == onboarding
    assert totals(warehouse, invoice)[3] == Decimal("65.00")

    # remove the credit: who and when are kept
    billing(["invoice", "adjust", invoice, "--remove", outage, "--actor", "finance:bo"])
    assert "removed adjustment" in capsys.readouterr().out
    assert totals(warehouse, invoice)[3] == Decimal("80.00")
    assert query(warehouse, "SELECT removed_by FROM billing.invoice_adjustments "
                            "WHERE line_id = $l", {"l": outage}) == [("finance:bo",)]
    run_billing("2026-02", "2026-02-01T00:55:00Z")
    assert [t for t, _, _ in invoice_lines(warehouse, invoice)].count("adjustment") == 1

    # rated lines are never removed by hand; a credit never takes the invoice below zero
    api_line = line_id(warehouse, invoice, "Api calls (graduated) 2026-01-01 \u2013 2026-02-01")
    with pytest.raises(SystemExit, match="is a usage line; only adjustment lines"):
        billing(["invoice", "adjust", invoice, "--remove", api_line])
    with pytest.raises(SystemExit, match=r"at most 80\.00 USD can be credited"):
        billing(["invoice", "adjust", invoice, "--description", "Goodwill",
                 "--amount", "-80.01"])
    assert totals(warehouse, invoice)[3] == Decimal("80.00")

    # issued once the grace period is over; then adjusting is refused and writes nothing
    run_billing("2026-02", "2026-02-01T03:00:00Z")
    assert totals(warehouse, invoice)[0] == "issued"
    before = (invoice_lines(warehouse, invoice),
              query(warehouse, "SELECT * FROM billing.invoice_adjustments ORDER BY line_id"))
    monkeypatch.setenv("BILLING_NOW", "2026-02-01T03:10:00Z")
    with pytest.raises(SystemExit) as refused:
        billing(["invoice", "adjust", invoice, "--description", "Late fee",
                 "--amount", "5.00"])
    message = str(refused.value)
    assert message.startswith("billing invoice adjust: invoice ")
    assert "is issued: adjustments are only possible while it is draft or draft.syncing" \
        in message
    assert "credit note" in message
    assert (invoice_lines(warehouse, invoice),
            query(warehouse, "SELECT * FROM billing.invoice_adjustments ORDER BY line_id")) \
        == before

    # re-rating the issued invoice keeps its adjustment in the rating: nothing to correct
    run_billing("2026-02", "2026-02-02T00:00:00Z")
    assert query(warehouse, "SELECT count(*) FROM billing.corrections") == [(0,)]
    assert query(warehouse, "SELECT count(*) FROM billing.invoice_differences "
                            "WHERE invoice_id = $i", {"i": invoice}) == [(0,)]


def test_adjust_needs_a_description_and_one_kind_of_amount(draft):
    invoice = invoice_of(draft["warehouse"], "initech_003")
    for args, words in (
            (["--amount", "5"], "give --description"),
            (["--description", "x"], "give --amount, or both --quantity and --unit-price"),
            (["--description", "x", "--amount", "5", "--quantity", "1"], "not both"),
            (["--description", "x", "--amount", "0.001"], r"rounds to 0\.00 USD"),
            # more than the ledger holds: a refusal naming the limit, not a DuckDB traceback
            (["--description", "x", "--amount", "1e30"],
             r"adjustment\.amount: must be less than 10\^18 in absolute value"),
            (["--description", "x", "--quantity", "1e9", "--unit-price", "1e9"],
             r"adjustment\.unit_price: quantity x unit_price comes to 1000000000000000000\.00"),
            (["--description", "x", "--quantity", "-1", "--unit-price", "5"],
             "quantity: must be positive"),
            (["--remove", "il_x", "--amount", "5"], "--remove takes no"),
            (["--remove", "il_nowhere"], "il_nowhere is not a line of invoice")):
        with pytest.raises(SystemExit, match=words):
            billing(["invoice", "adjust", invoice, *args])
    with pytest.raises(SystemExit, match="unknown invoice inv_nowhere"):
        billing(["invoice", "adjust", "inv_nowhere", "--description", "x", "--amount", "5"])
    assert query(draft["warehouse"], "SELECT count(*) FROM billing.invoice_adjustments") == [
        (0,)]
