"""finance.credit_note_reconciliation over a warehouse filled by hand: one ledger credit note per
finding against a provider view written as Stripe's snapshot and the custom invoicing statement
write it (sync.provider_credit_notes), with the golden rows computed by hand; the pandera model
passes on what the builder writes and fails on tables that misreport; the alerts follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from pipelines.checks import pandera_check
from pipelines.reconciliation import table_checks
from pipelines.reconciliation.alert_rules import current_alerts
from pipelines.reconciliation.table_builders import build_credit_note_reconciliation
from pipelines.warehouse import connect_writer

NOW = datetime(2026, 2, 5, 12, 0, tzinfo=UTC)
SNAPSHOT_AT = NOW - timedelta(minutes=5)
ISSUED_AT = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)
MONEY = pl.Decimal(38, 12)


def _invoice(con, invoice_id: str, app: str) -> None:
    con.execute("""
        INSERT INTO billing.invoices BY NAME
        SELECT $id AS invoice_id, 'INV-202602-' || $id AS invoice_number,
               'cust_' || $id AS customer_id, 'sub_' || $id AS subscription_id,
               'pro' AS plan_key, '2026-02' AS billing_month, DATE '2026-02-01' AS boundary,
               DATE '2026-01-01' AS period_start, DATE '2026-02-01' AS period_end,
               'USD' AS currency, 50 AS subtotal, 0 AS discount_total, 50 AS total,
               'payment_processing.pending' AS status, 'charge_automatically' AS collection_method,
               DATE '2026-03-01' AS due_date, $app AS billing_profile, $app AS app,
               $at AS issue_after, $at AS issued_at, $at AS created_at, $at AS rated_at""",
                {"id": invoice_id, "app": app, "at": ISSUED_AT})


def _credit_note(con, credit_note_id: str, invoice_id: str, total: str, status: str, *,
                 app: str = "stripe", issued: bool = True,
                 changed_at: datetime = ISSUED_AT) -> None:
    con.execute("""
        INSERT INTO billing.credit_notes BY NAME
        SELECT $id AS credit_note_id, 'CN-' || $id AS credit_note_number,
               $invoice AS invoice_id, 'cust_' || $invoice AS customer_id,
               '2026-02' AS billing_month, 'USD' AS currency,
               CAST($total AS DECIMAL(38, 12)) AS total, $status AS status,
               'correction' AS reason, 'correction' AS kind, $app AS billing_profile,
               $app AS app, $at AS issue_after, $at AS created_at, 'billing_run' AS created_by,
               CASE WHEN $issued THEN $at END AS issued_at, $changed AS status_changed_at""",
                {"id": credit_note_id, "invoice": invoice_id, "total": total, "status": status,
                 "app": app, "issued": issued, "at": ISSUED_AT, "changed": changed_at})
    con.execute("""
        INSERT INTO billing.credit_note_lines (credit_note_line_id, credit_note_id,
            corrects_line_id, correction_id, amount, description, position) VALUES
            ('cnl_' || $id, $id, 'line_1', 'corr_' || $id, -CAST($total AS DECIMAL(38, 12)),
             'API calls', 0)""", {"id": credit_note_id, "total": total})


def _at_provider(con, external_id: str, credit_note_id: str | None, total: str, *,
                 provider: str = "stripe", status: str = "issued", currency: str = "USD",
                 invoice_id: str | None = None, external_invoice_id: str | None = None) -> None:
    con.execute("""
        INSERT INTO sync.provider_credit_notes VALUES
            ($provider, $external_id, $id, $external_invoice, $invoice, 'P-' || $external_id,
             $status, $currency, CAST($total AS DECIMAL(38, 12)), 1,
             '[{"external_id": "cnli_1", "credit_note_line_id": null, "amount": "1"}]',
             $at)""",
                {"provider": provider, "external_id": external_id, "id": credit_note_id,
                 "external_invoice": external_invoice_id, "invoice": invoice_id,
                 "status": status, "currency": currency, "total": total, "at": SNAPSHOT_AT})


def seed(path: Path) -> None:
    """Stripe credit notes, one per finding; a custom invoicing one without a statement yet."""
    with connect_writer(str(path)) as con:
        con.execute("""
            INSERT INTO billing.billing_profiles BY NAME
            SELECT * FROM (VALUES ('stripe', 'stripe', true), ('erp', 'custom_invoicing', false),
                                  ('none', 'none', false)) p(profile_key, app, is_default),
                   (SELECT 3600 AS grace_period_seconds, false AS draft_sync_hook,
                           false AS issuing_sync_hook, 86400 AS sync_sla_seconds)""")
        for invoice_id in ("inv_1", "inv_2"):
            _invoice(con, invoice_id, "stripe")
        con.execute("""INSERT INTO sync.external_ids VALUES
            ('stripe', 'invoice', 'inv_1', 'in_1', $at),
            ('stripe', 'invoice', 'inv_2', 'in_2', $at),
            ('stripe', 'credit_note', 'cn_dup', 'cn_s_dup_b', $at)""", {"at": ISSUED_AT})
        con.execute("INSERT INTO sync.provider_snapshots VALUES ('stripe', $at, 2)",
                    {"at": SNAPSHOT_AT})

        _credit_note(con, "cn_match", "inv_1", "5.42", "issued")
        _at_provider(con, "cn_s_match", "cn_match", "5.42", external_invoice_id="in_1")
        _credit_note(con, "cn_missing", "inv_1", "1.00", "issued")
        _credit_note(con, "cn_dup", "inv_1", "2.00", "issued")
        _at_provider(con, "cn_s_dup_a", "cn_dup", "2.00")    # made by hand, same metadata
        _at_provider(con, "cn_s_dup_b", "cn_dup", "2.00")    # the one our sync mapped
        _credit_note(con, "cn_amount", "inv_1", "3.00", "issued")
        _at_provider(con, "cn_s_amount", "cn_amount", "2.50")
        _credit_note(con, "cn_invoice", "inv_1", "4.00", "issued")
        _at_provider(con, "cn_s_invoice", "cn_invoice", "4.00", external_invoice_id="in_2")
        _credit_note(con, "cn_void_there", "inv_2", "1.50", "issued")
        _at_provider(con, "cn_s_void_there", "cn_void_there", "1.50", status="void")
        _credit_note(con, "cn_void_here_now", "inv_2", "0.75", "voided",
                     changed_at=NOW - timedelta(hours=1))
        _at_provider(con, "cn_s_void_here_now", "cn_void_here_now", "0.75")
        _credit_note(con, "cn_void_here_old", "inv_2", "0.25", "voided",
                     changed_at=NOW - timedelta(hours=48))
        _at_provider(con, "cn_s_void_here_old", "cn_void_here_old", "0.25")
        _credit_note(con, "cn_voided_both", "inv_2", "0.10", "voided",
                     changed_at=NOW - timedelta(hours=48))
        _at_provider(con, "cn_s_voided_both", "cn_voided_both", "0.10", status="void")
        # not reconciled: a draft the provider does not hold, one voided before it was issued,
        # and one of app none
        _credit_note(con, "cn_draft", "inv_2", "9.00", "draft", issued=False)
        _credit_note(con, "cn_never_sent", "inv_2", "9.00", "voided", issued=False)
        _credit_note(con, "cn_none", "inv_2", "9.00", "issued", app="none")
        # the provider's own: one claiming a credit note we do not have, one with no id of ours
        _at_provider(con, "cn_s_ghost", "cn_ghost", "7.00", invoice_id="inv_2")
        _at_provider(con, "cn_s_by_hand", None, "8.00", external_invoice_id="in_1")
        # custom invoicing: being handed over, and issued without any statement so far
        _credit_note(con, "cn_erp_syncing", "inv_2", "1.00", "issuing.syncing", app="erp")
        _credit_note(con, "cn_erp_issued", "inv_2", "1.00", "issued", app="erp")
        con.execute("UPDATE billing.credit_notes SET app = 'custom_invoicing' "
                    "WHERE billing_profile = 'erp'")


@pytest.fixture
def reconciled(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    seed(path)
    with connect_writer(str(path)) as con:
        counts = build_credit_note_reconciliation(con, now=NOW)
    assert sum(counts.values()) == 13
    return path


def rows(path: Path) -> dict[str, tuple]:
    with connect_writer(str(path)) as con:
        found = con.execute("""
            SELECT coalesce(credit_note_id, external_id), provider, match_status, findings,
                   sla_breached, detail
            FROM finance.credit_note_reconciliation""").fetchall()
    return {r[0]: r[1:] for r in found}


def test_every_credit_note_finding_lands_in_its_row(reconciled: Path) -> None:
    found = rows(reconciled)
    assert {k: (v[0], v[1], v[2]) for k, v in found.items()} == {
        "cn_match": ("stripe", "matched", []),
        "cn_missing": ("stripe", "missing_in_provider", ["missing_in_provider"]),
        "cn_dup": ("stripe", "duplicate_in_provider", ["duplicate_in_provider"]),
        "cn_amount": ("stripe", "amount_mismatch", ["amount_mismatch"]),
        "cn_invoice": ("stripe", "invoice_mismatch", ["invoice_mismatch"]),
        "cn_void_there": ("stripe", "status_mismatch", ["status_mismatch"]),
        # the ledger voids a credit note only after the provider did: a provider still
        # showing it issued differs at once, however recent the void
        "cn_void_here_now": ("stripe", "status_mismatch", ["status_mismatch"]),
        "cn_void_here_old": ("stripe", "status_mismatch", ["status_mismatch"]),
        "cn_voided_both": ("stripe", "matched", []),
        "cn_ghost": ("stripe", "orphan_in_provider", ["orphan_in_provider"]),
        "cn_s_by_hand": ("stripe", "orphan_in_provider", ["orphan_in_provider"]),
        "cn_erp_syncing": ("custom_invoicing", "pending_sync", ["pending_sync"]),
        "cn_erp_issued": ("custom_invoicing", "pending_sync", ["pending_sync"]),
    }
    detail = {k: v[4] for k, v in found.items()}
    assert detail["cn_match"] == "as in the ledger"
    assert detail["cn_missing"] == "stripe does not have this issued credit note of invoice inv_1"
    # the copy our sync mapped comes first
    assert detail["cn_dup"] == "2 copies at stripe: cn_s_dup_b,cn_s_dup_a"
    assert detail["cn_amount"] == "credited 3.00 USD in the ledger, 2.50 USD at stripe"
    assert detail["cn_invoice"] == "credits invoice inv_2 at stripe, invoice inv_1 in the ledger"
    assert detail["cn_void_there"] == "status void at stripe, ledger issued"
    assert detail["cn_void_here_now"] == "status issued at stripe, ledger voided"
    assert detail["cn_void_here_old"] == "status issued at stripe, ledger voided"
    assert detail["cn_ghost"] == (
        "stripe credit note cn_s_ghost claims credit note cn_ghost, which the ledger does not "
        "have for stripe")
    assert detail["cn_s_by_hand"] == (
        "stripe credit note cn_s_by_hand of invoice inv_1 is not one of our credit notes: none "
        "was issued as it")
    assert detail["cn_erp_syncing"] == "being handed over to custom_invoicing (issuing.syncing)"
    assert detail["cn_erp_issued"] == "no snapshot from custom_invoicing yet"
    # past the 24 h SLA: what has been wrong (or syncing) since the 2nd, and every orphan; not
    # the void of an hour ago
    breached = {k for k, v in found.items() if v[3]}
    assert breached == {"cn_missing", "cn_dup", "cn_amount", "cn_invoice", "cn_void_there",
                        "cn_void_here_old", "cn_ghost", "cn_s_by_hand", "cn_erp_syncing",
                        "cn_erp_issued"}


def test_the_table_passes_its_model_and_alerts_follow(reconciled: Path) -> None:
    with connect_writer(str(reconciled)) as con:
        frame = con.sql("SELECT * FROM finance.credit_note_reconciliation").pl()
        alerts = {a.key: (a.severity, a.detail) for a in current_alerts(con, now=NOW)
                  if a.key.startswith("reconciliation:credit_note:")}
    assert pandera_check(table_checks.CreditNoteReconciliation, frame).passed
    assert {k: v[0] for k, v in alerts.items()} == {
        "reconciliation:credit_note:stripe:cn_missing": "critical",
        "reconciliation:credit_note:stripe:cn_dup": "critical",
        "reconciliation:credit_note:stripe:cn_amount": "critical",
        "reconciliation:credit_note:stripe:cn_invoice": "critical",
        "reconciliation:credit_note:stripe:cn_void_there": "warning",
        "reconciliation:credit_note:stripe:cn_void_here_now": "warning",
        "reconciliation:credit_note:stripe:cn_void_here_old": "warning",
        "reconciliation:credit_note:stripe:cn_s_ghost": "critical",
        "reconciliation:credit_note:stripe:cn_s_by_hand": "critical",
    }
    assert alerts["reconciliation:credit_note:stripe:cn_amount"][1] == (
        "credited 3.00 USD in the ledger, 2.50 USD at stripe")


def test_a_rebuild_reflects_the_provider_catching_up(reconciled: Path) -> None:
    with connect_writer(str(reconciled)) as con:
        con.execute("UPDATE sync.provider_credit_notes SET status = 'void' "
                    "WHERE external_id IN ('cn_s_void_here_now', 'cn_s_void_here_old')")
        con.execute("UPDATE sync.provider_credit_notes SET total = 3 "
                    "WHERE external_id = 'cn_s_amount'")
        build_credit_note_reconciliation(con, now=NOW)
    found = rows(reconciled)
    assert [found[k][1] for k in ("cn_void_here_now", "cn_void_here_old", "cn_amount")] == [
        "matched", "matched", "matched"]


def frame(**changes: object) -> pl.DataFrame:
    row: dict[str, object] = {
        "credit_note_id": "cn_1", "provider": "stripe", "match_status": "matched",
        "findings": [], "ledger_total": Decimal("5.42"), "provider_total": Decimal("5.42"),
        "ledger_currency": "USD", "provider_currency": "USD", "ledger_status": "issued",
        "provider_status": "issued", "invoice_id": "inv_1", "provider_invoice_id": "inv_1",
        "sla_breached": False, "detail": "as in the ledger"}
    row.update(changes)
    return pl.DataFrame([row], schema={
        "credit_note_id": pl.String, "provider": pl.String, "match_status": pl.String,
        "findings": pl.List(pl.String), "ledger_total": MONEY, "provider_total": MONEY,
        "ledger_currency": pl.String, "provider_currency": pl.String,
        "ledger_status": pl.String, "provider_status": pl.String, "invoice_id": pl.String,
        "provider_invoice_id": pl.String, "sla_breached": pl.Boolean, "detail": pl.String})


@pytest.mark.parametrize("bad", [
    {"provider_total": Decimal("5.00")},                            # "matched", totals differ
    {"provider_currency": "EUR"},                                   # "matched", currency differs
    {"provider_status": "void"},                                    # "matched", void at provider
    {"provider_invoice_id": "inv_2"},                               # "matched", other invoice
    {"match_status": "amount_mismatch", "findings": ["amount_mismatch"]},  # equal amounts
    {"match_status": "matched", "findings": ["status_mismatch"]},
    {"match_status": "refunded", "findings": ["refunded"]},
    {"ledger_total": Decimal("-5.42"), "provider_total": Decimal("-5.42")},  # credits are > 0
])
def test_a_credit_note_table_that_misreports_fails(bad: dict[str, object]) -> None:
    assert pandera_check(table_checks.CreditNoteReconciliation, frame()).passed
    assert not pandera_check(table_checks.CreditNoteReconciliation, frame(**bad)).passed
