"""`billing`: the commands users run. Each pipeline command launches the same Dagster job that
schedules and sensors launch, in this process, and prints what it did."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import dagster as dg

from pipelines import settings
from pipelines.api import commands as api_commands
from pipelines.notifications import commands as notification_commands
from pipelines.warehouse import connect_reader


def _instance() -> dg.DagsterInstance:
    """The persistent instance when DAGSTER_HOME is set (runs are kept), else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_job(job_name: str, run_config: dict[str, Any] | None = None, *,
            partition_key: str | None = None,
            tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    """Execute a job of the code location in process; a failed run exits non-zero."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    with _instance() as instance:
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = job.execute_in_process(run_config={**quiet, **(run_config or {})},
                                        instance=instance, raise_on_error=False,
                                        partition_key=partition_key, tags=tags)
    if not result.success:
        for event in result.all_events:
            if event.is_failure and event.step_key:
                failure = event.event_specific_data
                error = getattr(failure, "error", None)
                message = error.message.strip() if error else str(event.message)
                print(f"error in {event.step_key}: {message}", file=sys.stderr)
        raise SystemExit(1)
    return result


def print_ingestion_summary(result: dg.ExecuteInProcessResult) -> None:
    """The files a run ingested and the warehouse's totals, as a small table."""
    run_id = result.run_id
    materialized = {e.asset_key: e.materialization.metadata
                    for e in result.get_asset_materialization_events() if e.asset_key}
    raw_meta = materialized.get(dg.AssetKey(["raw", "events"]), {})
    skipped = raw_meta.get("files_skipped")
    with connect_reader(settings.warehouse_path()) as con:
        files = con.execute("""
            SELECT path, received, accepted, duplicates, rejected, conflicts
            FROM raw.ingestion_log WHERE run_id = $run_id ORDER BY path""",
            {"run_id": run_id}).fetchall()
        reasons = con.execute("""
            SELECT reason, count(*) FROM raw.rejected_events r
            JOIN raw.ingestion_log l USING (file_id)
            WHERE l.run_id = $run_id AND r.origin = 'file'
            GROUP BY reason ORDER BY count(*) DESC, reason""", {"run_id": run_id}).fetchall()
        reprocessed = con.execute("""
            SELECT candidates, accepted, duplicates, conflicts, still_rejected
            FROM raw.reprocessing_log WHERE run_id = $run_id""", {"run_id": run_id}).fetchall()
        totals = con.execute("""
            SELECT (SELECT count(*) FROM raw.events),
                   (SELECT count(*) FROM raw.rejected_events WHERE resolved_at IS NULL),
                   (SELECT count(*) FROM raw.ingestion_log)""").fetchall()[0]
    if not files:
        print("no new files to ingest")
    else:
        rows = [(os.path.basename(path), *counts) for path, *counts in files]
        rows.append(("total", *(sum(f[i] for f in files) for i in range(1, 6))))
        print_table(("file", "received", "accepted", "duplicates", "rejected", "conflicts"),
                    rows)
    if skipped is not None and skipped.value:
        print(f"{skipped.value} file(s) skipped: the same content was ingested before")
    if reasons:
        print("rejected by reason: " + ", ".join(f"{r} {n}" for r, n in reasons))
    for candidates, accepted, duplicates, conflicts, still in reprocessed:
        if candidates:
            print(f"re-processed {candidates} unknown-customer events: accepted {accepted}, "
                  f"duplicates {duplicates}, conflicts {conflicts}, still rejected {still}")
    print(f"warehouse {settings.warehouse_path()}: {totals[0]} events, {totals[1]} open "
          f"rejections, {totals[2]} files ingested")


def cmd_ingest(args: argparse.Namespace) -> None:
    from pipelines.jobs import INGEST_JOB

    config = {"files": args.files or None, "reprocess_rejected": not args.no_reprocess}
    result = run_job(INGEST_JOB, {"ops": {"raw__events": {"config": config}}})
    print_ingestion_summary(result)


def cmd_reprocess(args: argparse.Namespace) -> None:
    from pipelines.jobs import INGEST_JOB

    config = {"files": [], "reprocess_rejected": True}
    result = run_job(INGEST_JOB, {"ops": {"raw__events": {"config": config}}})
    print_ingestion_summary(result)


def cmd_generate_events(args: argparse.Namespace) -> None:
    from devkit.sample_data import generate_events, write_csv, write_jsonl, write_parquet
    from pipelines.catalog import load_catalog

    catalog = load_catalog(args.catalog or settings.catalog_path())
    sample = generate_events(catalog, customers=args.customers, events=args.events,
                             month=args.month, seed=args.seed)
    out_dir = args.out or settings.landing_path()
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"events_{args.month}_seed{args.seed}.{args.format}")
    if args.format in ("jsonl", "jsonl.gz"):
        written = write_jsonl(sample, path, gzip=args.format == "jsonl.gz")
    elif args.format == "csv":
        written = write_csv(sample, path)
    else:
        written = write_parquet(sample, path)
    rejected = ", ".join(f"{reason} {n}" for reason, n in sorted(written.rejected.items()))
    print(f"wrote {path}: {written.lines} lines for {sample.summary.customers} customers "
          f"(by design: {written.accepted} valid events, {written.duplicates} duplicates, "
          f"rejects: {rejected or 'none'})")


def months_between(first: str, last: str) -> list[str]:
    """Every 'YYYY-MM' from first to last, inclusive."""
    year, month = (int(p) for p in first.split("-"))
    end = tuple(int(p) for p in last.split("-"))
    months = []
    while (year, month) <= end:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    if not months:
        raise SystemExit(f"--to {last} is before --month {first}")
    return months


def cmd_run(args: argparse.Namespace) -> None:
    from assets.billing import NOW_TAG
    from pipelines.invoicing.month import month_bounds
    from pipelines.jobs import BILLING_JOB

    now = settings.now()
    try:
        for month in (args.month, args.to or args.month):
            month_bounds(month)
    except ValueError as exc:
        raise SystemExit(f"billing run: {exc}") from None
    for month in months_between(args.month, args.to or args.month):
        result = run_job(BILLING_JOB, partition_key=f"{month}-01",
                         tags={NOW_TAG: now.isoformat()})
        print_invoice_summary(month, result)


def print_invoice_summary(month: str, result: dg.ExecuteInProcessResult) -> None:
    """What the run did to the month, and the month's invoices by status and currency."""
    from pipelines.rating.money import quantum

    meta = next((e.materialization.metadata for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey(["billing", "invoices"])), {})
    done = {k: v.value for k, v in meta.items()}
    print(f"{month}: rated {done.get('invoices_rated', 0)} invoice(s): "
          f"{done.get('drafts_written', 0)} draft(s) written, "
          f"{done.get('left_draft', 0)} left draft (grace period over), "
          f"{done.get('issued_untouched', 0)} already issued left unchanged "
          f"({done.get('new_differences', 0)} new difference(s) recorded), "
          f"{done.get('drafts_discarded', 0)} stale draft(s) discarded")
    with connect_reader(settings.warehouse_path()) as con:
        relation = con.sql("""
            SELECT i.invoice_number, i.customer_id, i.plan_key AS plan,
                   CAST(i.boundary AS VARCHAR) AS boundary, i.status, i.currency,
                   i.subtotal, i.discount_total AS discounts, i.total,
                   count(l.line_id) AS lines
            FROM billing.invoices i LEFT JOIN billing.invoice_lines l USING (invoice_id)
            WHERE i.billing_month = $month
            GROUP BY ALL ORDER BY boundary, customer_id""", params={"month": month})
        columns, rows = relation.columns, relation.fetchall()
    money = [columns.index(c) for c in ("subtotal", "discounts", "total")]
    currency = columns.index("currency")
    shown = [[value.quantize(quantum(row[currency])) if i in money else value
              for i, value in enumerate(row)] for row in rows]
    if shown:
        print_table(columns, shown)


def cmd_sync(args: argparse.Namespace) -> None:
    from assets.billing import NOW_TAG
    from pipelines.jobs import SYNC_JOB

    result = run_job(SYNC_JOB, tags={NOW_TAG: settings.now().isoformat()})
    print_sync_summary(result)


def print_steps(result: dg.ExecuteInProcessResult) -> None:
    """What each step of a run did, from its materialization's metadata."""
    for materialization in result.get_asset_materialization_events():
        meta = materialization.materialization.metadata
        counts = ", ".join(f"{key.replace('_', ' ')} {value.value}" for key, value in meta.items()
                           if isinstance(value.value, int | float | str)
                           and not isinstance(value.value, bool))
        key = materialization.asset_key.to_user_string() if materialization.asset_key else "?"
        print(f"{key}: {counts or 'done'}")


def print_open_alerts() -> None:
    """The open alerts, most severe first (at most 20 shown)."""
    with connect_reader(settings.warehouse_path()) as con:
        alerts = con.execute("""
            SELECT severity, alert_key, detail FROM health.alerts
            ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                     alert_key""").fetchall()
    print(f"{len(alerts)} open alert(s)")
    for severity, key, detail in alerts[:20]:
        print(f"  {severity}: {key}: {detail}")


def print_sync_summary(result: dg.ExecuteInProcessResult) -> None:
    """What each step of the sync did, then invoices by provider app and status, and the open
    alerts."""
    print_steps(result)
    with connect_reader(settings.warehouse_path()) as con:
        statuses = con.execute("""
            SELECT app, status, count(*) FROM billing.invoices
            WHERE app <> 'none' AND status <> 'discarded'
            GROUP BY ALL ORDER BY app, status""").fetchall()
    if statuses:
        print_table(("app", "status", "invoices"), statuses)
    print_open_alerts()


def cmd_reconcile(args: argparse.Namespace) -> None:
    from assets.billing import NOW_TAG
    from pipelines.jobs import RECONCILE_JOB

    result = run_job(RECONCILE_JOB, tags={NOW_TAG: settings.now().isoformat()})
    if args.verbose:
        print_steps(result)
    print_reconciliation_summary()


def print_reconciliation_summary() -> None:
    """Rows by match status for each reconciliation table, then the open alerts."""
    from pipelines.rating.money import quantum

    with connect_reader(settings.warehouse_path()) as con:
        rows = con.execute("""
            SELECT 'invoices' AS "table", provider, match_status, count(*) AS "rows",
                   count(*) FILTER (WHERE sla_breached) AS past_sla
            FROM finance.invoice_reconciliation GROUP BY ALL
            UNION ALL
            SELECT 'payments', provider, match_status, count(*), NULL
            FROM finance.payment_reconciliation GROUP BY ALL
            UNION ALL
            SELECT 'usage', NULL, match_status, count(*), NULL
            FROM finance.usage_reconciliation GROUP BY ALL
            ORDER BY 1, 2 NULLS FIRST, match_status = 'matched' DESC, 3""").fetchall()
        aging = con.execute("""
            SELECT aging_bucket, currency, count(*), sum(amount_due)
            FROM finance.receivables_aging GROUP BY ALL ORDER BY 1, 2""").fetchall()
    if rows:
        print_table(("table", "provider", "match status", "rows", "past SLA"), rows)
    else:
        print("nothing to reconcile yet")
    if aging:
        print("open receivables:")
        print_table(("days past due", "currency", "invoices", "amount due"),
                    [(bucket, currency, n, amount.quantize(quantum(currency)))
                     for bucket, currency, n, amount in aging])
    print_open_alerts()


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Rows as an aligned text table (numbers right-aligned)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None or
                   type(row[i]).__name__ == "Decimal" for row in rows) and rows
               for i in range(len(columns))]

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    print(fmt(list(columns)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(fmt(row))


def cmd_sql(args: argparse.Namespace) -> None:
    with connect_reader(settings.warehouse_path()) as con:
        relation = con.sql(args.query)
        columns = relation.columns
        rows = relation.fetchall()
    print_table(columns, rows)


def cmd_report(args: argparse.Namespace) -> None:
    """The month's finance report (HTML page) and the finance table exports, read-only."""
    from pipelines.reporting import build_report, parse_month

    try:
        parse_month(args.month)
    except ValueError as exc:
        raise SystemExit(f"billing report: {exc}") from None
    written = build_report(args.month, args.out)
    print(f"wrote {written.page}")
    for path in written.exports:
        print(f"wrote {path}")
    for table in written.skipped:
        print(f"skipped {table}: not in the warehouse yet (the reconciliation has not run)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest the files now in the landing zone")
    ingest.add_argument("files", nargs="*", help="only these files (default: the landing zone)")
    ingest.add_argument("--no-reprocess", action="store_true",
                        help="do not re-try rejected unknown-customer events")
    ingest.set_defaults(func=cmd_ingest)

    reprocess = commands.add_parser(
        "reprocess-rejected", help="re-try rejected unknown-customer events whose customer exists")
    reprocess.set_defaults(func=cmd_reprocess)

    generate = commands.add_parser("generate-events",
                                   help="write a realistic sample month of events")
    generate.add_argument("--customers", type=int, default=None,
                          help="use at most this many catalog customers")
    generate.add_argument("--events", type=int, default=10_000)
    generate.add_argument("--month", required=True, help="YYYY-MM")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--format", choices=("jsonl", "jsonl.gz", "csv", "parquet"),
                          default="jsonl")
    generate.add_argument("--out", help="folder (default: the landing zone)")
    generate.add_argument("--catalog", help="catalog folder (default: BILLING_CATALOG)")
    generate.set_defaults(func=cmd_generate_events)

    run = commands.add_parser("run", help="rate a billing month (or a range) and issue what is due")
    run.add_argument("--month", required=True, help="YYYY-MM (the UTC month of the cut)")
    run.add_argument("--to", help="last month of a backfill range, YYYY-MM")
    run.set_defaults(func=cmd_run)

    query = commands.add_parser("sql", help="run a read-only SQL query on the warehouse")
    query.add_argument("query")
    query.set_defaults(func=cmd_sql)

    sync = commands.add_parser(
        "sync", help="apply the API inbox, sync invoices with Stripe and the custom invoicing "
                     "hooks, pull provider events, deliver due notifications (once)")
    sync.set_defaults(func=cmd_sync)

    reconcile = commands.add_parser(
        "reconcile", help="refresh provider snapshots, rebuild the reconciliation and health "
                          "tables and alerts (once), and print a summary by match status")
    reconcile.add_argument("--verbose", action="store_true", help="also print each step's counts")
    reconcile.set_defaults(func=cmd_reconcile)

    report = commands.add_parser(
        "report", help="write the month's finance report (one HTML page) and CSV/Parquet exports")
    report.add_argument("--month", required=True, help="YYYY-MM (the billing month)")
    report.add_argument("--out", help="folder (default: reports/YYYY-MM under the current one)")
    report.set_defaults(func=cmd_report)

    for register in (api_commands.register, notification_commands.register):
        register(commands)

    commands.add_parser(
        "stripe-emulator",
        help="run the local Stripe-compatible server (--port N, fault knobs; --help for all)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stripe-emulator"]:
        # its options (port, fault knobs) belong to the emulator's own parser
        from devkit.stripe_emulator.__main__ import main as emulator_main

        emulator_main(argv[1:])
        return
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
