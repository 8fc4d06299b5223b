"""`billing customer erase ID --reason ...`: erasure on request (GDPR art. 17, contract
section 11). See docs/erasure.md."""

from __future__ import annotations

import argparse
import getpass

from pipelines import settings
from pipelines.cli.document_shard import customer_warehouse
from pipelines.cli.output import print_table


def cmd_customer_erase(args: argparse.Namespace) -> None:
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.erasure.erase import ErasureRefused, erase_customer
    from pipelines.providers.stripe_sync.resource import StripeResource

    def refuse(message: str) -> SystemExit:
        return SystemExit(f"billing customer erase: {message}")

    if not args.reason.strip():
        raise refuse("--reason must say why (it is kept in the erasure record)")
    try:
        catalog = load_catalog(settings.catalog_path())
    except CatalogError as exc:
        raise refuse(str(exc)) from None
    try:
        report = erase_customer(catalog, args.customer_id, reason=args.reason,
                                actor=args.actor or f"cli:{getpass.getuser()}",
                                now=settings.now(), warehouse=customer_warehouse(args.customer_id),
                                api_store=settings.api_store_path(),
                                make_stripe_gateway=StripeResource().gateway)
    except ErasureRefused as exc:
        raise refuse(str(exc)) from None
    if report.erasure_pass is None:
        print(f"customer {report.customer_id} was erased on {report.first_erased_at:%Y-%m-%d} "
              f"by {report.first_actor}; nothing left to change (pseudonym "
              f"{report.pseudonym})")
    else:
        print(f"customer {report.customer_id} erased (pass {report.erasure_pass}): personal "
              f"data replaced by {report.pseudonym}; invoices, lines and amounts kept")
    rows = [("warehouse", k, v) for k, v in report.warehouse.items()]
    rows += [("api store", k, v) for k, v in report.api_store.items()]
    if rows:
        print_table(("where", "table.column", "rows changed"), rows)
    if report.providers:
        print_table(("provider", "asked to", "status", "detail"),
                    [(p.provider, p.action, p.status, p.detail) for p in report.providers])
    pending = [p for p in report.providers if p.status != "done"]
    for request in pending:
        if request.provider == "stripe":
            print(f"pending: Stripe ({request.status}); run this command again to retry")
        else:
            print("pending: the customer.erased notification is delivered (with retries) by "
                  "the next `billing sync` or `billing reconcile`")
    if any(p.provider == "stripe" for p in report.providers):
        print("note: finalized Stripe invoices keep their own copy of the name and email (no "
              "API call edits them); ask Stripe's privacy process to redact them")
    if report.source_warning:
        print(f"warning: {report.source_warning}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `customer` to the `billing` parser."""
    customer = commands.add_parser("customer", help="act on one customer (erase on request)")
    actions = customer.add_subparsers(dest="customer_command", required=True)
    erase = actions.add_parser(
        "erase", help="pseudonymise a customer's personal data everywhere (GDPR art. 17), "
                      "keeping every amount and document",
        description="Replace the customer's name, email, metadata values and the event "
                    "properties the catalog names in personal_properties with a pseudonym in "
                    "every warehouse table and the API store; record who, when and why; ask "
                    "Stripe to anonymise its customer and notify the integrations "
                    "(customer.erased). Running it again finishes what is pending.")
    erase.add_argument("customer_id")
    erase.add_argument("--reason", required=True, help="why (kept in billing.erasures)")
    erase.add_argument("--actor", help="who erases (default: cli:<login name>)")
    erase.set_defaults(func=cmd_customer_erase)
