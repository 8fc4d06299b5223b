"""The invoice-side reconciliation tables once corrections exist, over a warehouse filled by hand:
a voided invoice is not a status mismatch while its void is on its way, a supplementary invoice
reconciles like any invoice, and a credit note on an unpaid invoice lowers what the payment and
the receivable are expected to be (golden values computed by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.reconciliation.table_builders import (
    build_invoice_reconciliation,
    build_payment_reconciliation,
    build_receivables_aging,
)
from pipelines.warehouse import connect_writer

NOW = datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
ISSUED_AT = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)


def _invoice(con, invoice_id: str, total: str, status: str, *, changed_at: datetime = ISSUED_AT,
             corrects: str | None = None) -> None:
    con.execute("""
        INSERT INTO billing.invoices BY NAME
        SELECT $id AS invoice_id, 'INV-' || $id AS invoice_number, 'cust_1' AS customer_id,
               'sub_1' AS subscription_id, 'pro' AS plan_key, '2026-02' AS billing_month,
               DATE '2026-02-01' AS boundary, DATE '2026-01-01' AS period_start,
               DATE '2026-02-01' AS period_end, 'USD' AS currency,
               CAST($total AS DECIMAL(38, 12)) AS subtotal, 0 AS discount_total,
               CAST($total AS DECIMAL(38, 12)) AS total, $status AS status,
               'charge_automatically' AS collection_method, DATE '2026-03-01' AS due_date,
               'stripe' AS billing_profile, 'stripe' AS app, $at AS issue_after,
               $at AS issued_at, $at AS created_at, $at AS rated_at,
               $changed AS status_changed_at, $corrects AS corrects_invoice_id""",
                {"id": invoice_id, "total": total, "status": status, "at": ISSUED_AT,
                 "changed": changed_at, "corrects": corrects})
    con.execute("""
        INSERT INTO billing.invoice_lines BY NAME
        SELECT 'line_' || $id AS line_id, $id AS invoice_id,
               CASE WHEN $corrects IS NULL THEN 'usage' ELSE 'correction' END AS line_type,
               'api_calls' AS price_key, 'API calls' AS description,
               CAST($total AS DECIMAL(38, 12)) AS amount, DATE '2026-01-01' AS period_start,
               DATE '2026-02-01' AS period_end, 0 AS position,
               CASE WHEN $corrects IS NOT NULL THEN 'line_' || $corrects END AS corrects_line_id""",
                {"id": invoice_id, "total": total, "corrects": corrects})


def _at_stripe(con, invoice_id: str, total: str, status: str, paid: str = "0") -> None:
    con.execute("""
        INSERT INTO sync.provider_invoices VALUES
            ('stripe', 'in_' || $id, $id, 'cus_1', 'S-' || $id, $status, 'USD',
             CAST($total AS DECIMAL(38, 12)), CAST($paid AS DECIMAL(38, 12)), 0, 0, 1,
             json_array(json_object('external_id', 'il_' || $id, 'line_id', 'line_' || $id,
                                    'amount', $total)), $at)""",
                {"id": invoice_id, "total": total, "status": status, "paid": paid,
                 "at": NOW - timedelta(minutes=5)})


def _credit_note(con, credit_note_id: str, invoice_id: str, total: str,
                 issued_at: datetime) -> None:
    con.execute("""
        INSERT INTO billing.credit_notes BY NAME
        SELECT $id AS credit_note_id, 'CN-' || $id AS credit_note_number,
               $invoice AS invoice_id, 'cust_1' AS customer_id, '2026-02' AS billing_month,
               'USD' AS currency, CAST($total AS DECIMAL(38, 12)) AS total, 'issued' AS status,
               'correction' AS reason, 'correction' AS kind, 'stripe' AS billing_profile,
               'stripe' AS app, $at AS issue_after, $at AS created_at,
               'billing_run' AS created_by, $at AS issued_at, $at AS status_changed_at""",
                {"id": credit_note_id, "invoice": invoice_id, "total": total, "at": issued_at})


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with connect_writer(str(path)) as con:
        con.execute("""
            INSERT INTO billing.billing_profiles BY NAME
            SELECT 'stripe' AS profile_key, 'stripe' AS app, true AS is_default,
                   3600 AS grace_period_seconds, false AS draft_sync_hook,
                   false AS issuing_sync_hook, 86400 AS sync_sla_seconds""")
        con.execute("INSERT INTO sync.provider_snapshots VALUES ('stripe', $at, 6)",
                    {"at": NOW - timedelta(minutes=5)})
        # voids: one on its way (an hour ago), one Stripe never got (two days ago), one done
        _invoice(con, "inv_void_new", "50.00", "voided", changed_at=NOW - timedelta(hours=1))
        _at_stripe(con, "inv_void_new", "50.00", "open")
        _invoice(con, "inv_void_old", "50.00", "voided", changed_at=NOW - timedelta(hours=48))
        _at_stripe(con, "inv_void_old", "50.00", "open")
        _invoice(con, "inv_void_done", "50.00", "voided", changed_at=NOW - timedelta(hours=48))
        _at_stripe(con, "inv_void_done", "50.00", "void")
        # a supplementary invoice of +0.10 correcting inv_paid, held by Stripe
        _invoice(con, "inv_paid", "50.00", "paid", changed_at=ISSUED_AT + timedelta(days=2))
        con.execute("INSERT INTO billing.invoice_status_history VALUES "
                    "('inv_paid', 'payment_processing.pending', 'paid', $at, 'stripe', 'sync')",
                    {"at": ISSUED_AT + timedelta(days=2)})
        _at_stripe(con, "inv_paid", "50.00", "paid", paid="44.58")
        _invoice(con, "inv_supp", "0.10", "payment_processing.pending", corrects="inv_paid")
        _at_stripe(con, "inv_supp", "0.10", "open")
        # inv_paid was credited 5.42 before it was paid (Stripe collected 44.58), and 1.00 after
        _credit_note(con, "cn_before", "inv_paid", "5.42", ISSUED_AT + timedelta(days=1))
        _credit_note(con, "cn_after", "inv_paid", "1.00", ISSUED_AT + timedelta(days=3))
        # an open invoice credited 12.50 is owed 37.50
        _invoice(con, "inv_open", "50.00", "payment_processing.pending")
        _at_stripe(con, "inv_open", "50.00", "open")
        _credit_note(con, "cn_open", "inv_open", "12.50", ISSUED_AT + timedelta(days=1))
    return path


def test_voids_on_their_way_and_supplementary_invoices_reconcile(warehouse: Path) -> None:
    with connect_writer(str(warehouse)) as con:
        build_invoice_reconciliation(con, now=NOW)
        rows = {r[0]: r[1:] for r in con.execute("""
            SELECT invoice_id, match_status, sla_breached, detail
            FROM finance.invoice_reconciliation""").fetchall()}
    assert rows == {
        "inv_void_new": ("pending_sync", False,
                         "voided in the ledger at 2026-02-05 11:00 UTC; stripe has not been "
                         "told yet"),
        "inv_void_old": ("status_mismatch", True,
                         "status open at stripe, void expected for ledger voided"),
        "inv_void_done": ("matched", False, "as in the ledger"),
        "inv_paid": ("matched", False, "as in the ledger"),
        "inv_supp": ("matched", False, "as in the ledger"),
        "inv_open": ("matched", False, "as in the ledger"),
    }


def test_credit_notes_lower_what_is_paid_and_owed(warehouse: Path) -> None:
    with connect_writer(str(warehouse)) as con:
        build_payment_reconciliation(con, now=NOW)
        build_receivables_aging(con, now=NOW)
        payments = con.execute("""
            SELECT invoice_id, match_status, amount, ledger_amount
            FROM finance.payment_reconciliation""").fetchall()
        owed = con.execute("SELECT invoice_id, amount_due FROM finance.receivables_aging "
                           "ORDER BY invoice_id").fetchall()
    # 50.00 less the 5.42 credited before the payment; the 1.00 credited after it is not due
    assert payments == [("inv_paid", "matched", Decimal("44.58"), Decimal("44.58"))]
    assert owed == [("inv_open", Decimal("37.50")), ("inv_supp", Decimal("0.10"))]
