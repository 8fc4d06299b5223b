"""What the properties of a sample event carry: for each event name, one recipe per property
the catalog's meters read (their value, unique and filter properties) plus a cosmetic one, filled
vectorised from uniform random u32 columns.

- the ``value_property`` (a dotted path becomes nested objects: ``resources.minutes`` ->
  ``{"resources": {"minutes": 12}}``), with values sensible per name: tokens 10..4000, storage
  in GB 1.00..500.00 (half as a decimal string, half as a number), minutes 1..240, others 1..100;
- the ``unique_property``: a per-customer pool of ids such as ``user_0042``;
- the filter properties, which match for about 90% of the events and not for the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from pipelines.catalog.models import Meter

#: Random columns are uniform unsigned 32-bit integers: a share s is ``u < int(s * U32)``.
U32 = 1 << 32
_FILTER_MATCH_SHARE = 0.90


@dataclass(frozen=True)
class PropertyRecipe:
    """How one property of an event is filled: JSON literal text per row."""

    path: tuple[str, ...]
    kind: Literal["int", "decimal", "unique", "choice"]
    lo: int = 0
    hi: int = 0
    string_share: float = 0.0
    prefix: str = ""
    choices: tuple[str, ...] = ()       # JSON literals
    cumulative: tuple[float, ...] = ()  # cumulative shares of the choices
    dtype: Any = pl.String


def _value_recipe(path: tuple[str, ...]) -> PropertyRecipe:
    name = path[-1].lower()
    if "token" in name:
        return PropertyRecipe(path, "int", 10, 4000, dtype=pl.Int64)
    if name in ("gb", "gib") or "storage" in name or name.endswith("_gb"):
        return PropertyRecipe(path, "decimal", 100, 50_000, string_share=0.5,
                              dtype=pl.Decimal(18, 2))
    if "minute" in name:
        return PropertyRecipe(path, "int", 1, 240, dtype=pl.Int64)
    if "second" in name or "duration" in name:
        return PropertyRecipe(path, "int", 1, 3600, dtype=pl.Int64)
    if "byte" in name:
        return PropertyRecipe(path, "int", 1_000, 50_000_000, dtype=pl.Int64)
    if any(word in name for word in ("amount", "price", "cost")):
        return PropertyRecipe(path, "decimal", 1, 100_000, dtype=pl.Decimal(18, 2))
    return PropertyRecipe(path, "int", 1, 100, dtype=pl.Int64)


def _unique_recipe(path: tuple[str, ...]) -> PropertyRecipe:
    name = path[-1]
    prefix = name[:-3] if name.endswith("_id") and len(name) > 3 else name
    return PropertyRecipe(path, "unique", prefix=prefix, dtype=pl.String)


def _choice_recipe(path: tuple[str, ...], values: list[Any]) -> PropertyRecipe:
    """A filter property: one of the meters' filter values ~90% of the time, another value else."""
    distinct: list[Any] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    typed = [v for v in distinct if v is not None]
    if typed and all(isinstance(v, bool) for v in typed):
        other: Any = not typed[0] if len(set(typed)) == 1 else None
        dtype: Any = pl.Boolean
    elif typed and all(isinstance(v, int) and not isinstance(v, bool) for v in typed):
        other, dtype = max(typed) + 1, pl.Int64
    elif typed and all(isinstance(v, int | float) and not isinstance(v, bool) for v in typed):
        other, dtype = max(typed) + 1.5, pl.Float64
    else:
        spare = [r for r in ("eu", "us", "apac", "latam") if r not in distinct]
        other, dtype = (spare[0] if spare else "other"), pl.String
    literals = [json.dumps(v) for v in distinct] + [json.dumps(other)]
    share = _FILTER_MATCH_SHARE / len(distinct)
    cumulative = [share * (i + 1) for i in range(len(distinct))] + [1.0]
    return PropertyRecipe(path, "choice", choices=tuple(literals),
                          cumulative=tuple(cumulative), dtype=dtype)


def _cosmetic_recipes(event_name: str) -> list[PropertyRecipe]:
    """A property no meter reads, for realism (the contract's example carries an endpoint)."""
    name = event_name.lower()
    if name.startswith("api"):
        options = ["/v1/users", "/v1/orders", "/v1/search", "/v1/chat/completions"]
        key = "endpoint"
    elif "export" in name:
        options, key = ["csv", "pdf", "xlsx"], "format"
    else:
        return []
    literals = tuple(json.dumps(o) for o in options)
    cumulative = tuple((i + 1) / len(options) for i in range(len(options)))
    return [PropertyRecipe((key,), "choice", choices=literals, cumulative=cumulative,
                           dtype=pl.String)]


def property_recipes(event_name: str, meters: Sequence[Meter]) -> list[PropertyRecipe]:
    """Every property the catalog's meters of this event name read, without clashing paths."""
    filter_values: dict[tuple[str, ...], list[Any]] = {}
    for meter in meters:
        for prop, value in meter.filters.items():
            filter_values.setdefault(tuple(prop.split(".")), []).append(value)
    recipes = [_choice_recipe(path, values) for path, values in filter_values.items()]
    for meter in meters:
        if meter.unique_property:
            recipes.append(_unique_recipe(tuple(meter.unique_property.split("."))))
        if meter.value_property:
            recipes.append(_value_recipe(tuple(meter.value_property.split("."))))
    recipes += _cosmetic_recipes(event_name)
    kept: list[PropertyRecipe] = []
    for recipe in recipes:
        clash = any(
            k.path[: len(recipe.path)] == recipe.path or recipe.path[: len(k.path)] == k.path
            for k in kept
        )
        if not clash:
            kept.append(recipe)
    return kept


def event_weight(event_name: str) -> int:
    """How often an event name is sent, relative to the others: requests often, snapshots rarely."""
    name = event_name.lower()
    if "request" in name or name.startswith("api"):
        return 40
    if "completion" in name or "token" in name:
        return 20
    if "login" in name or "session" in name:
        return 8
    if "compute" in name or "run" in name or "job" in name:
        return 6
    if "storage" in name or "snapshot" in name or "export" in name:
        return 1
    return 4


def _recipe_expr(recipe: PropertyRecipe, value: pl.Expr, aux: pl.Expr) -> pl.Expr:
    """The JSON literal of a recipe, from two uniform random u32 columns."""
    if recipe.kind == "int":
        return (value % (recipe.hi - recipe.lo + 1) + recipe.lo).cast(pl.String)
    if recipe.kind == "decimal":
        cents = value % (recipe.hi - recipe.lo + 1) + recipe.lo
        text = pl.concat_str([(cents // 100).cast(pl.String), pl.lit("."),
                              (cents % 100).cast(pl.String).str.zfill(2)])
        if recipe.string_share <= 0:
            return text
        quoted = pl.concat_str([pl.lit('"'), text, pl.lit('"')])
        return pl.when(aux < int(recipe.string_share * U32)).then(quoted).otherwise(text)
    if recipe.kind == "unique":
        number = (value % pl.col("pool") + 1).cast(pl.String).str.zfill(4)
        return pl.concat_str([pl.lit(f'"{recipe.prefix}_'), number, pl.lit('"')])
    expr: Any = pl
    for literal, bound in zip(recipe.choices[:-1], recipe.cumulative[:-1], strict=True):
        expr = expr.when(value < int(bound * U32)).then(pl.lit(literal))
    return expr.otherwise(pl.lit(recipe.choices[-1]))


def properties_json(recipes: Sequence[PropertyRecipe], values: Sequence[pl.Expr],
                    auxes: Sequence[pl.Expr]) -> pl.Expr:
    """The properties object as JSON text, nesting dotted paths."""
    tree: dict[str, Any] = {}
    for recipe, value, aux in zip(recipes, values, auxes, strict=True):
        node = tree
        for part in recipe.path[:-1]:
            node = node.setdefault(part, {})
        node[recipe.path[-1]] = _recipe_expr(recipe, value, aux)

    def render(node: dict[str, Any]) -> list[pl.Expr]:
        parts: list[pl.Expr] = [pl.lit("{")]
        for i, (key, child) in enumerate(node.items()):
            parts.append(pl.lit(("," if i else "") + json.dumps(key) + ":"))
            parts.extend(render(child) if isinstance(child, dict) else [child])
        parts.append(pl.lit("}"))
        return parts

    return pl.concat_str(render(tree))


def properties_struct(recipes: Sequence[PropertyRecipe]) -> pl.Struct:
    """The Parquet struct holding every property of these recipes (the first path wins a clash)."""
    tree: dict[str, Any] = {}
    for recipe in recipes:
        node = tree
        for part in recipe.path[:-1]:
            existing = node.setdefault(part, {})
            if not isinstance(existing, dict):
                break
            node = existing
        else:
            node.setdefault(recipe.path[-1], recipe.dtype)

    def build(node: dict[str, Any]) -> pl.Struct:
        return pl.Struct({k: build(v) if isinstance(v, dict) else v for k, v in node.items()})

    return build(tree)
