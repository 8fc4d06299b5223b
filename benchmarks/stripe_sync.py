"""Stripe sync benchmark (issue 4): 2,000 invoices of 5 lines issued at the local Stripe
emulator, which limits the account to 100 requests/s like live Stripe; the client-side limiter is
set to the same 100/s.

The invoices come from the real billing run (2,000 customers on the business_eu plan since
December, each with a 10% discount: platform fee, three usage prices and the discount line).
The emulator runs in its own process (as Stripe would), the sync through the production Dagster
job `sync_run`.
Prints invoices/s, the share of the rate limit used (target >= 80%), API calls per invoice and
duplicates at Stripe (must be 0).

    .venv/bin/python benchmarks/stripe_sync.py [--invoices 2000] [--rps 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

API_KEY = "sk_test_benchmark"
NOW = "2026-02-03T00:00:00Z"


def catalog(count: int) -> str:
    lines = ["billing_profiles:",
             "  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}",
             "customers:"]
    subs = ["subscriptions:"]
    for i in range(count):
        lines.append(f"  - {{id: b{i:05d}, name: Bench {i}, email: b{i}@bench.example}}")
        subs.append(f"  - {{id: sub_b{i:05d}, customer: b{i:05d}, plan: business_eu, "
                    "start_date: 2025-12-01, billing_anchor: 1, "
                    'discounts: [{type: percentage, percent: "10", periods: 12}]}')
    return "\n".join(lines + subs) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(base: str) -> None:
    import httpx

    for _ in range(200):
        try:
            if httpx.get(f"{base}/_emulator/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the Stripe emulator did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--rps", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stripe-sync-bench-"))
    (work / "catalog").mkdir()
    for name in ("meters.yaml", "plans.yaml"):
        shutil.copy(REPO / "catalog" / name, work / "catalog" / name)
    (work / "catalog" / "customers.yaml").write_text(catalog(args.invoices))
    (work / "landing").mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update({
        "BILLING_WAREHOUSE": str(work / "warehouse.duckdb"),
        "BILLING_LANDING": str(work / "landing"), "BILLING_CATALOG": str(work / "catalog"),
        "BILLING_API_STORE": str(work / "api.sqlite"), "BILLING_NOW": NOW,
        "STRIPE_API_KEY": API_KEY, "STRIPE_API_BASE": base})
    os.environ.pop("DAGSTER_HOME", None)

    import dagster as dg
    import stripe

    from pipelines.definitions import defs
    from pipelines.providers.stripe_sync import StripeResource
    from pipelines.run_context import NOW_TAG
    from pipelines.warehouse import connect_reader

    emulator = subprocess.Popen(
        [sys.executable, "-m", "devkit.stripe_emulator", "--port", str(port),
         "--rps", str(args.rps)], cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        wait_up(base)
        with dg.instance_for_test() as instance:
            for job, partition in (("ingest_events", None), ("billing_run", "2026-02-01")):
                assert defs.resolve_job_def(job).execute_in_process(
                    partition_key=partition, tags={NOW_TAG: NOW}, instance=instance).success
        with connect_reader(os.environ["BILLING_WAREHOUSE"]) as con:
            invoices, lines = con.execute("""
                SELECT count(DISTINCT i.invoice_id), count(*) FROM billing.invoices i
                JOIN billing.invoice_lines l USING (invoice_id)
                WHERE i.status = 'issuing'""").fetchall()[0]
        resource = StripeResource(requests_per_second=args.rps,
                                  max_concurrency=args.concurrency)
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def("sync_run").execute_in_process(
                tags={NOW_TAG: NOW}, instance=instance, resources={"stripe": resource})
            assert result.success
            stamps = {entry.dagster_event.event_type_value: entry.timestamp
                      for entry in instance.all_logs(result.run_id)
                      if entry.dagster_event and entry.step_key == "sync__stripe_invoices"}
            seconds = stamps["STEP_SUCCESS"] - stamps["STEP_START"]
            mat = result.asset_materializations_for_node("sync__stripe_invoices")[0]
            meta = {k: v.value for k, v in mat.metadata.items()}
        client = stripe.StripeClient(API_KEY, base_addresses={"api": base})
        at_stripe = Counter(
            inv.metadata["invoice_id"] for inv in
            client.v1.invoices.list(params={"limit": 100}).auto_paging_iter())
        customers = Counter(
            c.metadata["customer_id"] for c in
            client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
        stats = __import__("httpx").get(f"{base}/_emulator/stats").json()
    finally:
        emulator.terminate()
        emulator.wait()
        shutil.rmtree(work, ignore_errors=True)

    calls = int(meta["api_calls"])
    duplicates = (sum(at_stripe.values()) - len(at_stripe)) + \
        (sum(customers.values()) - len(customers))
    print(f"invoices: {invoices} ({lines / max(invoices, 1):.1f} lines each), "
          f"synced {meta['invoices_synced']}, failed {meta['invoices_failed']}")
    print(f"outbound step: {seconds:.1f} s -> {invoices / seconds:.1f} invoices/s")
    print(f"API calls: {calls} ({calls / invoices:.2f} per invoice), "
          f"{calls / seconds:.1f} req/s = {calls / seconds / args.rps:.0%} of the "
          f"{args.rps:g} req/s limit")
    print(f"429s from the account limit: {stats['faults_injected']['rate_limit_bucket']}, "
          f"client retries: {meta['retries']}")
    print(f"Stripe invoices: {sum(at_stripe.values())} for {len(at_stripe)} of ours, "
          f"customers: {sum(customers.values())}; duplicates: {duplicates}")


if __name__ == "__main__":
    main()
