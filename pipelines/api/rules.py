"""What the integration API accepts, as pure functions: token scopes, the shape of each callback
body (contract section 5) and whether a callback is allowed in an invoice's state.

The API checks every call against the invoice state the pipeline last published, *projected* by
the calls it already accepted and the pipeline has not yet reflected, so two conflicting
callbacks can never both be accepted. The pipeline checks each call again when it applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipelines.rating.lifecycle import PAYMENT_TRIGGERS, payment_path
from pipelines.settings import parse_instant

SCOPE_INVOICES_SYNC = "invoices:sync"
SCOPE_PAYMENTS_WRITE = "payments:write"
SCOPE_WEBHOOKS_STRIPE = "webhooks:stripe"
SCOPES = (SCOPE_INVOICES_SYNC, SCOPE_PAYMENTS_WRITE, SCOPE_WEBHOOKS_STRIPE)

DRAFT_SYNCHRONIZED = "custom_invoicing.draft_synchronized"
ISSUING_SYNCHRONIZED = "custom_invoicing.issuing_synchronized"
PAYMENT_STATUS = "custom_invoicing.payment_status"
STATEMENT = "custom_invoicing.statement"
STRIPE_EVENT = "stripe.event"
KINDS = (DRAFT_SYNCHRONIZED, ISSUING_SYNCHRONIZED, PAYMENT_STATUS, STATEMENT, STRIPE_EVENT)
CALLBACK_KINDS = (DRAFT_SYNCHRONIZED, ISSUING_SYNCHRONIZED, PAYMENT_STATUS)

# the scope a token needs for each kind of call
KIND_SCOPE = {
    DRAFT_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    ISSUING_SYNCHRONIZED: SCOPE_INVOICES_SYNC,
    PAYMENT_STATUS: SCOPE_PAYMENTS_WRITE,
    STATEMENT: SCOPE_INVOICES_SYNC,
    STRIPE_EVENT: SCOPE_WEBHOOKS_STRIPE,
}

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
        except ValueError:
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
        check.text(invoicing, "invoice_number", "invoicing", required=False)
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
        check.text(invoicing, "invoice_number", "invoicing", required=False)
        check.instant(invoicing, "sent_to_customer_at", "invoicing")
    payment = check.obj(root.get("payment"), "payment", ("external_id",), required=False)
    if payment is not None:
        check.text(payment, "external_id", "payment", required=False)
    return check.errors


def validate_payment_status(body: Any) -> list[FieldError]:
    """Problems with a payment/status body."""
    check = _Checker()
    root = check.obj(body, "", ("trigger",), required=True)
    if root is not None:
        trigger = root.get("trigger")
        if trigger is None:
            check.error("trigger", "required")
        elif trigger not in PAYMENT_TRIGGERS:
            check.error("trigger", f"{trigger!r} is not one of {', '.join(PAYMENT_TRIGGERS)}")
    return check.errors


STATEMENT_INVOICE_FIELDS = ("external_id", "invoice_id", "invoice_number",
                            "external_customer_id", "currency", "total", "status", "amount_paid",
                            "amount_refunded", "lines")
STATEMENT_LINE_FIELDS = ("external_id", "line_id", "amount")


def validate_statement(body: Any) -> list[FieldError]:
    """Problems with an invoice statement: `as_of` (an instant with offset) and `invoices`, the
    integration's complete list of invoices with exact amounts (decimal strings), each external
    id once. `invoice_id` may be null or an id we do not know (an orphan): a statement is not
    about one invoice, so it is never refused for an unknown invoice."""
    check = _Checker()
    root = check.obj(body, "", ("as_of", "invoices"), required=True)
    if root is None:
        return check.errors
    check.instant(root, "as_of", "")
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
    return check.errors


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
    raise ValueError(f"{kind!r} is not a custom invoicing callback")


def state_conflict(state: str, kind: str, body: Mapping[str, Any]) -> StateConflict | None:
    """None when the callback is allowed in `state`, else why not. A payment trigger for the
    state the invoice is already in is a conflict too (`already_in_state`): only an exact replay
    of the call that got it there is answered 202 again."""
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
    raise ValueError(f"{kind!r} is not a custom invoicing callback")


def project(state: str, calls: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """The invoice state once the given accepted calls (kind, body), in arrival order, are
    applied; a call no longer allowed in the state reached is skipped (the pipeline will reject
    it)."""
    for kind, body in calls:
        if kind in CALLBACK_KINDS and state_conflict(state, kind, body) is None:
            state = callback_target(kind, body)
    return state
