"""Search: ``/v1/{resource}/search`` and Stripe's query language, as far as the sync needs it.

``metadata['billing_id']:'in_123' AND status:'open'``, ``email~'acme'``, ``total>=1000``,
``-status:'void'``, ``customer:'cus_1' OR customer:'cus_2'``. Clauses are joined by ``AND`` or
``OR`` (not both in one query, as in Stripe). ``:`` is an exact, case-insensitive match; ``~``
a substring match (at least 3 characters); ``>``, ``<``, ``>=``, ``<=`` compare numbers.
``field:null`` matches a missing/null value. Inside a quoted string a backslash escapes the next
character (``metadata['k']:"say \\"hi\\""``), as Stripe documents for quotes. Results page with
``page``/``next_page``; ``expand[]=total_count`` adds the number of matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import StripeAPIError, invalid
from .routes import Body, Params, route
from .state import RequestContext, State, page_limit

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<metadata>metadata\[\s*(?P<mq>['"])(?P<mkey>(?:\\.|(?!(?P=mq)).)*)(?P=mq)\s*\])
      | (?P<field>[A-Za-z_][A-Za-z0-9_.]*)
    )\s*(?P<op>>=|<=|:|~|>|<)\s*(?:
        (?P<q>['"])(?P<sval>(?:\\.|(?!(?P=q)).)*)(?P=q)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<null>null)
    )""",
    re.VERBOSE,
)
_JOIN = re.compile(r"\s+(AND|OR)\s+")


@dataclass(frozen=True)
class Clause:
    negated: bool
    field: str  # "metadata" for metadata clauses
    key: str | None  # the metadata key
    op: str
    value: Any  # str | float | None


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]
    conjunction: str  # AND | OR


def _bad(query: str, detail: str) -> StripeAPIError:
    return invalid(f"We were unable to parse the query: {detail} (query: {query})", "query")


def _unescape(text: str) -> str:
    """A quoted string's content: a backslash makes the next character literal (``\\"``,
    ``\\'``, ``\\\\``)."""
    return re.sub(r"\\(.)", r"\1", text)


def parse(query: str, fields: frozenset[str], resource: str) -> Query:
    text = query.strip()
    if not text:
        raise _bad(query, "the query is empty")
    clauses: list[Clause] = []
    joins: set[str] = set()
    pos = 0
    while True:
        negated = False
        rest = text[pos:].lstrip()
        skipped = len(text[pos:]) - len(rest)
        if rest.startswith("-"):
            negated = True
            skipped += 1
        m = _TOKEN.match(text, pos + skipped)
        if not m:
            raise _bad(query, f"unexpected input at position {pos + skipped}")
        if m.group("metadata"):
            field, key = "metadata", _unescape(m.group("mkey"))
        else:
            field, key = m.group("field"), None
        if field not in fields:
            raise invalid(
                f"Field `{field}` is an unsupported search field for resource `{resource}`. "
                f"See http://stripe.com/docs/search#query-fields-for-{resource} for a list of "
                "supported fields.",
                "query",
            )
        op = m.group("op")
        if m.group("q") is not None:
            value: Any = _unescape(m.group("sval"))
        elif m.group("num") is not None:
            value = float(m.group("num"))
        else:
            value = None
        if op == "~" and (not isinstance(value, str) or len(value) < 3):
            raise _bad(query, "the ~ operator needs a string of at least 3 characters")
        if op in (">", "<", ">=", "<=") and not isinstance(value, float):
            raise _bad(query, f"the {op} operator needs a number")
        clauses.append(Clause(negated, field, key, op, value))
        pos = m.end()
        if pos >= len(text.rstrip()):
            break
        j = _JOIN.match(text, pos)
        if not j:
            raise _bad(query, f"expected AND or OR at position {pos}")
        joins.add(j.group(1))
        pos = j.end()
    if len(joins) > 1:
        raise _bad(query, "AND and OR cannot be combined in one query")
    return Query(tuple(clauses), joins.pop() if joins else "AND")


def matches(query: Query, obj: dict[str, Any]) -> bool:
    results = (_clause(c, obj) != c.negated for c in query.clauses)
    return all(results) if query.conjunction == "AND" else any(results)


def _clause(c: Clause, obj: dict[str, Any]) -> bool:
    if c.field == "metadata":
        actual: Any = (obj.get("metadata") or {}).get(c.key or "")
    else:
        actual = obj
        for part in c.field.split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if isinstance(actual, dict) and "id" in actual:
            actual = actual["id"]
    if c.value is None:
        return actual is None
    if c.op in (">", "<", ">=", "<="):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return False
        return {
            ">": actual > c.value,
            "<": actual < c.value,
            ">=": actual >= c.value,
            "<=": actual <= c.value,
        }[c.op]
    if actual is None:
        return False
    if isinstance(c.value, float):
        return isinstance(actual, (int, float)) and float(actual) == c.value
    text = str(actual).lower()
    return c.value.lower() in text if c.op == "~" else text == c.value.lower()


def search_endpoint(kind: str, resource: str, params_prefix: str, fields: Iterable[str]) -> None:
    """``GET /v1/{resource}/search``: objects of ``kind`` matching the query on ``fields``."""
    searchable = frozenset(fields)

    @route("GET", f"/v1/{resource}/search", f"{params_prefix}SearchParams")
    def search(state: State, ctx: RequestContext, p: Params) -> Body:
        query = parse(p["query"], searchable, resource)
        limit = page_limit(p)
        offset = 0
        if "page" in p:
            token = p["page"]
            if not re.fullmatch(r"page_\d+", token):
                raise invalid(f"Invalid page: {token}", "page")
            offset = int(token[5:])
        ids = [
            i
            for i in state.ids_of(kind)
            if state.visible_to_search(i) and matches(query, state.objects[i])
        ]
        page = ids[offset : offset + limit]
        has_more = offset + limit < len(ids)
        out: dict[str, Any] = {
            "object": "search_result",
            "data": [state.render(i) for i in page],
            "has_more": has_more,
            "next_page": f"page_{offset + limit}" if has_more else None,
            "url": f"/v1/{resource}/search",
        }
        for path in p.get("expand", []):
            if path == "total_count":
                out["total_count"] = len(ids)
            else:
                state.expand_into(out, path)
        return out
