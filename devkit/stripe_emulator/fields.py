"""How request parameters become object fields, the same way for every Stripe object.

Stripe's metadata semantics and limits, the rejection of parameters the emulator does not model,
``""`` meaning "unset", addresses, and the ``previous_attributes`` of an update.
"""

from __future__ import annotations

from typing import Any

from .errors import StripeAPIError, invalid

_MAX_METADATA_KEYS, _MAX_KEY, _MAX_VALUE = 50, 40, 500
ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def merge_metadata(current: dict[str, str], update: Any, param: str = "metadata") -> dict[str, str]:
    """Stripe's metadata semantics: ``""`` clears everything, a key set to ``""`` is removed."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in update.items():
        if len(key) > _MAX_KEY:
            raise invalid(
                f"Metadata keys can have up to {_MAX_KEY} characters, but you passed in a key "
                f"that is {len(key)} characters. Invalid key: {key}",
                f"{param}[{key}]",
            )
        if value == "":
            merged.pop(key, None)
            continue
        if len(value) > _MAX_VALUE:
            raise invalid(
                f"Metadata values can have up to {_MAX_VALUE} characters, but you passed in a "
                f"value that is {len(value)} characters. Invalid value: {value}",
                f"{param}[{key}]",
            )
        merged[key] = value
    if len(merged) > _MAX_METADATA_KEYS:
        raise invalid(
            f"You can have up to {_MAX_METADATA_KEYS} metadata keys, but you passed {len(merged)}.",
            param,
        )
    return merged


def new_metadata(p: dict[str, Any]) -> dict[str, str]:
    """The metadata of an object being created (its ``metadata`` parameter, checked)."""
    return merge_metadata({}, p.get("metadata", {}))


def unsupported(p: dict[str, Any], *names: str) -> None:
    """Reject parameters the API accepts but the emulator does not model (money would differ)."""
    for name in names:
        head, _, sub = name.partition(".")
        value = p.get(head)
        if sub and isinstance(value, dict):
            value = value.get(sub)
        if value in (None, "", [], {}, False):
            continue
        raise StripeAPIError(
            400,
            f"The Stripe emulator does not support `{name.replace('.', '[')}"
            f"{']' if sub else ''}`; remove it or test against Stripe test mode.",
            code="emulator_unsupported_parameter",
            param=name,
        )


def nullable(value: Any) -> Any:
    """A parameter that ``""`` unsets: ``None`` for ``""``, else the value."""
    return None if value == "" else value


def apply_changes(obj: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """Apply ``updates`` to ``obj``; return Stripe's ``previous_attributes`` for what changed."""
    previous: dict[str, Any] = {}
    for key, value in updates.items():
        if obj.get(key) != value:
            previous[key] = obj.get(key)
            obj[key] = value
    return previous


def address(value: Any) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    return {k: value.get(k) for k in ADDRESS_KEYS}


def shipping(value: Any) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    return {
        "address": address(value.get("address") or {}),
        "name": value.get("name"),
        "phone": value.get("phone"),
    }
