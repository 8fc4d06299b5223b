"""`billing invoice ...`: acting on one invoice by hand (contract section 9).

- `adjust INVOICE_ID --description TEXT (--amount X | --quantity Q --unit-price P)`: add an
  adjustment line to a draft (negative: a credit); `adjust INVOICE_ID --remove LINE_ID`: take
  one off. Only while the invoice is `draft` or `draft.syncing`; rated lines are never edited.
- `void INVOICE_ID --reason ...`: void an issued invoice nobody has paid (a paid one is credited
  instead: `billing credit-note create`); the actor and the reason are kept in the invoice's
  status history.
"""

from __future__ import annotations

import argparse
import getpass
from decimal import Decimal, InvalidOperation

from pipelines import settings
from pipelines.cli.document_shard import UnknownDocument, document_warehouse
from pipelines.cli.output import print_table


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{getpass.getuser()}"


def _decimal(text: str) -> Decimal:
    """An exact decimal from the command line ("12.50", "-20"); never a float."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite amount")
    return value


def cmd_invoice_adjust(args: argparse.Namespace) -> None:
    from pipelines.catalog import CatalogError, load_catalog
    from pipelines.invoicing.adjustments import AdjustmentError, AdjustmentRequest, adjust_invoice
    from pipelines.warehouse import connect_writer, transaction

    def refuse(message: str) -> SystemExit:
        return SystemExit(f"billing invoice adjust: {message}")

    adding = args.description is not None
    if args.remove and (adding or args.amount is not None or args.quantity is not None
                        or args.unit_price is not None):
        raise refuse("--remove takes no --description, --amount, --quantity or --unit-price: "
                     "remove a line or add one, not both in one command")
    if not args.remove and not adding:
        raise refuse("give --description with --amount (or --quantity and --unit-price), or "
                     "--remove LINE_ID")
    if adding and args.amount is None and (args.quantity is None or args.unit_price is None):
        raise refuse("give --amount, or both --quantity and --unit-price")
    if adding and args.amount is not None and (args.quantity is not None
                                               or args.unit_price is not None):
        raise refuse("give --amount or --quantity with --unit-price, not both")
    add = [AdjustmentRequest(description=args.description, amount=args.amount,
                             quantity=args.quantity, unit_price=args.unit_price,
                             field="adjustment")] if adding else []
    try:
        catalog = load_catalog(settings.catalog_path())
    except CatalogError as exc:
        raise refuse(str(exc)) from None
    try:
        with connect_writer(document_warehouse("invoice", args.invoice_id)) as con, \
                transaction(con):
            outcome = adjust_invoice(con, catalog, args.invoice_id, add=add,
                                     remove=args.remove or [], source="cli",
                                     actor=_actor(args), now=settings.now())
    except (AdjustmentError, UnknownDocument) as exc:
        raise refuse(str(exc)) from None
    currency = outcome.currency
    for line in outcome.added:
        print(f"added adjustment {line.line_id} {line.description!r}: {line.amount} {currency}")
    for line in outcome.removed:
        print(f"removed adjustment {line.line_id} {line.description!r}: {line.amount} "
              f"{currency}")
    draft = outcome.draft
    print(f"invoice {outcome.invoice_id} ({outcome.status}): total {outcome.total_before} -> "
          f"{draft.total} {currency}")
    print_table(("line", "type", "description", "amount"),
                [(line.line_id, line.line_type, line.description, line.amount)
                 for line in draft.lines])


def cmd_invoice_void(args: argparse.Namespace) -> None:
    from pipelines.invoicing.manual_documents import ManualDocumentError, void_invoice
    from pipelines.warehouse import connect_writer, transaction

    try:
        with connect_writer(document_warehouse("invoice", args.invoice_id)) as con, \
                transaction(con):
            voided = void_invoice(con, args.invoice_id, reason=args.reason,
                                  actor=_actor(args), now=settings.now())
    except (ManualDocumentError, UnknownDocument) as exc:
        raise SystemExit(f"billing invoice void: {exc}") from None
    withdrawn = (f"; {voided.withdrawn_corrections} correction(s) of it withdrawn"
                 if voided.withdrawn_corrections else "")
    path = " -> ".join((voided.from_status, *voided.path))
    print(f"invoice {voided.invoice_id} voided ({path}){withdrawn}")


def register(commands: argparse._SubParsersAction) -> None:
    """Add `invoice` to the `billing` parser; each subcommand is one block below."""
    invoice = commands.add_parser(
        "invoice", help="act on one invoice by hand (adjust a draft, void an issued one)")
    actions = invoice.add_subparsers(dest="invoice_command", required=True)

    adjust = actions.add_parser(
        "adjust", help="add an adjustment line to a draft (or draft.syncing) invoice, or "
                       "remove one; re-rating keeps adjustments",
        description="Add an adjustment line (an amount, or a quantity x unit price; negative "
                    "for a credit) to an invoice in draft or draft.syncing, or remove one with "
                    "--remove. Discounts and totals are priced again by the rating's rules; "
                    "rated lines never change.")
    adjust.add_argument("invoice_id")
    adjust.add_argument("--description", help="what the line says on the invoice")
    adjust.add_argument("--amount", type=_decimal,
                        help="the line's amount, e.g. 25.00 or -10.00 (rounded once to the "
                             "currency's minor units)")
    adjust.add_argument("--quantity", type=_decimal, help="with --unit-price: quantity x unit "
                                                          "price, exact, then rounded once")
    adjust.add_argument("--unit-price", dest="unit_price", type=_decimal)
    adjust.add_argument("--remove", action="append", metavar="LINE_ID",
                        help="remove an adjustment line (repeatable); rated lines cannot be "
                             "removed")
    adjust.add_argument("--actor", help="who adjusts (default: cli:<login name>)")
    adjust.set_defaults(func=cmd_invoice_adjust)

    void = actions.add_parser(
        "void", help="void an issued invoice that is not paid (a paid one is credited instead)")
    void.add_argument("invoice_id", help="invoice id or number")
    void.add_argument("--reason", required=True, help="why (kept in the status history)")
    void.add_argument("--actor", help="who voids (default: cli:<login name>)")
    void.set_defaults(func=cmd_invoice_void)
