"""The pandera checks of the reconciliation tables catch a table that misreports: each case is
a frame the builders must never produce, and the check must fail on it (and pass once fixed)."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest

from pipelines.checks import pandera_check
from pipelines.reconciliation import table_checks

MONEY = pl.Decimal(38, 12)


def invoice_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "invoice_id": "inv_1", "provider": "stripe", "match_status": "matched",
        "ledger_total": Decimal("50"), "provider_total": Decimal("50"),
        "ledger_currency": "USD", "provider_currency": "USD",
        "provider_status": "open", "expected_provider_status": "open",
        "line_differences": None, "findings": [], "sla_breached": False,
        "detail": "as in the ledger"}
    row.update(changes)
    return row


def invoice_frame(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={
        "invoice_id": pl.String, "provider": pl.String, "match_status": pl.String,
        "ledger_total": MONEY, "provider_total": MONEY, "ledger_currency": pl.String,
        "provider_currency": pl.String, "provider_status": pl.String,
        "expected_provider_status": pl.String, "line_differences": pl.String,
        "findings": pl.List(pl.String), "sla_breached": pl.Boolean, "detail": pl.String})


def test_a_consistent_invoice_table_passes():
    frame = invoice_frame(
        invoice_row(),
        invoice_row(invoice_id="inv_2", match_status="amount_mismatch",
                    provider_total=Decimal("55"), findings=["amount_mismatch"], detail="x"))
    assert pandera_check(table_checks.InvoiceReconciliation, frame).passed


@pytest.mark.parametrize("bad", [
    invoice_row(provider_total=Decimal("55")),                      # "matched", totals differ
    invoice_row(provider_currency="EUR"),                           # "matched", currencies differ
    invoice_row(provider_status="paid"),                            # "matched", status differs
    invoice_row(line_differences="il_1: ledger 10.00, provider 15.00"),
    invoice_row(match_status="amount_mismatch", findings=["amount_mismatch"]),  # equal totals
    invoice_row(match_status="line_mismatch", findings=["amount_mismatch", "line_mismatch"]),
    invoice_row(match_status="matched", findings=["status_mismatch"]),
    invoice_row(match_status="no_such_status", findings=["no_such_status"]),
])
def test_an_invoice_table_that_misreports_fails(bad):
    assert not pandera_check(table_checks.InvoiceReconciliation, invoice_frame(bad)).passed


def test_one_row_per_invoice_and_provider():
    twice = invoice_frame(invoice_row(), invoice_row())
    assert not pandera_check(table_checks.InvoiceReconciliation, twice).passed
    orphans = invoice_frame(
        invoice_row(invoice_id=None, match_status="orphan_in_provider",
                    findings=["orphan_in_provider"], ledger_total=None),
        invoice_row(invoice_id=None, match_status="orphan_in_provider",
                    findings=["orphan_in_provider"], ledger_total=None))
    assert pandera_check(table_checks.InvoiceReconciliation, orphans).passed


def test_a_matched_payment_is_for_the_total_due():
    def frame(amount: str) -> pl.DataFrame:
        return pl.DataFrame([{"invoice_id": "inv_1", "provider": "stripe", "kind": "payment",
                              "match_status": "matched", "amount": Decimal(amount),
                              "ledger_amount": Decimal("50")}],
                            schema={"invoice_id": pl.String, "provider": pl.String,
                                    "kind": pl.String, "match_status": pl.String,
                                    "amount": MONEY, "ledger_amount": MONEY})
    assert pandera_check(table_checks.PaymentReconciliation, frame("50")).passed
    assert not pandera_check(table_checks.PaymentReconciliation, frame("20")).passed


def test_aging_buckets_follow_days_past_due():
    def frame(days: int, bucket: str) -> pl.DataFrame:
        return pl.DataFrame([{"invoice_id": "inv_1", "amount_due": Decimal("5"),
                              "aging_bucket": bucket, "days_past_due": days}],
                            schema={"invoice_id": pl.String, "amount_due": MONEY,
                                    "aging_bucket": pl.String, "days_past_due": pl.Int32})
    for days, bucket in ((-3, "0-30"), (30, "0-30"), (31, "31-60"), (90, "61-90"),
                         (91, "90+")):
        assert pandera_check(table_checks.ReceivablesAging, frame(days, bucket)).passed
    assert not pandera_check(table_checks.ReceivablesAging, frame(31, "0-30")).passed


def test_pipeline_health_counts_must_add_up():
    def frame(received: int) -> pl.DataFrame:
        return pl.DataFrame([{"day": "2026-02-01", "received": received, "accepted": 7,
                              "duplicates": 2, "rejected": 1, "conflicts": 1, "late_events": 0,
                              "stuck_invoices": 0, "failed_deliveries": 0,
                              "payment_errors": 0}])
    assert pandera_check(table_checks.PipelineHealth, frame(10)).passed
    assert not pandera_check(table_checks.PipelineHealth, frame(11)).passed


def test_usage_matched_bills_what_was_measured():
    def frame(billed: str) -> pl.DataFrame:
        return pl.DataFrame([{"subscription_id": "sub_1", "meter_key": "m", "period_start":
                              "2026-01-01", "match_status": "matched", "events_accepted": 5,
                              "events_rated": 5, "unbilled_events": 0,
                              "quantity_aggregated": Decimal(5), "quantity_rated": Decimal(5),
                              "quantity_billed": Decimal(billed)}],
                            schema={"subscription_id": pl.String, "meter_key": pl.String,
                                    "period_start": pl.String, "match_status": pl.String,
                                    "events_accepted": pl.Int64, "events_rated": pl.Int64,
                                    "unbilled_events": pl.Int64, "quantity_aggregated": MONEY,
                                    "quantity_rated": MONEY, "quantity_billed": MONEY})
    assert pandera_check(table_checks.UsageReconciliation, frame("5")).passed
    assert not pandera_check(table_checks.UsageReconciliation, frame("4")).passed
    unbilled = frame("5").with_columns(pl.lit(1, pl.Int64).alias("unbilled_events"))
    assert not pandera_check(table_checks.UsageReconciliation, unbilled).passed
