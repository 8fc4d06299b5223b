"""`billing corrections list | approve ID | reject ID --reason ...`: the corrections of issued
invoices that wait for a person, and the decisions on them (contract section 9)."""

from __future__ import annotations

import argparse
import getpass

from pipelines import settings
from pipelines.cli.document_shard import UnknownDocument, document_warehouse
from pipelines.cli.output import print_table
from pipelines.rating.money import quantum
from pipelines.sharding import connect_finance_reader


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{getpass.getuser()}"


def cmd_corrections_list(args: argparse.Namespace) -> None:
    status = None if args.all else "pending_approval"
    with connect_finance_reader() as con:
        rows = con.execute("""
            SELECT c.correction_id, coalesce(i.invoice_number, c.invoice_id) AS invoice,
                   c.customer_id, c.description, c.delta, c.currency, c.document_type,
                   c.status, c.decided_by, coalesce(cn.credit_note_number, s.invoice_number,
                                                    c.document_id) AS document
            FROM billing.corrections c
            LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
            LEFT JOIN billing.credit_notes cn ON cn.credit_note_id = c.document_id
            LEFT JOIN billing.invoices s ON s.invoice_id = c.document_id
            WHERE $status IS NULL OR c.status = $status
            ORDER BY c.detected_at, c.invoice_id, c.line_id""", {"status": status}).fetchall()
    if not rows:
        print("no correction waits for approval" if status else "no corrections")
        return
    rows = [(*row[:4], row[4].quantize(quantum(row[5])), *row[5:]) for row in rows]
    print_table(("correction", "invoice", "customer", "line", "delta", "currency", "document",
                 "status", "decided by", "document no."), rows)


def _decide(args: argparse.Namespace, *, approve: bool) -> None:
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.invoicing.corrections import CorrectionError, decide
    from pipelines.warehouse import connect_writer, transaction

    verb = "approve" if approve else "reject"
    try:
        catalog = load_catalog(settings.catalog_path())
    except CatalogError as exc:
        raise SystemExit(f"billing corrections {verb}: {exc}") from None
    try:
        with connect_writer(document_warehouse("correction", args.correction_id)) as con, \
                transaction(con):
            document = decide(con, catalog, args.correction_id, approve=approve,
                              actor=_actor(args), reason=args.reason, now=settings.now())
    except (CorrectionError, UnknownDocument) as exc:
        raise SystemExit(f"billing corrections {verb}: {exc}") from None
    if approve:
        made = f"; made {document}" if document else ""
        print(f"correction {args.correction_id} approved{made}")
    else:
        print(f"correction {args.correction_id} rejected: {args.reason}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `corrections` to the `billing` parser."""
    corrections = commands.add_parser(
        "corrections", help="corrections of issued invoices: list what waits, approve, reject")
    actions = corrections.add_subparsers(dest="corrections_command", required=True)
    listing = actions.add_parser("list", help="corrections waiting for approval (--all: every "
                                              "correction, with its document)")
    listing.add_argument("--all", action="store_true")
    listing.set_defaults(func=cmd_corrections_list)
    for verb, approve in (("approve", True), ("reject", False)):
        action = actions.add_parser(verb, help=f"{verb} a correction waiting for approval")
        action.add_argument("correction_id")
        action.add_argument("--reason", required=not approve,
                            help="why (required to reject; kept in the history)")
        action.add_argument("--actor", help="who decides (default: cli:<login name>)")
        action.set_defaults(func=lambda args, approve=approve: _decide(args, approve=approve))
