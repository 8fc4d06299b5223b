"""The pseudonyms an erasure writes in place of personal data (pure rules, no I/O).

A customer's pseudonym is `erased-<12 hex of sha256(salt, customer id)>`: deterministic for
the customer (every table, the API store, Stripe and the notification carry the same one), not
derived from anything personal, and, thanks to a random salt kept in the customer's erasure
record, not computable from the id by anyone who lacks the warehouse. The customer id itself
stays: it is our key, not personal data, and every amount and document hangs on it.

Other personal values (metadata values, event properties the catalog names in
`personal_properties:`) each get `erased-<12 hex of sha256(salt, customer id, value)>`: two
different values of one customer stay different, so a `unique_count` meter counts the same
after the erasure as before.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "erased-"
EMAIL_DOMAIN = "erased.invalid"
"""RFC 2606 reserves `.invalid`: a pseudonymised address can never deliver mail."""
MIN_SWEEP_LENGTH = 4
"""Shorter personal strings are not searched for in free text (they would match everywhere);
the places that hold them by structure are still rewritten."""


def new_salt() -> str:
    """The random salt of a customer's first erasure (kept in its record, reused after)."""
    return secrets.token_hex(16)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


def customer_pseudonym(customer_id: str, salt: str) -> str:
    """The name an erased customer is shown by, everywhere."""
    return f"{PREFIX}{_digest(salt, customer_id)}"


def email_pseudonym(pseudonym: str) -> str:
    """The email an erased customer is shown with (an address that cannot deliver)."""
    return f"{pseudonym}@{EMAIL_DOMAIN}"


def value_pseudonym(customer_id: str, salt: str, value: Any) -> str:
    """A personal value's pseudonym: equal values alike, different values apart."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return value                      # already a pseudonym: erasing twice changes nothing
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"{PREFIX}{_digest(salt, customer_id, text)}"


def is_pseudonym(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def erased_customer_fields(fields: Mapping[str, Any], customer_id: str, salt: str,
                           ) -> dict[str, Any]:
    """A customer's catalog fields (YAML, bulk table or CRM put) with the personal ones
    pseudonymised: name, email, every metadata value, the tax id and the address's postal code.
    The address's country and region stay: they are the tax jurisdiction the kept invoices were
    taxed under (legal retention), and whether a tax id is held still decides a reverse charge.
    The others are kept as they are."""
    pseudonym = customer_pseudonym(customer_id, salt)
    result = dict(fields)
    if "name" in result:
        result["name"] = pseudonym
    if result.get("email"):
        result["email"] = email_pseudonym(pseudonym)
    if result.get("tax_id"):
        result["tax_id"] = value_pseudonym(customer_id, salt, result["tax_id"])
    address = result.get("address")
    if isinstance(address, dict) and address.get("postal_code"):
        result["address"] = {**address, "postal_code": value_pseudonym(
            customer_id, salt, address["postal_code"])}
    metadata = result.get("metadata")
    if isinstance(metadata, dict):
        result["metadata"] = {key: value_pseudonym(customer_id, salt, value)
                              for key, value in metadata.items()}
    return result


def personal_fields_left(fields: Mapping[str, Any], customer_id: str, salt: str) -> list[str]:
    """Which personal fields of a customer's catalog entry still hold real data."""
    erased = erased_customer_fields(fields, customer_id, salt)
    return [name for name in ("name", "email", "metadata", "tax_id", "address")
            if name in fields and fields[name] not in (None, {}, "")
            and fields[name] != erased[name] and not (name == "name" and fields[name] ==
                                                     customer_id)]


def pseudonymise_properties(properties: Any, paths: Iterable[str], customer_id: str,
                            salt: str) -> tuple[Any, int]:
    """An event's properties with the value at each personal path (dotted for nesting)
    replaced by its pseudonym; returns (properties, values replaced). Non-objects are kept."""
    if not isinstance(properties, dict):
        return properties, 0
    result = json.loads(json.dumps(properties))
    replaced = 0
    for path in paths:
        parts = path.split(".")
        node: Any = result
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node and node[parts[-1]] is not None:
            new = value_pseudonym(customer_id, salt, node[parts[-1]])
            if new != node[parts[-1]]:
                node[parts[-1]] = new
                replaced += 1
    return result, replaced


def sweep_terms(values: Iterable[str | None], customer_id: str) -> list[str]:
    """The personal strings worth searching free text for: long enough, not the id, not
    already a pseudonym; longest first (so "Acme Corporation" goes before "Acme")."""
    terms = {v.strip() for v in values if isinstance(v, str)}
    keep = [t for t in terms if len(t) >= MIN_SWEEP_LENGTH and t != customer_id
            and not t.startswith(PREFIX)]
    return sorted(keep, key=lambda t: (-len(t), t))


def text_forms(term: str) -> list[str]:
    """How a string appears in stored text: as itself and as JSON escapes it (non-ASCII as
    \\uXXXX, quotes and backslashes escaped)."""
    forms = {term, json.dumps(term)[1:-1], json.dumps(term, ensure_ascii=False)[1:-1]}
    return sorted(forms, key=lambda f: (-len(f), f))


def replace_terms(text: str, replacements: Mapping[str, str]) -> str:
    """`text` with every case-insensitive occurrence of each term replaced (longest first)."""
    for term in sorted(replacements, key=lambda t: (-len(t), t)):
        text = re.sub(re.escape(term), lambda _m, new=replacements[term]: new, text,
                      flags=re.IGNORECASE)
    return text
