"""Request parameters as Stripe receives them.

Two halves:

* :func:`parse_form` decodes Stripe's form encoding (``metadata[k]=v``, ``lines[0][amount]=5``,
  ``expand[]=customer``) into nested dicts/lists of strings, as Stripe's Rails-style parser does.
* :func:`validate` checks that tree against the stripe SDK's own generated parameter TypedDicts
  (``stripe.params.InvoiceCreateParams`` ...), read with ``typing.get_type_hints`` recursively.
  The SDK is generated from Stripe's OpenAPI spec, so the accepted names, nesting, scalar types,
  enums and required keys are the API's, not a hand-kept list. Unknown names are rejected the way
  Stripe does: ``400 parameter_unknown "Received unknown parameter: lines[0][foo]"``.
"""

from __future__ import annotations

import functools
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import stripe._request_options as _request_options
import stripe.params
import typing_extensions
from stripe._stripe_context import StripeContext
from stripe._stripe_object import StripeObject

from .errors import StripeAPIError, invalid, missing_param, unknown_params

# Keys of the SDK's RequestOptions (api_key, idempotency_key ...): client-side options that the
# SDK turns into headers, never sent as parameters.
_OPTION_KEYS = frozenset(_request_options.RequestOptions.__annotations__)
# RequestOptions' annotations are flattened into every *Params TypedDict and refer to names of
# the RequestOptions module (Mapping, StripeContext under TYPE_CHECKING); resolve them there.
_LOCALNS = {**vars(_request_options), "StripeContext": StripeContext}


class Node:
    """A node of a parameter schema."""


@dataclass(frozen=True)
class Scalar(Node):
    kind: str  # str | int | bool | decimal | float | any


@dataclass(frozen=True)
class Enum(Node):
    values: tuple[str, ...]


@dataclass(eq=False)
class Obj(Node):
    name: str
    fields: dict[str, Node]
    required: frozenset[str]


@dataclass(frozen=True)
class Lst(Node):
    item: Node


@dataclass(frozen=True)
class Map(Node):
    value: Node


@dataclass(frozen=True)
class Choice(Node):
    options: tuple[Node, ...]
    allow_empty: bool  # Literal[''] in the union: an empty string unsets the field


STR, INT, BOOL, DEC, FLOAT, ANY = (
    Scalar(k) for k in ("str", "int", "bool", "decimal", "float", "any")
)
_SCALARS: dict[Any, Node] = {str: STR, int: INT, bool: BOOL, Decimal: DEC, float: FLOAT}

_schema_cache: dict[type, Obj] = {}


def schema_for(cls: type) -> Obj:
    """The schema of a parameter TypedDict (cached; safe for recursive definitions)."""
    cached = _schema_cache.get(cls)
    if cached is not None:
        return cached
    is_top = _request_options.RequestOptions in getattr(cls, "__orig_bases__", ())
    skip = _OPTION_KEYS if is_top else frozenset()
    node = Obj(cls.__name__, {}, frozenset(getattr(cls, "__required_keys__", ())) - skip)
    _schema_cache[cls] = node
    hints = typing.get_type_hints(cls, localns=_LOCALNS)
    for key, tp in hints.items():
        if key not in skip:
            node.fields[key] = _node(tp)
    return node


@functools.cache
def params_schema(name: str) -> Obj:
    """Schema of ``stripe.params.<name>``, e.g. ``InvoiceCreateParams``."""
    return schema_for(getattr(stripe.params, name))


def _node(tp: Any) -> Node:
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp is Any or tp is object:
        return ANY
    if typing_extensions.is_typeddict(tp):
        return schema_for(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return Enum(tuple(str(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        return _union([_node(a) for a in args])
    if origin is list:
        return Lst(_node(args[0]))
    if origin in (dict, Mapping):
        return Map(_node(args[1]))
    if isinstance(origin, type) and issubclass(origin, StripeObject):
        return Map(_node(args[0]) if args else ANY)
    if isinstance(tp, type) and issubclass(tp, StripeObject):
        return Map(ANY)
    return ANY


def _union(options: list[Node]) -> Node:
    values = [v for o in options if isinstance(o, Enum) for v in o.values]
    allow_empty = "" in values
    values = [v for v in values if v != ""]
    rest: list[Node] = []
    for o in options:
        if isinstance(o, Enum) or o in rest:
            continue
        rest.append(o)
    if values:
        # The SDK widens enums to `Literal[...]|str` for forward compatibility; the API itself
        # validates them, so the emulator does too.
        rest = [Enum(tuple(values)), *(o for o in rest if o != STR)]
    if len(rest) == 1 and not allow_empty:
        return rest[0]
    return Choice(tuple(rest), allow_empty)


# --------------------------------------------------------------------------- form decoding

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEG_RE = re.compile(r"\[([^\[\]]*)\]")


def parse_form(text: str) -> dict[str, Any]:
    """Decode ``a[b][0][c]=v&expand[]=x`` into nested dicts (indexes stay string keys)."""
    root: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True):
        m = _KEY_RE.match(key)
        segs = [m.group(1), *_SEG_RE.findall(m.group(2))] if m else [key]
        _insert(root, segs, value, segs[0])
    return root


def _insert(node: dict[str, Any], segs: list[str], value: str, path: str) -> None:
    head, rest = segs[0], segs[1:]
    if not rest:
        if isinstance(node.get(head), (dict, list)):
            raise invalid("Invalid object", path)
        node[head] = value
        return
    if rest[0] == "":  # `name[]`: append
        seq = node.setdefault(head, [])
        if not isinstance(seq, list):
            raise invalid("Invalid array", path)
        if len(rest) == 1:
            seq.append(value)
            return
        if seq and isinstance(seq[-1], dict) and rest[1] not in seq[-1]:
            target = seq[-1]
        else:
            target = {}
            seq.append(target)
        _insert(target, rest[1:], value, f"{path}[]")
        return
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise invalid("Invalid object", path)
    _insert(child, rest, value, f"{path}[{rest[0]}]")


# --------------------------------------------------------------------------- validation


class _Walk:
    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.missing: list[str] = []


def validate(params_class: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check decoded parameters against ``stripe.params.<params_class>`` and coerce scalars.

    Returns the parameters with ints, bools and Decimals in place of strings. An empty string
    stays ``""`` where the API allows unsetting the field. Raises :class:`StripeAPIError`.
    """
    walk = _Walk()
    out = _coerce(params_schema(params_class), dict(raw), "", walk)
    if walk.unknown:
        raise unknown_params(walk.unknown)
    if walk.missing:
        raise missing_param(walk.missing[0])
    return out


def _join(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if path else str(key)


def _one_of(values: tuple[str, ...]) -> str:
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return f"{values[0]} or {values[1]}"
    return ", ".join(values[:-1]) + f", or {values[-1]}"


def _empty(path: str) -> StripeAPIError:
    return invalid(
        f"You passed an empty string for '{path}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{path}' cannot be unset. You should remove '{path}' "
        "from your request or supply a non-empty value.",
        path,
        "parameter_invalid_empty",
    )


def _as_list(raw: Any) -> list[Any] | None:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, dict) and all(k.isdigit() for k in raw):
        return [raw[k] for k in sorted(raw, key=int)]
    return None


def _coerce(node: Node, raw: Any, path: str, walk: _Walk) -> Any:
    if isinstance(node, Choice):
        if raw == "" and node.allow_empty:
            return ""
        return _coerce_choice(node, raw, path, walk)
    if isinstance(node, Obj):
        if not isinstance(raw, dict):
            raise _empty(path) if raw == "" else invalid("Invalid object", path)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            child = node.fields.get(key)
            if child is None:
                walk.unknown.append(_join(path, key))
                continue
            out[key] = _coerce(child, value, _join(path, key), walk)
        walk.missing.extend(_join(path, k) for k in sorted(node.required) if k not in raw)
        return out
    if isinstance(node, Map):
        if not isinstance(raw, dict):
            raise _empty(path) if raw == "" else invalid("Invalid object", path)
        return {k: _coerce(node.value, v, _join(path, k), walk) for k, v in raw.items()}
    if isinstance(node, Lst):
        items = _as_list(raw)
        if items is None:
            raise _empty(path) if raw == "" else invalid("Invalid array", path)
        return [_coerce(node.item, v, _join(path, i), walk) for i, v in enumerate(items)]
    if isinstance(node, Enum):
        if not isinstance(raw, str):
            raise invalid(f"Invalid {path}: must be one of {_one_of(node.values)}", path)
        if raw == "":
            raise _empty(path)
        if raw not in node.values:
            raise invalid(f"Invalid {path}: must be one of {_one_of(node.values)}", path)
        return raw
    if isinstance(node, Scalar):
        return _coerce_scalar(node.kind, raw, path)
    return raw


def _coerce_choice(node: Choice, raw: Any, path: str, walk: _Walk) -> Any:
    container = isinstance(raw, (dict, list))
    preferred = [o for o in node.options if isinstance(o, (Obj, Map, Lst)) == container]
    if not preferred:
        preferred = list(node.options)
    if container and any(isinstance(o, Lst) for o in preferred) and _as_list(raw) is not None:
        preferred.sort(key=lambda o: not isinstance(o, Lst))
    first_error: StripeAPIError | None = None
    for option in preferred:
        trial = _Walk()
        try:
            value = _coerce(option, raw, path, trial)
        except StripeAPIError as exc:
            first_error = first_error or exc
            continue
        walk.unknown.extend(trial.unknown)
        walk.missing.extend(trial.missing)
        return value
    assert first_error is not None
    raise first_error


def _coerce_scalar(kind: str, raw: Any, path: str) -> Any:
    if kind == "any":
        return raw
    if not isinstance(raw, str):
        raise invalid(f"Invalid {'string' if kind == 'str' else kind}: {raw!r}", path)
    if kind == "str":
        if raw == "":
            raise _empty(path)
        return raw
    if raw == "":
        raise _empty(path)
    if kind == "int":
        if re.fullmatch(r"-?\d+", raw):
            return int(raw)
        raise invalid(f"Invalid integer: {raw}", path, "parameter_invalid_integer")
    if kind == "bool":
        if raw in ("true", "false"):
            return raw == "true"
        raise invalid(f"Invalid boolean: {raw}", path)
    if kind == "decimal":
        try:
            value = Decimal(raw)
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            raise invalid(f"Invalid decimal: {raw}", path)
        return value
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise invalid(f"Invalid float: {raw}", path) from None
    return raw
