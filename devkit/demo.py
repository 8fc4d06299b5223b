"""`make demo` (`python -m devkit demo`): a sample month of usage for the example catalog,
ingested, rated, synced and reconciled through Dagster, as a user runs the `billing` commands.

Runs on embedded defaults so it is reproducible: the demo's own data folder (wiped first), a copy
of the example catalog whose notification channels point at the demo's local receivers, and a
pinned "now" (`BILLING_NOW`, early in the month after the sample month) moved forward by hand
between sync runs. Nothing leaves 127.0.0.1: the local Stripe (`python -m devkit stripe-emulator`)
stands in for Stripe, a local ERP for Umbrella's custom invoicing integration, and a local finance
receiver for the finance channel; the integration API runs as its own process (`billing api`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from devkit.cli import main as devkit
from pipelines import settings
from pipelines.cli import main as billing
from pipelines.cli.output import print_table

if TYPE_CHECKING:
    from devkit.local_erp import LocalErp

DEMO_MONTH = "2026-10"
INVOICE_MONTH = "2026-11"
DEMO_NOW = "2026-11-02T06:00:00Z"


STRIPE_TEST_KEY = "sk_test_billing_pipeline_demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret (`whsec_` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def write_demo_catalog(source: Path, target: Path, *, finance_url: str, erp_url: str) -> None:
    """The example catalog, its channels pointed at this demo's receivers."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    customers = target / "customers.yaml"
    text = customers.read_text()
    for old, new in (("http://127.0.0.1:8790/hooks/billing", finance_url),
                     ("http://127.0.0.1:8791/hooks/billing", erp_url)):
        if old not in text:
            raise SystemExit(f"demo: the example catalog no longer has the channel {old}")
        text = text.replace(old, new)
    customers.write_text(text)


@contextlib.contextmanager
def running_integration_api(log: Path) -> Iterator[str]:
    """`billing api` in its own process (as in production), until the demo ends."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "api", "--port",
                                    str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"demo: billing api exited:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"demo: billing api did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def create_erp_token() -> str:
    """`billing token create`, as a user runs it; the token is the last line it prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        billing(["token", "create", "--name", "umbrella-erp", "--scope", "invoices:sync",
                 "--scope", "payments:write"])
    lines = out.getvalue().strip().splitlines()
    print("\n".join(lines[:-1]))
    print(f"{lines[-1][:12]}... (kept by the local ERP)")
    return lines[-1]


def advance_now(minutes: int) -> str:
    """Move the pinned "now" forward, as time passes between scheduled sync runs."""
    now = settings.now() + timedelta(minutes=minutes)
    os.environ["BILLING_NOW"] = now.isoformat()
    return now.isoformat()


def run_demo() -> None:
    """Steps 1-5 (sample data, ingestion, rating, rejects, usage), then the stand-ins' steps."""
    os.environ.setdefault("BILLING_NOW", DEMO_NOW)
    os.environ.setdefault("BILLING_WAREHOUSE", "data/demo/warehouse.duckdb")
    os.environ.setdefault("BILLING_LANDING", "data/demo/landing")
    warehouse = Path(settings.warehouse_path())
    landing = Path(settings.landing_path())
    os.environ["BILLING_API_STORE"] = str(warehouse.parent / "api_store.sqlite")
    api_store = Path(os.environ["BILLING_API_STORE"])
    for stale in (landing, warehouse, warehouse.with_suffix(".writer.lock"),
                  warehouse.with_suffix(".duckdb.wal"), api_store,
                  api_store.with_name(api_store.name + "-wal"),
                  api_store.with_name(api_store.name + "-shm")):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    landing.mkdir(parents=True)

    print(f"== 1. a sample month ({DEMO_MONTH}) of usage events for the example catalog")
    devkit(["generate-events", "--month", DEMO_MONTH, "--events", "20000", "--seed", "7",
            "--format", "jsonl"])
    devkit(["generate-events", "--month", DEMO_MONTH, "--events", "5000", "--seed", "8",
            "--format", "parquet"])
    devkit(["generate-events", "--month", DEMO_MONTH, "--events", "1000", "--seed", "9",
            "--format", "csv"])
    first = sorted(landing.glob("*.jsonl"))[0]
    shutil.copy(first, landing / f"relanded_{first.name}")
    print(f"(and the JSON Lines file landed a second time as relanded_{first.name})")

    print("\n== 2. ingestion through the Dagster job the landing-zone sensor launches")
    billing(["ingest"])

    print(f"\n== 3. rating: the month's usage is invoiced at the cycle boundaries after it "
          f"(billing months {DEMO_MONTH} and {INVOICE_MONTH}), now = {os.environ['BILLING_NOW']}")
    billing(["run", "--month", DEMO_MONTH, "--to", INVOICE_MONTH, "--details"])
    print("(stripe and custom_invoicing drafts wait for their provider sync; profile 'manual' "
          "(app none) is issued once its grace period is over)")

    print("\n== 4. what was rejected, with its reason (first of each)")
    billing(["sql", """
        SELECT reason, count(*) AS lines, any_value(detail) AS example
        FROM raw.rejected_events GROUP BY reason ORDER BY lines DESC, reason"""])

    print("\n== 5. accepted usage by event name")
    billing(["sql", """
        SELECT event_name, count(*) AS events, count(DISTINCT customer_id) AS customers,
               min("timestamp") AS first, max("timestamp") AS last
        FROM raw.events GROUP BY event_name ORDER BY events DESC"""])

    run_with_local_stand_ins(warehouse)

    env = f"BILLING_WAREHOUSE={warehouse}"
    duckdb_cmd = (f"import duckdb; print(duckdb.connect('{warehouse}', read_only=True)"
                  ".sql('FROM raw.ingestion_log'))")
    print(f"""
== How to look
  Query the warehouse (read-only):
    {env} .venv/bin/billing sql "SELECT * FROM raw.ingestion_log"
    {env} .venv/bin/billing sql "SELECT reason, detail, raw FROM raw.rejected_events LIMIT 5"
  Or with DuckDB from Python:
    .venv/bin/python -c "{duckdb_cmd}"
  The Dagster UI, with this demo's runs kept (DAGSTER_HOME=.dagster_home):
    make dev      # then open http://127.0.0.1:3000""")


def run_with_local_stand_ins(warehouse: Path) -> None:
    """Steps 6-9: the sync job against local stand-ins of Stripe, Umbrella's ERP and finance."""
    from devkit.booking_system import FINANCE_PATH, BookingSystem
    from devkit.local_erp import LocalErp
    from devkit.stripe_emulator import StripeEmulator

    erp_secret, finance_secret = new_webhook_secret(), new_webhook_secret()
    os.environ["ERP_WEBHOOK_SECRET"] = erp_secret
    os.environ["FINANCE_WEBHOOK_SECRET"] = finance_secret
    os.environ["STRIPE_API_KEY"] = STRIPE_TEST_KEY
    demo_folder = warehouse.parent
    with contextlib.ExitStack() as stack:
        emulator = stack.enter_context(StripeEmulator(api_keys=[STRIPE_TEST_KEY]))
        os.environ["STRIPE_API_BASE"] = emulator.base_url
        finance = stack.enter_context(BookingSystem(booking_secret=new_webhook_secret(),
                                                    finance_secret=finance_secret))
        api_url = stack.enter_context(running_integration_api(demo_folder / "api.log"))
        print(f"\n== 6. local stand-ins on 127.0.0.1: Stripe at {emulator.base_url} "
              f"(STRIPE_API_BASE, key {STRIPE_TEST_KEY}), the integration API at {api_url} "
              "(`billing api`), Umbrella's ERP and a finance receiver; signing secrets "
              "generated into ERP_WEBHOOK_SECRET and FINANCE_WEBHOOK_SECRET")
        token = create_erp_token()
        erp = LocalErp(api_url, token, erp_secret)
        erp_url = erp.start()
        stack.callback(erp.stop)
        write_demo_catalog(Path(settings.catalog_path()), demo_folder / "catalog",
                     finance_url=finance.url(FINANCE_PATH), erp_url=erp_url)
        os.environ["BILLING_CATALOG"] = str(demo_folder / "catalog")

        print(f"\n== 7. `billing sync` at {os.environ['BILLING_NOW']}: Stripe invoices issued "
              "exactly once; Umbrella's draft waits in draft.syncing, its ERP is asked")
        billing(["sync"])
        erp.wait_idle()
        for step in ("the ERP's draft/synchronized applied, the issuing hook asks it to issue",
                     "the ERP's issuing/synchronized applied: number and payment reference"):
            print(f"\n== `billing sync` at {advance_now(15)}: {step}")
            billing(["sync"])
            erp.wait_idle()

        umbrella = first_invoice_of(warehouse, "umbrella_004")
        stripe_invoice = stripe_invoice_awaiting_payment(warehouse)
        print(f"\n== 8. payments: Umbrella's ERP reports {umbrella} paid through the API; "
              f"a Stripe customer pays {stripe_invoice[1]} at Stripe")
        erp.report_payment(umbrella, "paid")
        emulator.invoice_action(stripe_invoice[0], "pay")
        print(f"== `billing sync` at {advance_now(60)}")
        billing(["sync"])

        print("\n== 9. Umbrella's invoice through the custom invoicing hooks")
        billing(["sql", f"""
            SELECT from_status, to_status, changed_at, actor, cause
            FROM billing.invoice_status_history WHERE invoice_id = '{umbrella}'
            ORDER BY changed_at, CASE to_status WHEN 'issued' THEN 0 ELSE 1 END"""])
        billing(["sql", f"""
            SELECT object_type, internal_id, external_id FROM sync.external_ids
            WHERE provider = 'custom_invoicing' AND (internal_id = '{umbrella}' OR internal_id
                IN (SELECT line_id FROM billing.invoice_lines WHERE invoice_id = '{umbrella}'))
            ORDER BY object_type, internal_id"""])
        print(f"ERP received: {[m['type'] for m in erp.received]}; ERP errors: {erp.errors}")
        stats = emulator.stats()
        print(f"local Stripe: {len(local_stripe_invoices(emulator.base_url))} invoices, "
              f"{stats.get('requests_total')} requests; finance receiver got "
              f"{[e.get('type') for e in finance.events[FINANCE_PATH]]}")

        print("\n== 10. reconciliation: Umbrella's ERP sends its invoice statement; "
              "`billing reconcile` compares the ledger with Stripe and the ERP")
        erp.send_statement(os.environ["BILLING_NOW"])
        print(f"== `billing reconcile` at {advance_now(5)}")
        billing(["reconcile"])
        announced = [(e["type"], e["data"]["alert"]["key"]) for e in finance.events[FINANCE_PATH]
                     if str(e.get("type", "")).startswith("alert.")]
        print(f"finance receiver got the alerts: {announced}")
        correct_issued_invoices(warehouse, Path(settings.landing_path()),
                                demo_folder / "catalog", erp)
        erp.send_statement(os.environ["BILLING_NOW"])
        print(f"== `billing reconcile` at {advance_now(5)}: the credit notes at Stripe and the "
              "ERP against the ledger")
        billing(["reconcile"])
        billing(["sql", """
            SELECT provider, match_status, count(*) AS credit_notes,
                   CAST(sum(ledger_total) AS DECIMAL(18, 2)) AS credited
            FROM finance.credit_note_reconciliation GROUP BY ALL ORDER BY ALL"""])
        month = latest_billing_month(warehouse)
        show_trial_balance(warehouse, month)
        print(f"\n== `billing report --month {month}`: one HTML page finance opens from disk "
              "(with its corrections, journal and tax sections)")
        billing(["report", "--month", month, "--out", str(demo_folder / "reports" / month)])


def correct_issued_invoices(warehouse: Path, landing: Path, catalog: Path,
                            erp: LocalErp) -> None:
    """Step 11: after issue, a late file of October usage lands and the storage price is fixed
    in the catalog; the billing run proposes corrections, finance approves them, and the sync
    takes the credit notes and supplementary invoices to Stripe and Umbrella's ERP."""
    late = landing / f"late_{DEMO_MONTH}.jsonl"
    late.write_text("".join(
        json.dumps({"event_id": f"late_{i:04d}", "event_name": "api.request",
                    "customer_id": "acme_corp_001", "source": "gateway-late",
                    "timestamp": f"{DEMO_MONTH}-30T{i % 24:02d}:15:00Z",
                    "properties": {"endpoint": "/v1/reports"}}) + "\n" for i in range(2500)))
    plans = catalog / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        'unit_price: "0.25", included_units: "10"', 'unit_price: "0.20", included_units: "10"', 1))
    print(f"\n== 11. corrections after issue: {late.name} (2,500 of Acme's October API calls, "
          "late) lands after its invoice was issued, and the professional plan's storage price "
          "is fixed in the catalog (0.25 -> 0.20 per GB)")
    billing(["ingest"])
    print(f"== `billing run --month {INVOICE_MONTH}` at {advance_now(5)}: issued invoices stay "
          "as they are; each changed line becomes a correction waiting for approval")
    billing(["run", "--month", INVOICE_MONTH])
    billing(["corrections", "list"])
    for correction_id in pending_corrections(warehouse):
        billing(["corrections", "approve", correction_id, "--actor", "finance:demo"])
    print(f"== after the grace periods, `billing run` and `billing sync` at {advance_now(125)}: "
          "documents issued, credit notes and supplementary invoices taken to Stripe and the "
          "ERP exactly once")
    billing(["run", "--month", INVOICE_MONTH])
    billing(["sync"])
    erp.wait_idle()
    for _ in range(2):
        print(f"== `billing sync` at {advance_now(15)}: the ERP's answers to the credit note hooks")
        billing(["sync"])
        erp.wait_idle()
    billing(["sql", """
        SELECT n.credit_note_number, i.invoice_number AS credits, n.customer_id, n.app,
               n.status, CAST(n.total AS DECIMAL(18, 2)) AS credited, n.currency,
               n.external_credit_note_number AS at_provider
        FROM billing.credit_notes n JOIN billing.invoices i USING (invoice_id)
        ORDER BY n.credit_note_number NULLS LAST"""])
    billing(["sql", """
        SELECT s.invoice_number, o.invoice_number AS corrects, s.customer_id, s.status,
               CAST(s.total AS DECIMAL(18, 2)) AS total, s.currency
        FROM billing.invoices s JOIN billing.invoices o ON o.invoice_id = s.corrects_invoice_id
        ORDER BY s.invoice_number NULLS LAST"""])


def show_trial_balance(warehouse: Path, month: str) -> None:
    """Step 12: the journal `billing reconcile` posted, per account and currency for `month`,
    and its trial balance: per currency the month's debits equal its credits and the balances
    sum to zero. The demo fails here, loudly, if they do not."""
    from pipelines.reporting.formatting import format_money
    from pipelines.reporting.report_data import journal_by_account, trial_balance
    from pipelines.warehouse import connect_reader

    with connect_reader(str(warehouse)) as con:
        accounts = journal_by_account(con, month)
    print(f"\n== 12. the journal of {month} per account (`billing export journal --month "
          f"{month}` writes its lines) and the trial balance per currency")
    totals = trial_balance(accounts)
    rows: list[list[str]] = []
    for total in totals:
        currency = total["currency"]
        rows += [[currency, r["account"], *(format_money(r[c], currency) for c in
                                           ("debits", "credits", "net", "balance")), ""]
                 for r in accounts if r["currency"] == currency]
        rows.append([currency, "trial balance", *(format_money(total[c], currency) for c in
                                                  ("debits", "credits", "net", "balance")),
                     "balanced" if total["balanced"] else "DOES NOT BALANCE"])
    print_table(("currency", "account", "debits", "credits", "net", "balance", ""), rows)
    if not accounts:
        raise SystemExit(f"demo: the journal has no entries up to {month}")
    broken = [t["currency"] for t in totals if not t["balanced"]]
    if broken:
        raise SystemExit(f"demo: the trial balance of {month} does not sum to zero in "
                         f"{', '.join(broken)}")


def pending_corrections(warehouse: Path) -> list[str]:
    from pipelines.warehouse import connect_reader

    with connect_reader(str(warehouse)) as con:
        return [row[0] for row in con.execute("""
            SELECT correction_id FROM billing.corrections WHERE status = 'pending_approval'
            ORDER BY detected_at, invoice_id, line_id""").fetchall()]


def first_invoice_of(warehouse: Path, customer: str) -> str:
    from pipelines.warehouse import connect_reader

    with connect_reader(str(warehouse)) as con:
        return str(con.execute("SELECT invoice_id FROM billing.invoices WHERE customer_id = $c "
                               "ORDER BY boundary LIMIT 1", {"c": customer}).fetchall()[0][0])


def latest_billing_month(warehouse: Path) -> str:
    from pipelines.warehouse import connect_reader

    with connect_reader(str(warehouse)) as con:
        return str(con.execute("SELECT max(billing_month) FROM billing.invoices").fetchall()[0][0])


def stripe_invoice_awaiting_payment(warehouse: Path) -> tuple[str, str]:
    """A Stripe invoice awaiting payment: (Stripe id, our invoice id)."""
    from pipelines.warehouse import connect_reader

    with connect_reader(str(warehouse)) as con:
        row = con.execute("""
            SELECT x.external_id, i.invoice_id FROM billing.invoices i
            JOIN sync.external_ids x ON x.provider = 'stripe' AND x.object_type = 'invoice'
             AND x.internal_id = i.invoice_id
            WHERE i.status = 'payment_processing.pending'
            ORDER BY i.invoice_id LIMIT 1""").fetchall()
    if not row:
        raise SystemExit("demo: no Stripe invoice awaits payment")
    return str(row[0][0]), str(row[0][1])


def local_stripe_invoices(base_url: str) -> list[object]:
    """Every invoice the local Stripe holds, read with the stripe SDK."""
    import stripe

    client = stripe.StripeClient(STRIPE_TEST_KEY, base_addresses={"api": base_url})
    return list(client.v1.invoices.list(params={"limit": 100}).auto_paging_iter())


if __name__ == "__main__":
    run_demo()
