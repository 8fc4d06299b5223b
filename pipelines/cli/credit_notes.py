"""`billing credit-note create --invoice ID --amount X --reason ...` and `billing credit-note
list`: goodwill credit notes finance makes by hand against an issued invoice, up to what remains
creditable, and every credit note with its status (contract section 9)."""

from __future__ import annotations

import argparse
import getpass

from pipelines import settings
from pipelines.cli.document_shard import UnknownDocument, document_warehouse
from pipelines.cli.output import print_table
from pipelines.sharding import connect_finance_reader


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{getpass.getuser()}"


def cmd_credit_note_create(args: argparse.Namespace) -> None:
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.invoicing.manual_documents import (
        ManualDocumentError,
        create_manual_credit_note,
    )
    from pipelines.rating.money import round_money
    from pipelines.warehouse import connect_writer, transaction

    try:
        catalog = load_catalog(settings.catalog_path())
    except CatalogError as exc:
        raise SystemExit(f"billing credit-note create: {exc}") from None
    try:
        with connect_writer(document_warehouse("invoice", args.invoice)) as con, \
                transaction(con):
            note = create_manual_credit_note(con, catalog, args.invoice, args.amount,
                                             reason=args.reason, actor=_actor(args),
                                             now=settings.now())
    except (ManualDocumentError, UnknownDocument) as exc:
        raise SystemExit(f"billing credit-note create: {exc}") from None
    print(f"credit note {note.credit_note_id} (draft) credits "
          f"{round_money(note.amount, note.currency)} {note.currency} on invoice "
          f"{note.invoice_id}; still creditable: "
          f"{round_money(note.remaining_after, note.currency)} {note.currency}; issued from "
          f"{note.issue_after.isoformat()} (app none: numbered by the billing run; provider "
          "apps: by their sync)")


def cmd_credit_note_list(args: argparse.Namespace) -> None:
    with connect_finance_reader() as con:
        rows = con.execute("""
            SELECT coalesce(n.credit_note_number, n.credit_note_id) AS credit_note,
                   coalesce(i.invoice_number, n.invoice_id) AS invoice, n.customer_id,
                   n.kind, n.status, n.total, n.currency, n.reason, n.created_by,
                   n.created_at, n.issued_at
            FROM billing.credit_notes n
            LEFT JOIN billing.invoices i ON i.invoice_id = n.invoice_id
            WHERE $invoice IS NULL OR n.invoice_id = $invoice OR i.invoice_number = $invoice
            ORDER BY n.created_at, n.credit_note_id""", {"invoice": args.invoice}).fetchall()
    if not rows:
        print("no credit notes")
        return
    print_table(("credit note", "invoice", "customer", "kind", "status", "total", "currency",
                 "reason", "created by", "created at", "issued at"), rows)


def register(commands: argparse._SubParsersAction) -> None:
    """Add `credit-note` to the `billing` parser."""
    credit_note = commands.add_parser(
        "credit-note", help="credit notes: a goodwill credit against an issued invoice; list")
    actions = credit_note.add_subparsers(dest="credit_note_command", required=True)
    create = actions.add_parser(
        "create", help="credit an amount of an issued invoice (up to its total less its credit "
                       "notes not voided)")
    create.add_argument("--invoice", required=True, help="invoice id or number")
    create.add_argument("--amount", required=True,
                        help="amount to credit, in the invoice's currency (e.g. 12.50)")
    create.add_argument("--reason", required=True, help="why (kept on the credit note)")
    create.add_argument("--actor", help="who credits (default: cli:<login name>)")
    create.set_defaults(func=cmd_credit_note_create)
    listing = actions.add_parser("list", help="credit notes, with their status")
    listing.add_argument("--invoice", help="only those of this invoice (id or number)")
    listing.set_defaults(func=cmd_credit_note_list)
