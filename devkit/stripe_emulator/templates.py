"""Endpoint templates shared by every Stripe object: retrieve, list, delete, update, render.

Most objects' retrieve and list endpoints differ only in the object type, the path, the SDK
parameter class and which list parameters filter by equality; they are declared with
:func:`retrieve_endpoint` and :func:`list_endpoint` instead of being written out per object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .fields import apply_changes, unsupported
from .routes import Body, Params, route
from .state import RequestContext, State, list_object

Predicate = Callable[[dict[str, Any]], bool]
Item = TypeVar("Item")


def rendered(state: State, oid: str, p: Params) -> Body:
    """The object as the API answers it, with the request's ``expand`` applied."""
    return state.render(oid, p.get("expand", ()))


def deleted_answer(kind: str, oid: str) -> Body:
    """What Stripe answers for a deleted object."""
    return {"id": oid, "object": kind, "deleted": True}


def update_and_emit(
    state: State, ctx: RequestContext, obj: dict[str, Any], updates: dict[str, Any], event: str
) -> None:
    """Apply ``updates``; emit ``event`` with ``previous_attributes`` if anything changed."""
    previous = apply_changes(obj, updates)
    if previous:
        state.emit(event, obj["id"], ctx, previous)


def embedded_list(
    items: Sequence[Item],
    url: str,
    render: Callable[[Item], dict[str, Any]],
    limit: int | None = None,
) -> dict[str, Any]:
    """A list embedded in its parent object (an invoice's lines, a charge's refunds)."""
    page = items if limit is None else items[:limit]
    has_more = limit is not None and len(items) > limit
    return list_object([render(i) for i in page], has_more, url)


def retrieve_endpoint(
    kind: str, collection: str, params_prefix: str, *, answer_deleted: bool = False
) -> None:
    """``GET {collection}/{id}``: the object, with ``expand``; 404 for another id.

    ``answer_deleted``: a deleted object answers ``{"deleted": true}`` (customers) instead of 404.
    """

    @route("GET", collection + "/{id}", f"{params_prefix}RetrieveParams")
    def retrieve(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
        if answer_deleted and state.is_deleted(kind, id):
            return deleted_answer(kind, id)
        state.get(kind, id)
        return rendered(state, id, p)


def delete_endpoint(
    kind: str,
    collection: str,
    params_prefix: str,
    *,
    event: str | None = None,
    forget: Callable[[State, str], object] | None = None,
) -> None:
    """``DELETE {collection}/{id}``: the object is gone; later reads of its id answer 404.

    ``event`` is emitted (with the object as it was) before it goes; ``forget(state, id)`` drops
    what the state keeps beside the object.
    """

    @route("DELETE", collection + "/{id}", f"{params_prefix}DeleteParams")
    def delete(state: State, ctx: RequestContext, p: Params, id: str) -> Body:
        state.get(kind, id)
        if event is not None:
            state.emit(event, id, ctx)
        state.remove(id)
        if forget is not None:
            forget(state, id)
        return deleted_answer(kind, id)


def list_endpoint(
    kind: str,
    collection: str,
    params_prefix: str,
    *,
    filters: Sequence[str] = (),
    unsupported_params: Sequence[str] = (),
    where: Callable[[Params], Predicate] | None = None,
) -> None:
    """``GET {collection}``: newest first, cursor-paginated, ``created`` and ``expand``.

    ``filters`` are list parameters an object's field of the same name must equal when given;
    ``where(params)`` checks other parameters and returns a further test of each object.
    """

    @route("GET", collection, f"{params_prefix}ListParams")
    def list_objects(state: State, ctx: RequestContext, p: Params) -> Body:
        unsupported(p, *unsupported_params)
        extra = where(p) if where is not None else None

        def keep(o: dict[str, Any]) -> bool:
            equal = all(name not in p or o[name] == p[name] for name in filters)
            return equal and (extra is None or extra(o))

        return state.list_response(state.ids_of(kind, keep), p, collection)
