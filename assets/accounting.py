"""Accounting stage: the journal the accounting system posts and revenue recognition
(contract section 10, docs/accounting.md).

`finance/journal` appends to finance.journal_entries / finance.journal_lines what the ledger's
facts call for (issued invoices and credit notes, voids, payments, refunds, write-offs, the
months of deferred revenue that are over) and rebuilds finance.revenue_schedule, in one
transaction. It runs in `reconcile_run` (hourly), after the providers' snapshots are refreshed,
so a payment or refund recorded by a billing or sync run is posted within the hour. Its three
checks state money and are blocking.
"""

import dagster as dg

from pipelines.accounting import checks
from pipelines.accounting.journal import post_journal
from pipelines.accounting.tax_report import TaxReport, build_tax_report, tax_report_audit
from pipelines.asset_checks import asset_check_result
from pipelines.checks import pandera_check
from pipelines.resources import WAREHOUSE_POOL, WarehouseResource
from pipelines.run_context import run_now

GROUP = "accounting"


@dg.asset(
    key=["finance", "journal"],
    group_name=GROUP,
    deps=[dg.AssetKey(["billing", "invoices"]), dg.AssetKey(["sync", "stripe_invoice_snapshot"]),
          dg.AssetKey(["sync", "api_inbox"])],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="The double-entry journal (finance.journal_entries, finance.journal_lines: "
                "append-only, deterministic ids, a change is a reversal plus a new entry) and "
                "the revenue schedule (finance.revenue_schedule: each line by month, in-advance "
                "fees ratably by day).",
)
def journal(context: dg.AssetExecutionContext,
            warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.writer() as con:
        counts = post_journal(con, now=run_now(context), run_id=context.run_id)
    context.log.info(f"finance.journal: {counts}")
    return dg.MaterializeResult(metadata={f"posted_{k}": v for k, v in counts.items()})


@dg.asset_check(asset=journal, name="journal_entries_balance", blocking=True,
                pool=WAREHOUSE_POOL,
                description="Every journal entry's debits equal its credits, per currency; each "
                            "line is a debit or a credit, never negative.")
def journal_entries_balance(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = checks.entry_balances(con)
    return asset_check_result(pandera_check(checks.EntryBalances, frame))


@dg.asset_check(asset=journal, name="receivable_matches_open_documents", blocking=True,
                pool=WAREHOUSE_POOL,
                description="The receivable account per customer and currency equals the "
                            "open documents: issued, unpaid totals net of credit notes, less "
                            "what was paid, plus what was refunded.")
def receivable_matches_open_documents(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = checks.receivable_by_customer(con)
    return asset_check_result(pandera_check(checks.ReceivableByCustomer, frame))


@dg.asset_check(asset=journal, name="revenue_schedule_sums_to_lines", blocking=True,
                pool=WAREHOUSE_POOL,
                description="Each line's revenue schedule sums to the line's amount exactly.")
def revenue_schedule_sums_to_lines(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = checks.schedule_sums(con)
    return asset_check_result(pandera_check(checks.ScheduleSums, frame))


# Tax by period x jurisdiction x rate (docs/tax.md); added by the tax work (HD).
@dg.asset(
    key=["finance", "tax_report"],
    group_name=GROUP,
    deps=[dg.AssetKey(["billing", "invoices"])],
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    description="Tax per period (UTC month of issue) x jurisdiction (country, region) x rate x "
                "currency: taxable amount (net of tax) and tax, from issued invoices less issued "
                "credit notes; a void takes back in its own month. The lines behind each row "
                "are in finance.tax_report_lines.",
)
def tax_report(context: dg.AssetExecutionContext,
               warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.writer() as con:
        counts = build_tax_report(con, now=run_now(context))
    context.log.info(f"finance.tax_report: {counts}")
    return dg.MaterializeResult(metadata={"rows": sum(counts.values()),
                                          **{f"rows_{k}": v for k, v in counts.items()}})


@dg.asset_check(asset=tax_report, name="tax_report_recomputes_from_rates", blocking=True,
                pool=WAREHOUSE_POOL,
                description="Each row's tax equals its lines' amounts taxed again at their rate "
                            "(rounded once per line, half away from zero) and summed; its "
                            "taxable amount equals the lines net of inclusive tax; one row per "
                            "period, jurisdiction, rate and currency.")
def tax_report_recomputes_from_rates(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.reader() as con:
        frame = tax_report_audit(con)
    return asset_check_result(pandera_check(TaxReport, frame))
