"""What the integration API accepts, as pure functions: token scopes, the shape of each callback
body (contract section 5) and whether a callback is allowed in an invoice's state.

The API checks every call against the invoice state the pipeline last published, *projected* by
the calls it already accepted and the pipeline has not yet reflected, so two conflicting
callbacks can never both be accepted. The pipeline checks each call again when it applies it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipelines.rating.invoices import adjustment_amount, adjustment_line_id
from pipelines.rating.lifecycle import PAYMENT_TRIGGERS, has_own_number_form, payment_path
from pipelines.settings import parse_instant

SCOPE_INVOICES_SYNC = "invoices:sync"
SCOPE_PAYMENTS_WRITE = "payments:write"
SCOPE_WEBHOOKS_STRIPE = "webhooks:stripe"
SCOPE_CATALOG_WRITE = "catalog:write"     # customers and subscriptions from a CRM
SCOPE_EVENTS_WRITE = "events:write"       # usage events over HTTP, into the landing zone
SCOPES = (SCOPE_INVOICES_SYNC, SCOPE_PAYMENTS_WRITE, SCOPE_WEBHOOKS_STRIPE, SCOPE_CATALOG_WRITE,
          SCOPE_EVENTS_WRITE)

DRAFT_SYNCHRONIZED = "custom_invoicing.draft_synchronized"
ISSUING_SYNCHRONIZED = "custom_invoicing.issuing_synchronized"
PAYMENT_STATUS = "custom_invoicing.payment_status"
STATEMENT = "custom_invoicing.statement"
STRIPE_EVENT = "stripe.event"
# a custom invoicing credit note takes the same hooks as an invoice, on its own endpoints
CREDIT_NOTE_DRAFT_SYNCHRONIZED = "custom_invoicing.credit_note_draft_synchronized"
CREDIT_NOTE_ISSUING_SYNCHRONIZED = "custom_invoicing.credit_note_issuing_synchronized"
CREDIT_NOTE_KINDS = (CREDIT_NOTE_DRAFT_SYNCHRONIZED, CREDIT_NOTE_ISSUING_SYNCHRONIZED)
# the Update Invoice call (PATCH .../invoices/{id}): adjustment lines added to or removed from a
# draft; it moves no state
UPDATE_INVOICE = "custom_invoicing.update_invoice"
KINDS = (DRAFT_SYNCHRONIZED, ISSUING_SYNCHRONIZED, PAYMENT_STATUS, STATEMENT, STRIPE_EVENT,
         *CREDIT_NOTE_KINDS, UPDATE_INVOICE)
CALLBACK_KINDS = (DRAFT_SYNCHRONIZED, ISSUING_SYNCHRONIZED, PAYMENT_STATUS, *CREDIT_NOTE_KINDS)

# the documents published for the API: what a call's path names
INVOICE_DOCUMENT = "invoice"
CREDIT_NOTE_DOCUMENT = "credit_note"

# the scope a token needs for each kind of call
KIND_SCOPE = {
    DRAFT_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    ISSUING_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    PAYMENT_STATUS: SCOPE_PAYMENTS_WRITE,
    STATEMENT: SCOPE_INVOICES_SYNC,
    STRIPE_EVENT: SCOPE_WEBHOOKS_STRIPE,
    CREDIT_NOTE_DRAFT_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    CREDIT_NOTE_ISSUING_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    UPDATE_INVOICE: SCOPE_INVOICES_SYNC,
}


def document_type_of(kind: str) -> str:
    """The document a callback of this kind is about: a credit note or an invoice."""
    return CREDIT_NOTE_DOCUMENT if kind in CREDIT_NOTE_KINDS else INVOICE_DOCUMENT

CUSTOM_INVOICING_APP = "custom_invoicing"
MAX_TEXT = 255   # longest external id / invoice number accepted

# an invoice statement: the integration's invoice statuses (Stripe's words) and exact amounts
STATEMENT_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
# a decimal string that fits DECIMAL(38, 12): at most 26 digits before the point, 12 after
_DECIMAL = re.compile(r"-?[0-9]{1,26}(\.[0-9]{1,12})?")
_CURRENCY = re.compile(r"[A-Za-z]{3}")


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, de-duplicated in a stable order; a ValueError names any unknown one."""
    wanted = list(dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(repr(s) for s in unknown)} "
                         f"(known: {', '.join(SCOPES)})")
    if not wanted:
        raise ValueError(f"a token needs at least one scope ({', '.join(SCOPES)})")
    return tuple(wanted)


@dataclass(frozen=True)
class FieldError:
    """One problem with a request body: the JSON path of the field and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class _Checker:
    """Collects field errors while walking a body."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def error(self, field: str, message: str) -> None:
        self.errors.append(FieldError(field or "body", message))

    def errors_at(self, field: str) -> bool:
        """Whether a problem was found in `field` or below it."""
        return any(e.field == field or e.field.startswith((f"{field}.", f"{field}["))
                   for e in self.errors)

    def obj(self, value: Any, field: str, allowed: Sequence[str], *,
            required: bool) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.error(field, "required")
            return None
        if not isinstance(value, dict):
            self.error(field, "must be an object")
            return None
        for key in value:
            if key not in allowed:
                self.error(_join(field, key), f"unknown field (allowed: {', '.join(allowed)})")
        return value

    def text(self, parent: Mapping[str, Any], key: str, field: str, *, required: bool) -> None:
        value = parent.get(key)
        path = _join(field, key)
        if value is None:
            if required:
                self.error(path, "required")
        elif not isinstance(value, str) or not value.strip():
            self.error(path, "must be a non-empty string")
        elif len(value) > MAX_TEXT:
            self.error(path, f"must be at most {MAX_TEXT} characters")

    def document_number(self, parent: Mapping[str, Any], key: str, field: str,
                        prefix: str) -> None:
        """An integration's own document number: text, and not of the form the ledger gives
        itself (`<prefix>-YYYYMM-NNNNN`), which its gap-free sequence could give again."""
        self.text(parent, key, field, required=False)
        value = parent.get(key)
        if isinstance(value, str) and has_own_number_form(value, prefix):
            self.error(_join(field, key), f"{value} has the form of our own {prefix}-YYYYMM-NNNNN "
                                          "numbering; send the integration's own number")

    def decimal(self, parent: Mapping[str, Any], key: str, field: str, *,
                negative: bool) -> None:
        """A required exact amount: a decimal string, never a JSON number (a float is not
        exact)."""
        value = parent.get(key)
        path = _join(field, key)
        if value is None:
            self.error(path, "required")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.error(path, f"must be a decimal string (e.g. \"{value}\"), not a JSON number")
        elif not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            self.error(path, "must be a decimal string like \"123.45\" (at most 26 digits "
                       f"before the point and 12 after), got {value!r}")
        elif not negative and value.startswith("-"):
            self.error(path, f"must not be negative, got {value!r}")

    def once(self, parent: Mapping[str, Any], key: str, field: str, seen: dict[str, str],
             scope: str = "") -> None:
        """The value of `key` must not repeat among those recorded in `seen` (value -> where)."""
        value = parent.get(key)
        if not isinstance(value, str) or not value.strip():
            return
        path = _join(field, key)
        if value in seen:
            self.error(path, f"{value!r} is given more than once{scope} (also {seen[value]})")
        else:
            seen[value] = path

    def instant(self, parent: Mapping[str, Any], key: str, field: str) -> None:
        """A required ISO-8601 instant with a UTC offset."""
        value = parent.get(key)
        path = _join(field, key)
        if value is None:
            self.error(path, "required")
            return
        try:
            if not isinstance(value, str):
                raise ValueError
            parse_instant(value)
        except (ValueError, OverflowError):     # OverflowError: year 1 at +01:00 is before UTC
            self.error(path, f"must be an ISO-8601 instant with a UTC offset, got {value!r}")

    def items(self, value: Any, field: str) -> list[Any]:
        """A required list (may be empty)."""
        if value is None:
            self.error(field, "required")
            return []
        if not isinstance(value, list):
            self.error(field, "must be a list")
            return []
        return value


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


MAX_JSON_DEPTH = 32
"""How deep a body may nest (the deepest call the contract defines nests 5 levels)."""


def check_json_value(value: Any, max_depth: int = MAX_JSON_DEPTH) -> FieldError | None:
    """The first part of a parsed JSON body that no call can take, whatever its kind, or None:
    nesting deeper than `max_depth`, a string or key that is not Unicode text (JSON escapes
    allow a lone surrogate such as `"\\ud800"`, which no store or answer can hold), or a number
    too large to be finite. Walked without recursion, so no body exhausts the stack; the path
    is built only for the problem found."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 0, ())]
    while stack:
        current, depth, trail = stack.pop()
        if isinstance(current, str):
            if not _is_text(current):
                return FieldError(_trail_path(trail), "must be Unicode text (a lone surrogate "
                                  "such as \\ud800 is not)")
        elif isinstance(current, float):
            if not math.isfinite(current):
                return FieldError(_trail_path(trail), "must be a finite number")
        elif isinstance(current, (dict, list)):
            if depth >= max_depth:
                return FieldError(_trail_path(trail), f"nests deeper than {max_depth} levels")
            if isinstance(current, dict):
                for key in current:
                    if not _is_text(key):
                        return FieldError(_trail_path((trail, key)), "a key must be Unicode "
                                          "text (a lone surrogate such as \\ud800 is not)")
                children = list(current.items())
            else:
                children = list(enumerate(current))
            stack.extend((child, depth + 1, (trail, key)) for key, child in reversed(children))
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _trail_path(trail: tuple[Any, ...]) -> str:
    """The field path (`a.b[1].c`, `body` for the whole) of a trail `(parent trail, key)`;
    characters that are not text are shown escaped."""
    keys: list[str | int] = []
    while trail:
        trail, key = trail
        keys.append(key)
    path = ""
    for key in reversed(keys):
        if isinstance(key, int):
            path += f"[{key}]"
        else:
            path = _join(path, key.encode("utf-8", "backslashreplace").decode("utf-8"))
    return path or "body"


def validate_draft_synchronized(body: Any, lines: Mapping[str, str]) -> list[FieldError]:
    """Problems with a draft/synchronized body; `lines` maps the invoice's line ids to their
    line_type. Lines reference non-discount lines, discounts reference discount lines, each at
    most once."""
    check = _Checker()
    root = check.obj(body, "", ("invoicing",), required=True)
    if root is None:
        return check.errors
    invoicing = check.obj(root.get("invoicing"), "invoicing",
                          ("invoice_number", "external_id", "line_external_ids",
                           "line_discount_external_ids"), required=True)
    if invoicing is not None:
        check.document_number(invoicing, "invoice_number", "invoicing", "INV")
        check.text(invoicing, "external_id", "invoicing", required=True)
        for list_key, id_key, discount in (("line_external_ids", "line_id", False),
                                           ("line_discount_external_ids", "line_discount_id",
                                            True)):
            entries = invoicing.get(list_key)
            path = f"invoicing.{list_key}"
            if entries is None:
                continue
            if not isinstance(entries, list):
                check.error(path, "must be a list")
                continue
            seen: set[str] = set()
            for index, entry in enumerate(entries):
                at = f"{path}[{index}]"
                item = check.obj(entry, at, (id_key, "external_id"), required=True)
                if item is None:
                    continue
                check.text(item, "external_id", at, required=True)
                line_id = item.get(id_key)
                if line_id is None:
                    check.error(f"{at}.{id_key}", "required")
                elif not isinstance(line_id, str):
                    check.error(f"{at}.{id_key}", "must be a string")
                elif line_id not in lines:
                    check.error(f"{at}.{id_key}", f"unknown line of this invoice: {line_id!r}")
                elif (lines[line_id] == "discount") != discount:
                    what = "a discount line" if discount else "a non-discount line"
                    check.error(f"{at}.{id_key}",
                                f"{line_id!r} is a {lines[line_id]} line, not {what}")
                elif line_id in seen:
                    check.error(f"{at}.{id_key}", f"{line_id!r} is given more than once")
                else:
                    seen.add(line_id)
    return check.errors


def validate_issuing_synchronized(body: Any) -> list[FieldError]:
    """Problems with an issuing/synchronized body."""
    check = _Checker()
    root = check.obj(body, "", ("invoicing", "payment"), required=True)
    if root is None:
        return check.errors
    invoicing = check.obj(root.get("invoicing"), "invoicing",
                          ("invoice_number", "sent_to_customer_at"), required=True)
    if invoicing is not None:
        check.document_number(invoicing, "invoice_number", "invoicing", "INV")
        check.instant(invoicing, "sent_to_customer_at", "invoicing")
    payment = check.obj(root.get("payment"), "payment", ("external_id",), required=False)
    if payment is not None:
        check.text(payment, "external_id", "payment", required=False)
    return check.errors


def validate_credit_note_draft_synchronized(body: Any,
                                            line_ids: Iterable[str]) -> list[FieldError]:
    """Problems with a credit note's draft/synchronized body; `line_ids` are the credit note's
    line ids, each mapped at most once."""
    known = set(line_ids)
    check = _Checker()
    root = check.obj(body, "", ("invoicing",), required=True)
    if root is None:
        return check.errors
    invoicing = check.obj(root.get("invoicing"), "invoicing",
                          ("credit_note_number", "external_id", "line_external_ids"),
                          required=True)
    if invoicing is None:
        return check.errors
    check.document_number(invoicing, "credit_note_number", "invoicing", "CN")
    check.text(invoicing, "external_id", "invoicing", required=True)
    entries = invoicing.get("line_external_ids")
    if entries is not None and not isinstance(entries, list):
        check.error("invoicing.line_external_ids", "must be a list")
        entries = None
    seen: set[str] = set()
    for index, entry in enumerate(entries or []):
        at = f"invoicing.line_external_ids[{index}]"
        item = check.obj(entry, at, ("credit_note_line_id", "external_id"), required=True)
        if item is None:
            continue
        check.text(item, "external_id", at, required=True)
        line_id = item.get("credit_note_line_id")
        if line_id is None:
            check.error(f"{at}.credit_note_line_id", "required")
        elif not isinstance(line_id, str):
            check.error(f"{at}.credit_note_line_id", "must be a string")
        elif line_id not in known:
            check.error(f"{at}.credit_note_line_id",
                        f"unknown line of this credit note: {line_id!r}")
        elif line_id in seen:
            check.error(f"{at}.credit_note_line_id", f"{line_id!r} is given more than once")
        else:
            seen.add(line_id)
    return check.errors


def validate_credit_note_issuing_synchronized(body: Any) -> list[FieldError]:
    """Problems with a credit note's issuing/synchronized body."""
    check = _Checker()
    root = check.obj(body, "", ("invoicing",), required=True)
    if root is None:
        return check.errors
    invoicing = check.obj(root.get("invoicing"), "invoicing",
                          ("credit_note_number", "sent_to_customer_at"), required=True)
    if invoicing is not None:
        check.document_number(invoicing, "credit_note_number", "invoicing", "CN")
        check.instant(invoicing, "sent_to_customer_at", "invoicing")
    return check.errors


def validate_payment_status(body: Any) -> list[FieldError]:
    """Problems with a payment/status body."""
    check = _Checker()
    root = check.obj(body, "", ("trigger",), required=True)
    if root is not None:
        trigger = root.get("trigger")
        if trigger is None:
            check.error("trigger", "required")
        elif not isinstance(trigger, str) or trigger not in PAYMENT_TRIGGERS:
            check.error("trigger", f"{trigger!r} is not one of {', '.join(PAYMENT_TRIGGERS)}")
    return check.errors


ADJUSTABLE_STATES = ("draft", "draft.syncing")
UPDATE_ADD_FIELDS = ("description", "amount", "quantity", "unit_price")


def validate_update_invoice(body: Any, lines: Mapping[str, str],
                            currency: str) -> list[FieldError]:
    """Problems with an Update Invoice body: `add` (adjustments, each a `description` and either
    an `amount` or a `quantity` and a `unit_price`, exact decimal strings, negative for a credit)
    and/or `remove` (line ids of the invoice's adjustment lines; `lines` maps every line id of
    the invoice, projected, to its line_type). Amounts are rounded once to the invoice's
    `currency`; one that rounds to zero is refused."""
    check = _Checker()
    root = check.obj(body, "", ("add", "remove"), required=True)
    if root is None:
        return check.errors
    if not root.get("add") and not root.get("remove"):
        check.error("add", "give `add` (adjustments to add) or `remove` (adjustment line ids), "
                    "at least one of them non-empty")
        return check.errors
    for index, entry in enumerate(check.items(root.get("add") or [], "add")):
        at = f"add[{index}]"
        item = check.obj(entry, at, UPDATE_ADD_FIELDS, required=True)
        if item is None:
            continue
        check.text(item, "description", at, required=True)
        before = len(check.errors)
        if "amount" in item:
            check.decimal(item, "amount", at, negative=True)
            for other in ("quantity", "unit_price"):
                if other in item:
                    check.error(f"{at}.{other}", "give `amount`, or `quantity` and `unit_price`, "
                                "not both")
        elif "quantity" in item or "unit_price" in item:
            check.decimal(item, "quantity", at, negative=False)
            check.decimal(item, "unit_price", at, negative=True)
        else:
            check.error(f"{at}.amount", "required (or `quantity` and `unit_price`)")
        if len(check.errors) == before:
            try:
                adjustment_amount(currency, **{key: Decimal(item[key]) for key in
                                               ("amount", "quantity", "unit_price")
                                               if key in item})
            except ValueError as exc:
                name, _, message = str(exc).partition(": ")
                check.error(f"{at}.{name}", message)
    seen: set[str] = set()
    for index, line_id in enumerate(check.items(root.get("remove") or [], "remove")):
        at = f"remove[{index}]"
        if not isinstance(line_id, str):
            check.error(at, "must be a line id (a string)")
        elif line_id not in lines:
            check.error(at, f"unknown line of this invoice: {line_id!r}")
        elif lines[line_id] != "adjustment":
            check.error(at, f"{line_id!r} is a {lines[line_id]} line; only adjustment lines can "
                        "be removed (rated lines are never edited by hand)")
        elif line_id in seen:
            check.error(at, f"{line_id!r} is given more than once")
        else:
            seen.add(line_id)
    return check.errors


def adjustment_key(item_id: int, index: int) -> str:
    """What the line id of the `index`-th adjustment added by inbox item `item_id` derives from,
    for the API (which answers with the ids) and the pipeline (which adds the lines) alike."""
    return f"inbox:{item_id}:{index}"


def update_line_ids(invoice_id: str, item_id: int, body: Mapping[str, Any]) -> list[str]:
    """The line ids the adjustments of an accepted Update Invoice call get, in order."""
    return [adjustment_line_id(invoice_id, adjustment_key(item_id, index))
            for index in range(len(body.get("add") or []))]


def project_lines(lines: Mapping[str, str], invoice_id: str,
                  calls: Iterable[tuple[int, Mapping[str, Any]]]) -> dict[str, str]:
    """The invoice's lines (line id -> line_type, in order) once the given accepted Update
    Invoice calls (inbox item id, body), in arrival order, are applied."""
    projected = dict(lines)
    for item_id, body in calls:
        for line_id in body.get("remove") or []:
            if projected.get(line_id) == "adjustment":
                del projected[line_id]
        for line_id in update_line_ids(invoice_id, item_id, body):
            projected[line_id] = "adjustment"
    return projected


STATEMENT_INVOICE_FIELDS = ("external_id", "invoice_id", "invoice_number",
                            "external_customer_id", "currency", "total", "status", "amount_paid",
                            "amount_refunded", "lines", "tax_total", "total_including_tax")
STATEMENT_LINE_FIELDS = ("external_id", "line_id", "amount", "tax_amount")
# credit notes in a statement (optional): Stripe's statuses for credit notes, and draft for one
# the integration holds but has not issued yet; amounts are what is credited (not negative)
STATEMENT_CREDIT_NOTE_STATUSES = ("draft", "issued", "void")
STATEMENT_CREDIT_NOTE_FIELDS = ("external_id", "credit_note_id", "invoice_id",
                                "external_invoice_id", "credit_note_number", "currency", "total",
                                "status", "lines", "tax_total", "total_including_tax")
STATEMENT_CREDIT_NOTE_LINE_FIELDS = ("external_id", "credit_note_line_id", "amount",
                                     "tax_amount")


def statement_total_including_tax(document: Mapping[str, Any]) -> Decimal:
    """What a (valid) statement document totals including tax: its `total_including_tax`, or,
    when it gives none, its `total` (no tax on top). The number reconciliation compares with
    the ledger's total_including_tax, as it compares Stripe's total, which includes tax."""
    given = document.get("total_including_tax")
    return Decimal(given if given is not None else document["total"])


def _check_statement_tax(check: _Checker, document: Mapping[str, Any], at: str,
                         lines: Any, *, negative: bool) -> None:
    """The optional tax of a statement's invoice or credit note: `tax_total` and
    `total_including_tax` exact decimals, the latter either `total` + `tax_total` (tax added on
    top) or `total` (tax included in the lines' amounts), and `tax_total` the sum of the lines'
    `tax_amount` when every line gives one. Each wrong amount is named by its field."""
    for key in ("tax_total", "total_including_tax"):
        if document.get(key) is not None:
            check.decimal(document, key, at, negative=negative)
    lines = lines if isinstance(lines, list) else []
    for number, line in enumerate(lines):
        if isinstance(line, dict) and line.get("tax_amount") is not None:
            check.decimal(line, "tax_amount", f"{at}.lines[{number}]", negative=negative)
    if check.errors_at(at):
        return      # the amounts are compared only once each is well formed
    try:
        total = Decimal(document["total"])
        tax = Decimal(document.get("tax_total") or "0")
        including = document.get("total_including_tax")
        including = Decimal(including) if including is not None else None
        line_taxes = [Decimal(line["tax_amount"]) for line in lines
                      if isinstance(line, dict) and line.get("tax_amount") is not None]
    except (KeyError, TypeError, ArithmeticError):
        return      # a malformed amount is already reported by its field
    if including is None:
        if tax != 0:
            check.error(f"{at}.total_including_tax", "required with a tax_total other than 0 "
                        f"(give {total + tax} when the tax is added on top, {total} when the "
                        "lines include it)")
    elif including not in (total + tax, total):
        check.error(f"{at}.total_including_tax",
                    f"must be total + tax_total ({total + tax}: tax added on top) or total "
                    f"({total}: tax included in the lines), got {document['total_including_tax']}")
    if (document.get("tax_total") is not None and lines and len(line_taxes) == len(lines)
            and sum(line_taxes, Decimal(0)) != tax):
        check.error(f"{at}.tax_total", f"must be the sum of the lines' tax_amount "
                    f"({sum(line_taxes, Decimal(0))}), got {document['tax_total']}")


def validate_statement(body: Any) -> list[FieldError]:
    """Problems with an invoice statement: `as_of` (an instant with offset) and `invoices`, the
    integration's complete list of invoices with exact amounts (decimal strings), each external
    id once. `invoice_id` may be null or an id we do not know (an orphan): a statement is not
    about one invoice, so it is never refused for an unknown invoice."""
    check = _Checker()
    root = check.obj(body, "", ("as_of", "invoices", "credit_notes"), required=True)
    if root is None:
        return check.errors
    check.instant(root, "as_of", "")
    if root.get("credit_notes") is not None:
        _check_statement_credit_notes(check, root["credit_notes"])
    seen: dict[str, str] = {}
    for index, entry in enumerate(check.items(root.get("invoices"), "invoices")):
        at = f"invoices[{index}]"
        invoice = check.obj(entry, at, STATEMENT_INVOICE_FIELDS, required=True)
        if invoice is None:
            continue
        check.text(invoice, "external_id", at, required=True)
        check.once(invoice, "external_id", at, seen)
        for key in ("invoice_id", "invoice_number", "external_customer_id"):
            check.text(invoice, key, at, required=False)
        currency = invoice.get("currency")
        if currency is None:
            check.error(f"{at}.currency", "required")
        elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            check.error(f"{at}.currency", f"must be a 3-letter ISO 4217 code, got {currency!r}")
        check.decimal(invoice, "total", at, negative=True)
        status = invoice.get("status")
        if status is None:
            check.error(f"{at}.status", "required")
        elif status not in STATEMENT_STATUSES:
            check.error(f"{at}.status",
                        f"{status!r} is not one of {', '.join(STATEMENT_STATUSES)}")
        check.decimal(invoice, "amount_paid", at, negative=False)
        check.decimal(invoice, "amount_refunded", at, negative=False)
        lines_at = f"{at}.lines"
        line_ids: dict[str, str] = {}
        for number, line_entry in enumerate(check.items(invoice.get("lines"), lines_at)):
            line_at = f"{lines_at}[{number}]"
            line = check.obj(line_entry, line_at, STATEMENT_LINE_FIELDS, required=True)
            if line is None:
                continue
            check.text(line, "external_id", line_at, required=True)
            check.once(line, "external_id", line_at, line_ids, " in this invoice")
            check.text(line, "line_id", line_at, required=False)
            check.decimal(line, "amount", line_at, negative=True)
        _check_statement_tax(check, invoice, at, invoice.get("lines"), negative=True)
    return check.errors


def _check_statement_credit_notes(check: _Checker, entries: Any) -> None:
    """The statement's `credit_notes`: each external id once, exact amounts credited."""
    seen: dict[str, str] = {}
    for index, entry in enumerate(check.items(entries, "credit_notes")):
        at = f"credit_notes[{index}]"
        note = check.obj(entry, at, STATEMENT_CREDIT_NOTE_FIELDS, required=True)
        if note is None:
            continue
        check.text(note, "external_id", at, required=True)
        check.once(note, "external_id", at, seen)
        for key in ("credit_note_id", "invoice_id", "external_invoice_id", "credit_note_number"):
            check.text(note, key, at, required=False)
        currency = note.get("currency")
        if currency is None:
            check.error(f"{at}.currency", "required")
        elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            check.error(f"{at}.currency", f"must be a 3-letter ISO 4217 code, got {currency!r}")
        check.decimal(note, "total", at, negative=False)
        status = note.get("status")
        if status is None:
            check.error(f"{at}.status", "required")
        elif status not in STATEMENT_CREDIT_NOTE_STATUSES:
            check.error(f"{at}.status",
                        f"{status!r} is not one of {', '.join(STATEMENT_CREDIT_NOTE_STATUSES)}")
        lines_at = f"{at}.lines"
        line_ids: dict[str, str] = {}
        for number, line_entry in enumerate(check.items(note.get("lines"), lines_at)):
            line_at = f"{lines_at}[{number}]"
            line = check.obj(line_entry, line_at, STATEMENT_CREDIT_NOTE_LINE_FIELDS,
                             required=True)
            if line is None:
                continue
            check.text(line, "external_id", line_at, required=True)
            check.once(line, "external_id", line_at, line_ids, " in this credit note")
            check.text(line, "credit_note_line_id", line_at, required=False)
            check.decimal(line, "amount", line_at, negative=False)
        _check_statement_tax(check, note, at, note.get("lines"), negative=False)


@dataclass(frozen=True)
class StateConflict:
    """Why a callback is refused in the invoice's (projected) state."""

    code: str        # invalid_state | already_in_state
    message: str


def callback_target(kind: str, body: Mapping[str, Any]) -> str:
    """The state an accepted callback of this kind moves the invoice to."""
    if kind == DRAFT_SYNCHRONIZED:
        return "issuing"
    if kind == ISSUING_SYNCHRONIZED:
        return "payment_processing.pending"
    if kind == PAYMENT_STATUS:
        return PAYMENT_TRIGGERS[str(body.get("trigger"))]
    if kind == CREDIT_NOTE_DRAFT_SYNCHRONIZED:
        return "issuing"
    if kind == CREDIT_NOTE_ISSUING_SYNCHRONIZED:
        return "issued"
    raise ValueError(f"{kind!r} is not a custom invoicing callback")


def state_conflict(state: str, kind: str, body: Mapping[str, Any]) -> StateConflict | None:
    """None when the callback is allowed in `state`, else why not. A payment trigger for the
    state the invoice is already in is a conflict too (`already_in_state`): only an exact replay
    of the call that got it there is answered 202 again. An Update Invoice call is allowed while
    the invoice is a draft (`draft`, `draft.syncing`)."""
    if kind == UPDATE_INVOICE:
        if state not in ADJUSTABLE_STATES:
            return StateConflict("invalid_state", f"invoice is {state}; an invoice is adjusted "
                                 f"only in {' or '.join(ADJUSTABLE_STATES)} (an issued invoice "
                                 "is corrected by credit notes, never changed)")
        return None
    if kind == DRAFT_SYNCHRONIZED:
        if state != "draft.syncing":
            return StateConflict("invalid_state", f"invoice is {state}; draft/synchronized is "
                                 "accepted only in draft.syncing")
        return None
    if kind == ISSUING_SYNCHRONIZED:
        if state != "issuing.syncing":
            return StateConflict("invalid_state", f"invoice is {state}; issuing/synchronized "
                                 "is accepted only in issuing.syncing")
        return None
    if kind == PAYMENT_STATUS:
        trigger = str(body.get("trigger"))
        target = PAYMENT_TRIGGERS[trigger]
        if target == state:
            return StateConflict("already_in_state", f"invoice is already {state}")
        if payment_path(state, target) is None:
            return StateConflict("invalid_state", f"invoice is {state}; trigger {trigger} "
                                 f"cannot move it to {target} (not issued yet, or a regression)")
        return None
    if kind in CREDIT_NOTE_KINDS:
        hook, wanted = (("draft", "draft.syncing") if kind == CREDIT_NOTE_DRAFT_SYNCHRONIZED
                        else ("issuing", "issuing.syncing"))
        if state != wanted:
            return StateConflict("invalid_state", f"credit note is {state}; {hook}/synchronized "
                                 f"is accepted only in {wanted}")
        return None
    raise ValueError(f"{kind!r} is not a custom invoicing callback")


def project(state: str, calls: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The invoice state once the given accepted calls (kind, body), in arrival order, are
    applied; a call no longer allowed in the state reached is skipped (the pipeline will reject
    it)."""
    for kind, body in calls:
        if kind in CALLBACK_KINDS and state_conflict(state, kind, body) is None:
            state = callback_target(kind, body)
    return state
