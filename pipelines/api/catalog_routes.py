"""Customers and subscriptions from the systems that own them (contract section 11): a CRM puts
each one with the YAML catalog's fields, and the next run bills it.

`PUT /api/v1/customers/{id}` and `PUT /api/v1/subscriptions/{id}` (scope `catalog:write`)
validate the fields with the catalog loader's own rules and wording (a 422 naming the field),
check what they name against the catalog's files as they are now (a subscription's plan and
customer, a customer's billing profile, overlapping meters), refuse an id the files define
(one definition per id: 409), and keep every change as a new version with its time and token;
the same fields again add nothing (200, `"change": "unchanged"`). `GET` gives the current
version and `GET .../versions` the history. The catalog loader reads the current versions at
the next run and checks them again; the API never opens the warehouse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipelines import settings
from pipelines.api import rules
from pipelines.api.store import Answer, ApiStore, TokenInfo, error_body
from pipelines.api.store.catalog_versions import Section
from pipelines.catalog.loader import (
    API_STORE_SOURCE,
    CatalogError,
    catalog_references,
    check_put_entry,
    field_of,
)

Endpoint = Callable[[Request], Awaitable[Response]]
SINGULAR = {"customers": "customer", "subscriptions": "subscription"}


def path_id_problem(entry_id: str) -> str | None:
    """Why an id in the path cannot be a customer or subscription id, or None: ids are what
    events and invoices carry, so text of 1 to 255 characters, no surrounding spaces, no
    control characters."""
    if not entry_id or not entry_id.strip():
        return "must not be empty"
    if entry_id != entry_id.strip():
        return "must not start or end with spaces"
    if len(entry_id) > rules.MAX_TEXT:
        return f"must be at most {rules.MAX_TEXT} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in entry_id):
        return "must not hold control characters"
    return None


class PathIdRefused(Exception):
    """The id in a customers or subscriptions path cannot be an id (answered 422)."""


async def path_id_refused(request: Request, exc: Exception) -> Response:
    """The 422 answer to a PathIdRefused (registered with the app's exception handlers)."""
    return JSONResponse(error_body("validation_error", str(exc), field="id"), status_code=422)


class CatalogHandlers:
    """The customers and subscriptions endpoints, over the API's handlers (token, body)."""

    def __init__(self, api: Any, store: ApiStore) -> None:
        self.api = api        # pipelines.api.app.ApiHandlers: tokens and bodies, one way
        self.store = store

    def routes(self, prefix: str) -> list[Route]:
        """The routes under `prefix` (/api/v1)."""
        routes = []
        for section in ("customers", "subscriptions"):
            routes += [
                Route(f"{prefix}/{section}/{{entry_id}}", self._put_endpoint(section),
                      methods=["PUT"]),
                Route(f"{prefix}/{section}/{{entry_id}}", self._get_endpoint(section),
                      methods=["GET"]),
                Route(f"{prefix}/{section}/{{entry_id}}/versions",
                      self._history_endpoint(section), methods=["GET"]),
            ]
        return routes

    def _put_endpoint(self, section: Section) -> Endpoint:
        async def put(request: Request) -> Response:
            token = await self.api.authorize(request, (rules.SCOPE_CATALOG_WRITE,))
            entry_id = self._path_id(request)
            body = await self.api._body(request)
            answer = await run_in_threadpool(self.put, section, entry_id, body.value, token)
            return JSONResponse(answer.body, status_code=answer.status_code)
        return put

    def _get_endpoint(self, section: Section) -> Endpoint:
        async def get(request: Request) -> Response:
            await self.api.authorize(request, (rules.SCOPE_CATALOG_WRITE,))
            entry_id = self._path_id(request)
            current = await run_in_threadpool(self.store.catalog_entry, section, entry_id)
            if current is None:
                return self._not_held(section, entry_id)
            return JSONResponse(current.as_json())
        return get

    def _history_endpoint(self, section: Section) -> Endpoint:
        async def history(request: Request) -> Response:
            await self.api.authorize(request, (rules.SCOPE_CATALOG_WRITE,))
            entry_id = self._path_id(request)
            versions = await run_in_threadpool(self.store.catalog_entry_history, section,
                                               entry_id)
            if not versions:
                return self._not_held(section, entry_id)
            return JSONResponse({"id": entry_id, "versions": [v.as_json() for v in versions]})
        return history

    @staticmethod
    def _path_id(request: Request) -> str:
        """The id in the path; a PathIdRefused (answered 422 naming `id`) when it cannot be
        one."""
        entry_id = request.path_params["entry_id"]
        problem = path_id_problem(entry_id)
        if problem is not None:
            raise PathIdRefused(f"id in the path: {problem}")
        return entry_id

    def _not_held(self, section: Section, entry_id: str) -> Response:
        return JSONResponse(error_body(
            f"{SINGULAR[section]}_not_found",
            f"the API holds no {SINGULAR[section]} {entry_id} (one defined in the catalog's "
            "files is read there, not here)"), status_code=404)

    def put(self, section: Section, entry_id: str, fields: Any, token: TokenInfo) -> Answer:
        """Decide a put: refused (503, 409, 422) or kept as a version (201 created, 200 updated
        or unchanged). Runs in a worker thread: it reads the catalog's files."""
        try:
            references = catalog_references(settings.catalog_path())
        except CatalogError as exc:
            return Answer(503, error_body("catalog_unavailable", "the catalog cannot be read "
                                          f"to check the {SINGULAR[section]}: {exc}"))
        elsewhere = references.places.get(section, {}).get(entry_id)
        if elsewhere is not None:
            return Answer(409, error_body(
                "defined_elsewhere",
                f"{SINGULAR[section]} {entry_id} is defined at {elsewhere}; a "
                f"{SINGULAR[section]} is defined in one place only: change it there, or "
                "remove it there before putting it here", field="id"))
        siblings: list[dict[str, Any]] = []
        if section == "subscriptions" and isinstance(fields, dict) and isinstance(
                fields.get("customer"), str):
            siblings = [v.fields for v in self.store.subscriptions_of(fields["customer"])]
        entry, faults = check_put_entry(
            section, entry_id, fields, references, siblings=siblings,
            customer_known=lambda c: self.store.catalog_entry("customers", c) is not None)
        if faults or entry is None:
            where = f"{API_STORE_SOURCE}: {section}[{entry_id}]"
            details = [rules.FieldError(field_of(f, where) or "body", f.message) for f in faults]
            return Answer(422, error_body(
                "validation_error", "; ".join(str(f) for f in faults) or "invalid",
                field=details[0].field if details else "body", details=details))
        kept = {**fields, "id": entry_id}
        result = self.store.put_catalog_entry(section, entry_id, kept, token_id=token.token_id,
                                              token_name=token.name, at=settings.now())
        return Answer(201 if result.change == "created" else 200,
                      {**result.current.as_json(), "change": result.change})
