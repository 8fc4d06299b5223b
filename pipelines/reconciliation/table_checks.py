"""Pandera models of the reconciliation and health tables, run as asset checks. They check the
tables are right about what they report (a matched row really matches, counts add up), never
that there are no discrepancies: a discrepancy is data."""

from __future__ import annotations

from typing import Annotated

import pandera.polars as pa
import polars as pl

from pipelines.ingestion.event_count_checks import EventCounts

Money = Annotated[pl.Decimal, 38, 12]

INVOICE_STATUSES = ["matched", "pending_sync", "missing_in_provider", "orphan_in_provider",
                    "duplicate_in_provider", "currency_mismatch", "amount_mismatch",
                    "line_mismatch", "status_mismatch"]
PAYMENT_STATUSES = ["matched", "paid_at_provider_open_in_ledger",
                    "paid_in_ledger_not_at_provider", "amount_paid_mismatch",
                    "refunded_not_flagged", "refund_not_at_provider", "refund_amount_mismatch"]
CREDIT_NOTE_STATUSES = ["matched", "pending_sync", "missing_in_provider", "orphan_in_provider",
                        "duplicate_in_provider", "amount_mismatch", "invoice_mismatch",
                        "status_mismatch"]
USAGE_STATUSES = ["matched", "unbilled_late_events", "awaiting_approval", "awaiting_correction",
                  "correction_rejected", "awaiting_rerating", "quantity_mismatch",
                  "not_invoiced"]
PROVIDERS = ["stripe", "custom_invoicing"]


def _where(condition: pl.Expr, then: pl.Expr) -> pl.Expr:
    """Row passes unless `condition` holds and `then` does not."""
    return (~condition) | then.fill_null(False)


class _DocumentReconciliation(pa.DataFrameModel):
    """What the invoice and credit note reconciliation tables share: `match_status` is the most
    serious of the row's `findings`, `matched` when there are none."""

    @pa.dataframe_check(error="match_status is not the first finding")
    def status_is_first_finding(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.when(pl.col("findings").list.len() == 0)
            .then(pl.col("match_status") == "matched")
            .otherwise(pl.col("findings").list.first() == pl.col("match_status")))


class InvoiceReconciliation(_DocumentReconciliation):
    """finance.invoice_reconciliation."""

    invoice_id: str = pa.Field(nullable=True)
    provider: str = pa.Field(isin=PROVIDERS)
    match_status: str = pa.Field(isin=INVOICE_STATUSES)
    ledger_total: Money = pa.Field(nullable=True)
    provider_total: Money = pa.Field(nullable=True)
    sla_breached: bool
    detail: str

    @pa.dataframe_check(error="a matched invoice differs in total, currency or status")
    def matched_really_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(
            pl.col("match_status") == "matched",
            (pl.col("ledger_total") == pl.col("provider_total"))
            & (pl.col("ledger_currency") == pl.col("provider_currency"))
            & (pl.col("provider_status") == pl.col("expected_provider_status"))
            & pl.col("line_differences").is_null()))

    @pa.dataframe_check(error="an amount_mismatch row has equal totals")
    def amount_mismatch_differs(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(
            pl.col("findings").list.contains("amount_mismatch"),
            pl.col("ledger_total") != pl.col("provider_total")))

    @pa.dataframe_check(error="a ledger invoice appears twice for one provider")
    def one_row_per_invoice_and_provider(cls, data: pa.PolarsData) -> pl.LazyFrame:
        ledger = pl.col("match_status") != "orphan_in_provider"
        return data.lazyframe.select(_where(
            ledger, ~pl.struct("invoice_id", "provider").is_duplicated()))


class CreditNoteReconciliation(_DocumentReconciliation):
    """finance.credit_note_reconciliation: money credited, so its check blocks."""

    credit_note_id: str = pa.Field(nullable=True)
    provider: str = pa.Field(isin=PROVIDERS)
    match_status: str = pa.Field(isin=CREDIT_NOTE_STATUSES)
    ledger_total: Money = pa.Field(nullable=True, gt=0)
    provider_total: Money = pa.Field(nullable=True)
    sla_breached: bool
    detail: str

    @pa.dataframe_check(error="a matched credit note differs in amount, currency, invoice or "
                              "voidedness")
    def matched_really_matches(cls, data: pa.PolarsData) -> pl.LazyFrame:
        voided = pl.col("ledger_status") == "voided"
        provider_voided = pl.col("provider_status").is_in(["void", "voided"])
        return data.lazyframe.select(_where(
            pl.col("match_status") == "matched",
            (pl.col("ledger_total") == pl.col("provider_total"))
            & (pl.col("ledger_currency") == pl.col("provider_currency"))
            & (voided == provider_voided)
            & (pl.col("provider_invoice_id").is_null()
               | (pl.col("provider_invoice_id") == pl.col("invoice_id")))))

    @pa.dataframe_check(error="an amount_mismatch row has the same amount and currency")
    def amount_mismatch_differs(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(
            pl.col("findings").list.contains("amount_mismatch"),
            (pl.col("ledger_total") != pl.col("provider_total"))
            | (pl.col("ledger_currency") != pl.col("provider_currency"))
            | pl.col("provider_total").is_null() | pl.col("provider_currency").is_null()))

    @pa.dataframe_check(error="a ledger credit note appears twice for one provider")
    def one_row_per_credit_note_and_provider(cls, data: pa.PolarsData) -> pl.LazyFrame:
        ledger = pl.col("match_status") != "orphan_in_provider"
        return data.lazyframe.select(_where(
            ledger, ~pl.struct("credit_note_id", "provider").is_duplicated()))


class PaymentReconciliation(pa.DataFrameModel):
    """finance.payment_reconciliation."""

    provider: str = pa.Field(isin=PROVIDERS)
    kind: str = pa.Field(isin=["payment", "refund"])
    match_status: str = pa.Field(isin=PAYMENT_STATUSES)
    amount: Money = pa.Field(nullable=True, ge=0)
    ledger_amount: Money = pa.Field(nullable=True)

    class Config:
        unique = ("invoice_id", "provider", "kind")

    @pa.dataframe_check(error="a matched payment's amount differs from the total due")
    def matched_payment_is_total(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(
            (pl.col("match_status") == "matched") & (pl.col("kind") == "payment"),
            pl.col("amount") == pl.col("ledger_amount")))


class UsageReconciliation(pa.DataFrameModel):
    """finance.usage_reconciliation."""

    subscription_id: str
    meter_key: str
    match_status: str = pa.Field(isin=USAGE_STATUSES)
    events_accepted: int = pa.Field(ge=0)
    events_rated: int = pa.Field(ge=0)
    unbilled_events: int = pa.Field(ge=0)
    quantity_aggregated: Money
    quantity_rated: Money
    quantity_billed: Money = pa.Field(nullable=True)

    class Config:
        unique = ("subscription_id", "meter_key", "period_start")

    @pa.dataframe_check(error="more unbilled events than accepted events")
    def unbilled_within_accepted(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("unbilled_events") <= pl.col("events_accepted"))

    @pa.dataframe_check(error="a matched usage row has unbilled events")
    def matched_has_nothing_unbilled(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(pl.col("match_status") == "matched",
                                            pl.col("unbilled_events") == 0))

    @pa.dataframe_check(error="a matched usage row bills another quantity than measured")
    def matched_bills_measured(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(_where(
            pl.col("match_status") == "matched",
            (pl.col("quantity_aggregated") == pl.col("quantity_rated"))
            & (pl.col("quantity_rated") == pl.col("quantity_billed").fill_null(0))))


class ReceivablesAging(pa.DataFrameModel):
    """finance.receivables_aging."""

    invoice_id: str = pa.Field(unique=True)
    amount_due: Money = pa.Field(gt=0)
    aging_bucket: str = pa.Field(isin=["0-30", "31-60", "61-90", "90+"])
    days_past_due: pl.Int32

    @pa.dataframe_check(error="aging bucket does not match days past due")
    def bucket_matches_days(cls, data: pa.PolarsData) -> pl.LazyFrame:
        days = pl.col("days_past_due")
        expected = (pl.when(days <= 30).then(pl.lit("0-30"))
                    .when(days <= 60).then(pl.lit("31-60"))
                    .when(days <= 90).then(pl.lit("61-90")).otherwise(pl.lit("90+")))
        return data.lazyframe.select(pl.col("aging_bucket") == expected)


class SyncHealth(pa.DataFrameModel):
    """health.sync_health."""

    provider: str
    attempts: int = pa.Field(ge=0)
    rate_limited: int = pa.Field(ge=0)

    class Config:
        unique = ("provider", "day")

    @pa.dataframe_check(error="attempts differ from succeeded + failed + retried")
    def attempts_add_up(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.col("attempts") == pl.col("succeeded") + pl.col("failed") + pl.col("retried"))

    @pa.dataframe_check(error="more rate-limited answers than attempts")
    def rate_limited_within_attempts(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("rate_limited") <= pl.col("attempts"))


class PipelineHealth(EventCounts):
    """health.pipeline_health: each day's event counts add up like each file's do."""

    late_events: int = pa.Field(ge=0)
    stuck_invoices: int = pa.Field(ge=0)
    failed_deliveries: int = pa.Field(ge=0)
    payment_errors: int = pa.Field(ge=0)

    class Config:
        unique = ("day",)
