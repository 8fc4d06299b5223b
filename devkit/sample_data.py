"""Sample usage events for demos, tests and benchmarks (contract section 1).

`generate_events` plans a month of realistic usage for the customers of a catalog and
`write_jsonl`, `write_csv` and `write_parquet` stream it to files, with a few deliberate faults
whose counts are known in advance, so ingestion can be checked against them.

What the events look like:

- Only customers with a subscription active in the month send events, only while it is active
  (a subscription starting on the 20th sends from the 20th), and only the event names of the
  meters of its plan. ``customers`` caps how many catalog customers are used (the first ones in
  catalog order); customers are never invented, since events of unknown customers are rejected.
  For larger volumes write a catalog with `write_benchmark_catalog`.
- Properties carry what the meters of that event name read: the ``value_property`` (a dotted
  path becomes nested objects: ``resources.minutes`` -> ``{"resources": {"minutes": 12}}``),
  the ``unique_property`` (a per-customer pool of ids such as ``user_0042``), and the filter
  properties, which match for about 90% of the events and not for the others.
  Values are sensible per name: tokens 10..4000, storage in GB 1.00..500.00 (half as a decimal
  string, half as a number), minutes 1..240, others 1..100.
- Timestamps spread over the month (UTC instants in [month start, month end)), mostly in file
  order with about 2% arriving up to six hours late; most end in ``Z``, some carry ``+02:00`` or
  ``-05:00``, about 30% have milliseconds. Events of the current month may lie in the future:
  set ``BILLING_NOW`` when ingesting them.
- Sources ``gateway-eu``, ``gateway-us`` and ``batch-import``; event ids are unique (so unique per
  source) and depend on month and seed: the same seed and month give the same ids.
- ``cloudevents_share`` of the events are CloudEvents 1.0 structured JSON (id, source, type,
  subject, time, data); the others are native. In CSV and Parquet every row is native.

Deliberate faults, each line one kind (`FAULT_KINDS`):

- ``duplicate``: an exact copy of an earlier line, sometimes right after it, sometimes much
  later (another part file when written in parts). Ingestion drops and counts it.
- ``conflict``: the same (source, event_id) as an earlier event with another timestamp.
  Quarantined with reason ``conflict``; the first one stands.
- bad lines, rejected with their reason code (`REJECT_REASONS`): ``malformed_line`` (truncated
  JSON; JSON Lines only), ``missing_field`` (no customer_id, or an empty event_name),
  ``timestamp_without_offset``, ``properties_not_object`` (a list; not in Parquet with struct
  properties), ``unknown_customer``, ``event_id_too_long`` (300 characters).

Defaults: 0.1% of ``events`` each for duplicates, conflicts and bad lines, at least one
duplicate and one conflict and one bad line of every reason once ``events`` >= 100 (none below).
``events`` counts the valid events; the file holds ``events + duplicates + conflicts + bad lines``
lines. `SampleSummary.for_format` gives the counts for CSV and Parquet, and every writer returns
what it wrote per file, so a test can check received = accepted + duplicates + rejected.

Output is deterministic: the same catalog, arguments and seed give the same bytes (with these
pinned versions of polars and Python). Events are produced in chunks of ``chunk_events``; the
chunk size is part of the recipe. Columns are generated vectorised from random bytes, so ten
million events are a matter of seconds and memory stays bounded by the chunk size.
"""

from __future__ import annotations

import gzip as gzip_module
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipelines.catalog.models import Catalog, Meter, Subscription

DUPLICATE = "duplicate"
CONFLICT = "conflict"
MALFORMED_LINE = "malformed_line"
MISSING_FIELD = "missing_field"
TIMESTAMP_WITHOUT_OFFSET = "timestamp_without_offset"
PROPERTIES_NOT_OBJECT = "properties_not_object"
UNKNOWN_CUSTOMER = "unknown_customer"
EVENT_ID_TOO_LONG = "event_id_too_long"

#: Reason codes of bad lines, in the order they are dealt out.
REJECT_REASONS: tuple[str, ...] = (
    MALFORMED_LINE,
    MISSING_FIELD,
    TIMESTAMP_WITHOUT_OFFSET,
    PROPERTIES_NOT_OBJECT,
    UNKNOWN_CUSTOMER,
    EVENT_ID_TOO_LONG,
)
#: The kind of each generated line: a valid event, or one deliberate fault.
KINDS: tuple[str, ...] = ("event", DUPLICATE, CONFLICT, *REJECT_REASONS)
FAULT_KINDS: tuple[str, ...] = KINDS[1:]

#: Columns of CSV and Parquet files (native shape).
NATIVE_COLUMNS: tuple[str, ...] = (
    "event_id", "event_name", "customer_id", "timestamp", "properties", "source",
    "subscription_id",
)
Format = Literal["jsonl", "csv", "parquet", "parquet_struct"]

SOURCES: tuple[str, ...] = ("gateway-eu", "gateway-us", "batch-import")
_SOURCE_SHARES = (0.45, 0.45, 0.10)
_OFFSETS: tuple[tuple[str, int], ...] = (("Z", 0), ("+02:00", 120), ("-05:00", -300))
_OFFSET_SHARES = (0.80, 0.12, 0.08)
_MILLIS_SHARE = 0.30
_LATE_SHARE = 0.02
_LATE_MS = 6 * 3600 * 1000
_SUBSCRIPTION_ID_SHARE = 0.30
_FILTER_MATCH_SHARE = 0.90
_FAULT_SHARE = 0.001
_MAX_EVENT_ID = 255
_TOO_LONG_ID = 300
_DEFAULT_CHUNK = 1_000_000
_U32 = 1 << 32
_ID_PLAIN = re.compile(r'^[^"\\\x00-\x1f]*$')


# ---------------------------------------------------------------------------------------------
# Public results


@dataclass(frozen=True)
class SampleSummary:
    """What a generated sample holds, as JSON Lines (`for_format` for the other formats).

    ``bad_lines`` maps reason code to count. Every line is received; valid events are accepted,
    duplicates are dropped, conflicts and bad lines are rejected (``rejected`` includes
    ``conflict``).
    """

    events_valid: int
    duplicates: int
    conflicts: int
    bad_lines: dict[str, int]
    customers: int
    format: Format = "jsonl"

    @property
    def bad_total(self) -> int:
        return sum(self.bad_lines.values())

    @property
    def rejected(self) -> dict[str, int]:
        reasons = {CONFLICT: self.conflicts} if self.conflicts else {}
        return {**reasons, **{k: v for k, v in self.bad_lines.items() if v}}

    @property
    def total_lines(self) -> int:
        return self.events_valid + self.duplicates + self.conflicts + self.bad_total

    def for_format(self, fmt: Format) -> SampleSummary:
        """The counts once written as ``fmt``: tabular files cannot hold some faults."""
        dropped = _excluded_kinds(fmt)
        bad = {k: (0 if k in dropped else v) for k, v in self.bad_lines.items()}
        return SampleSummary(self.events_valid, self.duplicates, self.conflicts, bad,
                             self.customers, fmt)


@dataclass(frozen=True)
class FileSummary:
    """What one written file holds: every line is accepted, a duplicate, or rejected."""

    path: Path
    lines: int
    accepted: int
    duplicates: int
    rejected: dict[str, int]
    accepted_by_customer: dict[str, dict[str, int]]

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True)
class WriteResult:
    """The files a writer produced (one unless ``parts`` > 1), with totals over them."""

    files: tuple[FileSummary, ...]

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.files)

    @property
    def rejected(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.rejected)
        return dict(total)


# ---------------------------------------------------------------------------------------------
# Property recipes


@dataclass(frozen=True)
class _Leaf:
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


def _value_leaf(path: tuple[str, ...]) -> _Leaf:
    name = path[-1].lower()
    if "token" in name:
        return _Leaf(path, "int", 10, 4000, dtype=pl.Int64)
    if name in ("gb", "gib") or "storage" in name or name.endswith("_gb"):
        return _Leaf(path, "decimal", 100, 50_000, string_share=0.5, dtype=pl.Decimal(18, 2))
    if "minute" in name:
        return _Leaf(path, "int", 1, 240, dtype=pl.Int64)
    if "second" in name or "duration" in name:
        return _Leaf(path, "int", 1, 3600, dtype=pl.Int64)
    if "byte" in name:
        return _Leaf(path, "int", 1_000, 50_000_000, dtype=pl.Int64)
    if any(word in name for word in ("amount", "price", "cost")):
        return _Leaf(path, "decimal", 1, 100_000, dtype=pl.Decimal(18, 2))
    return _Leaf(path, "int", 1, 100, dtype=pl.Int64)


def _unique_leaf(path: tuple[str, ...]) -> _Leaf:
    name = path[-1]
    prefix = name[:-3] if name.endswith("_id") and len(name) > 3 else name
    return _Leaf(path, "unique", prefix=prefix, dtype=pl.String)


def _choice_leaf(path: tuple[str, ...], values: list[Any]) -> _Leaf:
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
    return _Leaf(path, "choice", choices=tuple(literals), cumulative=tuple(cumulative),
                 dtype=dtype)


def _cosmetic_leaves(event_name: str) -> list[_Leaf]:
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
    return [_Leaf((key,), "choice", choices=literals, cumulative=cumulative, dtype=pl.String)]


def _event_leaves(event_name: str, meters: Sequence[Meter]) -> list[_Leaf]:
    """Every property the catalog's meters of this event name read, without clashing paths."""
    filter_values: dict[tuple[str, ...], list[Any]] = {}
    for meter in meters:
        for prop, value in meter.filters.items():
            filter_values.setdefault(tuple(prop.split(".")), []).append(value)
    leaves = [_choice_leaf(path, values) for path, values in filter_values.items()]
    for meter in meters:
        if meter.unique_property:
            leaves.append(_unique_leaf(tuple(meter.unique_property.split("."))))
        if meter.value_property:
            leaves.append(_value_leaf(tuple(meter.value_property.split("."))))
    leaves += _cosmetic_leaves(event_name)
    kept: list[_Leaf] = []
    for leaf in leaves:
        clash = any(
            k.path[: len(leaf.path)] == leaf.path or leaf.path[: len(k.path)] == k.path
            for k in kept
        )
        if not clash:
            kept.append(leaf)
    return kept


def _event_weight(event_name: str) -> int:
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


def _leaf_expr(leaf: _Leaf, value: pl.Expr, aux: pl.Expr) -> pl.Expr:
    """The JSON literal of a leaf, from two uniform random u32 columns."""
    if leaf.kind == "int":
        return (value % (leaf.hi - leaf.lo + 1) + leaf.lo).cast(pl.String)
    if leaf.kind == "decimal":
        cents = value % (leaf.hi - leaf.lo + 1) + leaf.lo
        text = pl.concat_str([(cents // 100).cast(pl.String), pl.lit("."),
                              (cents % 100).cast(pl.String).str.zfill(2)])
        if leaf.string_share <= 0:
            return text
        quoted = pl.concat_str([pl.lit('"'), text, pl.lit('"')])
        return pl.when(aux < int(leaf.string_share * _U32)).then(quoted).otherwise(text)
    if leaf.kind == "unique":
        number = (value % pl.col("pool") + 1).cast(pl.String).str.zfill(4)
        return pl.concat_str([pl.lit(f'"{leaf.prefix}_'), number, pl.lit('"')])
    expr: Any = pl
    for literal, bound in zip(leaf.choices[:-1], leaf.cumulative[:-1], strict=True):
        expr = expr.when(value < int(bound * _U32)).then(pl.lit(literal))
    return expr.otherwise(pl.lit(leaf.choices[-1]))


def _object_expr(leaves: Sequence[_Leaf], values: Sequence[pl.Expr],
                 auxes: Sequence[pl.Expr]) -> pl.Expr:
    """The properties object as JSON text, nesting dotted paths."""
    tree: dict[str, Any] = {}
    for leaf, value, aux in zip(leaves, values, auxes, strict=True):
        node = tree
        for part in leaf.path[:-1]:
            node = node.setdefault(part, {})
        node[leaf.path[-1]] = _leaf_expr(leaf, value, aux)

    def render(node: dict[str, Any]) -> list[pl.Expr]:
        parts: list[pl.Expr] = [pl.lit("{")]
        for i, (key, child) in enumerate(node.items()):
            parts.append(pl.lit(("," if i else "") + json.dumps(key) + ":"))
            parts.extend(render(child) if isinstance(child, dict) else [child])
        parts.append(pl.lit("}"))
        return parts

    return pl.concat_str(render(tree))


def _struct_dtype(leaves: Sequence[_Leaf]) -> pl.Struct:
    tree: dict[str, Any] = {}
    for leaf in leaves:
        node = tree
        for part in leaf.path[:-1]:
            existing = node.setdefault(part, {})
            if not isinstance(existing, dict):
                break
            node = existing
        else:
            node.setdefault(leaf.path[-1], leaf.dtype)

    def build(node: dict[str, Any]) -> pl.Struct:
        return pl.Struct({k: build(v) if isinstance(v, dict) else v for k, v in node.items()})

    return build(tree)


# ---------------------------------------------------------------------------------------------
# The sample


@dataclass(frozen=True)
class _FaultPlan:
    """Faults as (base event index, position after which the line goes, order), decided upfront."""

    duplicates: tuple[tuple[int, int, int], ...]
    conflicts: tuple[tuple[int, int, int, int], ...]   # ... plus the timestamp shift in ms
    bad: tuple[tuple[int, int, str, int], ...]         # position, order, reason, number


@dataclass
class GeneratedSample:
    """A planned month of usage events; rows are produced on demand, chunk by chunk.

    `frame()` materialises every line (fine up to a few million events); the writers stream
    `iter_frames()`. Each row has its ``kind`` (``event``, ``duplicate``, ``conflict`` or a reject
    reason), ``cloudevents`` (its JSON Lines shape), the native fields and ``raw``: the exact line
    for bad lines (JSON Lines only), null otherwise.
    """

    month: str
    period_start: datetime
    period_end: datetime
    seed: int
    events: int
    cloudevents_share: float
    chunk_events: int
    customer_ids: tuple[str, ...]
    summary: SampleSummary
    _templates: pl.DataFrame = field(repr=False)
    _segments: pl.DataFrame = field(repr=False)
    _event_names: tuple[str, ...] = field(repr=False)
    _leaves: tuple[tuple[_Leaf, ...], ...] = field(repr=False)
    _faults: _FaultPlan = field(repr=False)
    _escape: bool = field(repr=False)
    _catalog_customers: frozenset[str] = field(repr=False)

    # -- rows --------------------------------------------------------------------------------

    def frame(self) -> pl.DataFrame:
        """Every line of the sample, in file order."""
        frames = list(self.iter_frames())
        return pl.concat(frames) if frames else _empty_rows()

    def iter_frames(self) -> Iterator[pl.DataFrame]:
        """The lines in file order, one frame per chunk of ``chunk_events`` events."""
        pending = _empty_rows(internal=True)
        chunks = math.ceil(self.events / self.chunk_events)
        for chunk in range(chunks):
            lo = chunk * self.chunk_events
            hi = min(self.events, lo + self.chunk_events)
            rows = self._rows(chunk, lo, hi)
            events = rows.filter(pl.col("kind") == "event")
            copies = _compact(rows.filter(pl.col("kind") != "event"))
            pending = pl.concat([pending, copies])
            due = pending.filter(pl.col("pos") < hi)
            pending = pending.filter(pl.col("pos") >= hi)
            bad = self._bad_rows(events, lo, hi)
            out = pl.concat([events, due, bad]).sort(["pos", "sub"])
            yield out.select(_ROW_COLUMNS)

    def summary_text(self, fmt: Format = "jsonl") -> str:
        """What the sample holds once written as ``fmt``, for people (the CLI prints it)."""
        summary = self.summary.for_format(fmt)
        rejected = ", ".join(f"{k} {v}" for k, v in summary.rejected.items()) or "none"
        return "\n".join([
            f"{summary.total_lines} lines for {self.month} (seed {self.seed}, "
            f"{summary.customers} customers, {fmt})",
            f"  valid events  {summary.events_valid}",
            f"  duplicates    {summary.duplicates}",
            f"  rejected      {sum(summary.rejected.values())} ({rejected})",
        ])

    def event_counts(self) -> pl.DataFrame:
        """Valid events per customer and event name (generates the whole sample)."""
        counts = [
            f.filter(pl.col("kind") == "event").group_by("customer_id", "event_name").len()
            for f in self.iter_frames()
        ]
        if not counts:
            return pl.DataFrame(schema={"customer_id": pl.String, "event_name": pl.String,
                                        "count": pl.UInt32})
        return (pl.concat(counts).group_by("customer_id", "event_name")
                .agg(pl.col("len").sum().alias("count")).sort("customer_id", "event_name"))

    # -- internals ---------------------------------------------------------------------------

    def _rows(self, chunk: int, lo: int, hi: int) -> pl.DataFrame:
        """Base events lo..hi of the month, plus the duplicate and conflict copies of them."""
        n = hi - lo
        rng = random.Random(f"billing-sample:{self.seed}:{chunk}")
        width = max((len(leaves) for leaves in self._leaves), default=0)
        names = ["time", "late", "shift", "millis", "tpl", "src", "offset", "ce", "sub"]
        names += [f"v{i}" for i in range(width)] + [f"x{i}" for i in range(width)]
        columns: list[pl.Series] = [pl.int_range(lo, hi, eager=True, dtype=pl.Int64).alias("idx")]
        for name in names:
            buffer = pa.py_buffer(rng.randbytes(4 * n))
            columns.append(pl.Series(f"u_{name}", pa.Array.from_buffers(
                pa.uint32(), n, [None, buffer])))
        df = pl.DataFrame(columns)
        del columns

        # Position on the timeline of active time, stratified by event index, some late.
        seg = self._segments
        total_active = int(seg["active_end"][-1])
        step = total_active / self.events
        active = ((pl.col("idx").cast(pl.Float64) + pl.col("u_time") / _U32) * step).floor()
        active = active.cast(pl.Int64).clip(upper_bound=total_active - 1)
        late = (active - (pl.col("u_shift") % _LATE_MS).cast(pl.Int64)).clip(lower_bound=0)
        a = df.select(
            pl.when(pl.col("u_late") < int(_LATE_SHARE * _U32)).then(late).otherwise(active)
        ).to_series()
        s = seg["active_start"].search_sorted(a, side="right").cast(pl.Int64) - 1
        t_ms = seg["real_start"].gather(s) + a - seg["active_start"].gather(s)
        key = seg["weight_start"].gather(s) + (
            df["u_tpl"].cast(pl.Int64) * seg["weight"].gather(s)) // _U32
        del a, s
        tpl = self._templates["weight_end"].search_sorted(key, side="right")
        del key
        picked = self._templates.select(
            pl.col("customer_id", "subscription_id", "event", "pool").gather(tpl))
        millis = pl.col("u_millis") < int(_MILLIS_SHARE * _U32)
        offsets = tuple(range(len(_OFFSETS)))
        df = pl.concat([df, picked], how="horizontal").with_columns(
            t_ms=t_ms.alias("t_ms"),
            millis=millis,
            source=_pick(pl.col("u_src"), SOURCES, _SOURCE_SHARES),
            offset=_pick(pl.col("u_offset"), offsets, _OFFSET_SHARES).cast(pl.Int8),
            cloudevents=pl.col("u_ce") < int(self.cloudevents_share * _U32),
            kind=pl.lit("event", dtype=_KIND_ENUM),
            sub=pl.lit(0, dtype=pl.Int64),
        ).with_columns(
            t_ms=pl.when("millis").then(pl.col("t_ms")).otherwise(pl.col("t_ms") // 1000 * 1000),
            subscription_id=pl.when(
                ~pl.col("cloudevents") & (pl.col("u_sub") < int(_SUBSCRIPTION_ID_SHARE * _U32))
            ).then(pl.col("subscription_id")).otherwise(None),
        ).drop("u_time", "u_late", "u_shift", "u_tpl", "u_millis", "u_src", "u_offset", "u_ce",
               "u_sub")
        del picked, t_ms

        # Copies of base events that come back later as duplicates and conflicts.
        dups = [(b, p, o) for b, p, o in self._faults.duplicates if lo <= b < hi]
        confs = [(b, p, o, d) for b, p, o, d in self._faults.conflicts if lo <= b < hi]
        copies = [df.with_columns(pos=pl.col("idx"))]
        if dups:
            plan = pl.DataFrame(dups, schema=["idx", "pos", "sub_"], orient="row")
            copies.append(df.join(plan, on="idx").with_columns(
                kind=pl.lit(DUPLICATE, dtype=_KIND_ENUM), sub=pl.col("sub_")).drop("sub_"))
        if confs:
            plan = pl.DataFrame(confs, schema=["idx", "pos", "sub_", "shift_"], orient="row")
            end_ms = _epoch_ms(self.period_end)
            shifted = pl.col("t_ms") + pl.col("shift_")
            copies.append(df.join(plan, on="idx").with_columns(
                kind=pl.lit(CONFLICT, dtype=_KIND_ENUM), sub=pl.col("sub_"),
                t_ms=pl.when(shifted < end_ms).then(shifted)
                .otherwise(pl.col("t_ms") - pl.col("shift_")),
            ).drop("sub_", "shift_"))
        df = pl.concat(copies, how="diagonal") if len(copies) > 1 else copies[0]
        del copies

        # Properties, per event name, then back to row order.
        randoms = [c for c in df.columns if c.startswith("u_")]
        work = df.select("event", "pool", *randoms).with_row_index("_r")
        df = df.drop(*randoms, "pool")
        parts = []
        for (event,), part in work.partition_by("event", as_dict=True).items():
            leaves = self._leaves[event]
            values = [pl.col(f"u_v{i}") for i in range(len(leaves))]
            auxes = [pl.col(f"u_x{i}") for i in range(len(leaves))]
            parts.append(part.select("_r", properties=_object_expr(leaves, values, auxes)))
        del work
        properties = pl.concat(parts).sort("_r")["properties"]
        del parts

        event_names = pl.Series(self._event_names, dtype=pl.String)
        prefix = f"evt-{self.month.replace('-', '')}-{self.seed}-"
        return df.select(
            "pos", "sub", "kind", "cloudevents",
            event_id=pl.concat_str([pl.lit(prefix), pl.col("idx").cast(pl.String).str.zfill(9)]),
            event_name=pl.col("event").replace_strict(
                list(range(len(event_names))), event_names, return_dtype=pl.String),
            customer_id="customer_id",
            timestamp=_timestamp_expr(),
            properties=properties,
            source="source",
            subscription_id="subscription_id",
            raw=pl.lit(None, dtype=pl.String),
        )

    def _bad_rows(self, events: pl.DataFrame, lo: int, hi: int) -> pl.DataFrame:
        """The bad lines that go after events lo..hi (those before the first event in chunk 0)."""
        specs = [b for b in self._faults.bad if lo <= b[0] < hi or (lo == 0 and b[0] < 0)]
        if not specs:
            return _empty_rows(internal=True)
        bases = {max(pos, 0) for pos, *_ in specs}
        rows = {r["pos"]: r for r in events.filter(pl.col("pos").is_in(list(bases))).to_dicts()}
        prefix = f"evt-{self.month.replace('-', '')}-{self.seed}-bad"
        out = []
        for pos, order, reason, number in specs:
            row = dict(rows[max(pos, 0)])
            row.update(pos=pos, sub=order, kind=reason, event_id=f"{prefix}{number:06d}")
            out.append(_spoil(row, reason, number, self._catalog_customers))
        return pl.DataFrame(out, schema=_INTERNAL_SCHEMA)


_KIND_ENUM = pl.Enum(list(KINDS))
_ROW_SCHEMA: dict[str, Any] = {
    "kind": _KIND_ENUM, "cloudevents": pl.Boolean, "event_id": pl.String,
    "event_name": pl.String, "customer_id": pl.String, "timestamp": pl.String,
    "properties": pl.String, "source": pl.String, "subscription_id": pl.String,
    "raw": pl.String,
}
_ROW_COLUMNS = list(_ROW_SCHEMA)
_INTERNAL_SCHEMA: dict[str, Any] = {"pos": pl.Int64, "sub": pl.Int64, **_ROW_SCHEMA}


def _empty_rows(internal: bool = False) -> pl.DataFrame:
    return pl.DataFrame(schema=_INTERNAL_SCHEMA if internal else _ROW_SCHEMA)


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy that owns its strings: a filtered string view keeps its whole chunk's buffers."""
    return pl.DataFrame(frame.to_dicts(), schema=frame.schema) if frame.height else frame.clear()


def _pick(u: pl.Expr, options: Sequence[Any], shares: Sequence[float]) -> pl.Expr:
    expr: Any = pl
    bound = 0.0
    for option, share in zip(options[:-1], shares[:-1], strict=True):
        bound += share
        expr = expr.when(u < int(bound * _U32)).then(pl.lit(option))
    return expr.otherwise(pl.lit(options[-1]))


def _timestamp_expr() -> pl.Expr:
    """RFC 3339 text of t_ms: local time of the chosen offset, optional millis, the offset."""
    minutes = pl.col("offset").replace_strict(
        list(range(len(_OFFSETS))), [m for _, m in _OFFSETS], return_dtype=pl.Int64)
    suffix = pl.col("offset").replace_strict(
        list(range(len(_OFFSETS))), [s for s, _ in _OFFSETS], return_dtype=pl.String)
    local = pl.from_epoch(pl.col("t_ms") + minutes * 60_000, time_unit="ms")
    fraction = pl.when(pl.col("millis")).then(
        pl.concat_str([pl.lit("."), (pl.col("t_ms") % 1000).cast(pl.String).str.zfill(3)])
    ).otherwise(pl.lit(""))
    return pl.concat_str([local.dt.strftime("%Y-%m-%dT%H:%M:%S"), fraction, suffix])


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp()) * 1000


# ---------------------------------------------------------------------------------------------
# Bad lines


def render_line(row: dict[str, Any]) -> str:
    """One line of JSON Lines for a row, exactly as the vectorised writer renders it.

    A None customer_id or event_name leaves its key out; ``properties`` is JSON text.
    """
    if row["cloudevents"]:
        members = ['"specversion":"1.0"']
        keys = [("id", "event_id"), ("source", "source"), ("type", "event_name"),
                ("subject", "customer_id"), ("time", "timestamp"), ("data", "properties")]
    else:
        members = []
        keys = [(k, k) for k in NATIVE_COLUMNS]
    for key, column in keys:
        value = row[column]
        if column == "properties":
            members.append(f'"{key}":{value}')
        elif value is None and column in ("customer_id", "event_name"):
            continue
        else:
            members.append(f'"{key}":{json.dumps(value, ensure_ascii=False)}')
    return "{" + ",".join(members) + "}"


def _spoil(row: dict[str, Any], reason: str, number: int,
           catalog_customers: frozenset[str]) -> dict[str, Any]:
    """Turn a copy of a valid event (with a fresh id) into a bad line of the given reason."""
    if reason == MISSING_FIELD:
        if number % 2:
            row["event_name"] = ""
        else:
            row["customer_id"] = None
    elif reason == TIMESTAMP_WITHOUT_OFFSET:
        stamp = row["timestamp"]
        row["timestamp"] = stamp[:-1] if stamp.endswith("Z") else stamp[:-6]
    elif reason == PROPERTIES_NOT_OBJECT:
        row["properties"] = f"[{row['properties']}]"
    elif reason == UNKNOWN_CUSTOMER:
        ident = f"unknown_customer_{number:04d}"
        while ident in catalog_customers:
            ident += "_x"
        row["customer_id"] = ident
    elif reason == EVENT_ID_TOO_LONG:
        row["event_id"] = (row["event_id"] + "-" + "x" * _TOO_LONG_ID)[:_TOO_LONG_ID]
    line = render_line(row)
    if reason == MALFORMED_LINE:
        line = line[: max(8, len(line) // 2)]
    elif reason not in (MISSING_FIELD,):
        line = None  # the vectorised renderer writes it as is
    row["raw"] = line
    return row


# ---------------------------------------------------------------------------------------------
# Planning


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must look like YYYY-MM, got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _active_in(sub: Subscription, start: datetime, end: datetime) -> bool:
    return _midnight(sub.start_date) < end and (
        sub.end_date is None or _midnight(sub.end_date) > start)


def _default_faults(events: int) -> int:
    return max(1, round(events * _FAULT_SHARE)) if events >= 100 else 0


def generate_events(
    catalog: Catalog,
    *,
    customers: int | None,
    events: int,
    month: str,
    seed: int = 7,
    duplicates: int | None = None,
    conflicts: int | None = None,
    bad_lines: int | None = None,
    cloudevents_share: float = 0.1,
    chunk_events: int = _DEFAULT_CHUNK,
) -> GeneratedSample:
    """Plan ``events`` valid usage events of ``month`` ('YYYY-MM') for the catalog's customers.

    ``customers`` caps how many catalog customers send events (the first ones in catalog order
    with a subscription active in the month); None uses them all. ``duplicates``, ``conflicts``
    and ``bad_lines`` default to 0.1% of ``events`` (at least one each, and bad lines at least one
    per reason, once ``events`` >= 100). Bad lines are dealt out over `REJECT_REASONS` in turn.
    Nothing is generated until rows are asked for (`GeneratedSample.iter_frames` or a writer).
    """
    if events < 0:
        raise ValueError("events must be zero or more")
    if customers is not None and customers < 1:
        raise ValueError("customers must be at least 1 (or None for every catalog customer)")
    if not 0.0 <= cloudevents_share <= 1.0:
        raise ValueError("cloudevents_share must be between 0 and 1")
    if chunk_events < 1:
        raise ValueError("chunk_events must be at least 1")
    start, end = _month_bounds(month)
    n_dup = _default_faults(events) if duplicates is None else duplicates
    n_conf = _default_faults(events) if conflicts is None else conflicts
    n_bad = (max(len(REJECT_REASONS), _default_faults(events)) if events >= 100 else 0) \
        if bad_lines is None else bad_lines
    if min(n_dup, n_conf, n_bad) < 0:
        raise ValueError("duplicates, conflicts and bad_lines must be zero or more")
    if n_dup + n_conf > events:
        raise ValueError("duplicates + conflicts cannot exceed events: each copies its own event")
    if n_bad and not events:
        raise ValueError("bad lines are spoilt copies of events: ask for events too")

    # Customers with a subscription active in the month, in catalog order, capped.
    subs_by_customer: dict[str, list[Subscription]] = {}
    for sub in catalog.subscriptions.values():
        if _active_in(sub, start, end):
            subs_by_customer.setdefault(sub.customer, []).append(sub)
    used = [c for c in catalog.customers if c in subs_by_customer]
    if customers is not None:
        used = used[:customers]

    # Event names, with what the catalog's meters read from them.
    meters_by_event: dict[str, list[Meter]] = {}
    for meter in catalog.meters.values():
        meters_by_event.setdefault(meter.event_name, []).append(meter)

    # Segments of the month between subscription starts and ends; templates per segment.
    cuts = {start, end}
    for customer in used:
        for sub in subs_by_customer[customer]:
            for day in (sub.start_date, sub.end_date):
                if day is not None and start < _midnight(day) < end:
                    cuts.add(_midnight(day))
    bounds = sorted(cuts)
    rng = random.Random(f"billing-sample:{seed}:catalog")
    weight_of = {c: 1 + int(9 * rng.random() ** 3) for c in used}
    event_names: list[str] = []
    templates: list[tuple[str, str, int, int, int]] = []
    segments: list[tuple[int, int, int, int, int]] = []
    active_at = weight_at = 0
    for seg_start, seg_end in pairwise(bounds):
        rows: list[tuple[str, str, int, int, int]] = []
        for customer in used:
            for sub in subs_by_customer[customer]:
                if not sub.active_on(seg_start.date()):
                    continue
                names: list[str] = []
                for price in catalog.plans[sub.plan].prices:
                    if price.meter and catalog.meters[price.meter].event_name not in names:
                        names.append(catalog.meters[price.meter].event_name)
                for name in names:
                    if name not in event_names:
                        event_names.append(name)
                    weight = weight_of[customer] * _event_weight(name)
                    pool = 5 + 20 * weight_of[customer]
                    rows.append((customer, sub.id, event_names.index(name), pool, weight))
        if not rows:
            continue
        total_weight = sum(r[4] for r in rows)
        length = _epoch_ms(seg_end) - _epoch_ms(seg_start)
        segments.append((active_at, active_at + length, _epoch_ms(seg_start), weight_at,
                         total_weight))
        for customer, sub_id, event, pool, weight in rows:
            weight_at += weight
            templates.append((customer, sub_id, event, pool, weight_at))
        active_at += length
    if events and not templates:
        raise ValueError(f"no catalog customer has a subscription with usage meters in {month}")
    if weight_at >= 1 << 31:
        raise ValueError("too many customers for the sample generator's weight table")

    # Faults, decided upfront so their counts are known before any row exists.
    frng = random.Random(f"billing-sample:{seed}:faults")
    picks = frng.sample(range(events), n_dup + n_conf) if n_dup + n_conf else []
    order = iter(range(1, n_dup + n_conf + n_bad + 1))

    def later(base: int) -> int:
        if frng.random() < 0.5:
            return min(events - 1, base + frng.randint(0, 50))
        return frng.randint(base, events - 1)

    dup_plan = tuple((b, later(b), next(order)) for b in picks[:n_dup])
    conf_plan = tuple((b, later(b), next(order), 1000 * frng.randint(1, 120))
                      for b in picks[n_dup:])
    bad_plan = tuple((frng.randint(-1, events - 1), next(order),
                      REJECT_REASONS[k % len(REJECT_REASONS)], k + 1) for k in range(n_bad))
    bad_counts = {reason: 0 for reason in REJECT_REASONS}
    for _, _, reason, _ in bad_plan:
        bad_counts[reason] += 1

    strings = [*used, *event_names, *(sub.id for c in used for sub in subs_by_customer[c])]
    leaves = tuple(tuple(_event_leaves(name, meters_by_event.get(name, [])))
                   for name in event_names)
    template_frame = pl.DataFrame(
        templates, schema={"customer_id": pl.String, "subscription_id": pl.String,
                           "event": pl.Int64, "pool": pl.Int64, "weight_end": pl.Int64},
        orient="row")
    segment_frame = pl.DataFrame(
        segments, schema={"active_start": pl.Int64, "active_end": pl.Int64,
                          "real_start": pl.Int64, "weight_start": pl.Int64, "weight": pl.Int64},
        orient="row")
    return GeneratedSample(
        month=f"{start.year:04d}-{start.month:02d}",
        period_start=start,
        period_end=end,
        seed=seed,
        events=events,
        cloudevents_share=cloudevents_share,
        chunk_events=chunk_events,
        customer_ids=tuple(used),
        summary=SampleSummary(events, n_dup, n_conf, bad_counts, len(used)),
        _templates=template_frame,
        _segments=segment_frame,
        _event_names=tuple(event_names),
        _leaves=leaves,
        _faults=_FaultPlan(dup_plan, conf_plan, bad_plan),
        _escape=not all(_ID_PLAIN.match(s) for s in strings),
        _catalog_customers=frozenset(catalog.customers),
    )


# ---------------------------------------------------------------------------------------------
# Writers


def _excluded_kinds(fmt: str) -> tuple[str, ...]:
    if fmt == "jsonl":
        return ()
    if fmt == "csv" or fmt == "parquet":
        return (MALFORMED_LINE,)
    if fmt == "parquet_struct":
        return (MALFORMED_LINE, PROPERTIES_NOT_OBJECT)
    raise ValueError(f"unknown format {fmt!r}")


def _quoted(column: str, escape: bool) -> pl.Expr:
    expr = pl.col(column)
    if escape:
        expr = expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
            '"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), expr, pl.lit('"')])


def _line_expr(escape: bool) -> pl.Expr:
    """JSON Lines text of each row: its raw text when it has one, else native or CloudEvents."""
    name, customer = _quoted("event_name", escape), _quoted("customer_id", escape)
    native = pl.concat_str([
        pl.lit('{"event_id":"'), pl.col("event_id"), pl.lit('","event_name":'), name,
        pl.lit(',"customer_id":'), customer, pl.lit(',"timestamp":"'), pl.col("timestamp"),
        pl.lit('","properties":'), pl.col("properties"), pl.lit(',"source":"'),
        pl.col("source"), pl.lit('","subscription_id":'),
        pl.coalesce(_quoted("subscription_id", escape), pl.lit("null")), pl.lit("}"),
    ])
    cloud = pl.concat_str([
        pl.lit('{"specversion":"1.0","id":"'), pl.col("event_id"), pl.lit('","source":"'),
        pl.col("source"), pl.lit('","type":'), name, pl.lit(',"subject":'), customer,
        pl.lit(',"time":"'), pl.col("timestamp"), pl.lit('","data":'), pl.col("properties"),
        pl.lit("}"),
    ])
    rendered = pl.when(pl.col("cloudevents")).then(cloud).otherwise(native)
    return pl.coalesce(pl.col("raw"), rendered).alias("line")


class _Tally:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.kinds: Counter[str] = Counter()
        self.by_customer: dict[str, dict[str, int]] = {}

    def add(self, frame: pl.DataFrame) -> None:
        for kind, count in frame["kind"].cast(pl.String).value_counts().iter_rows():
            self.kinds[kind] += count
        counts = (frame.filter(pl.col("kind") == "event")
                  .group_by("customer_id", "event_name").len())
        for customer, name, count in counts.iter_rows():
            bucket = self.by_customer.setdefault(customer, {})
            bucket[name] = bucket.get(name, 0) + count

    def summary(self) -> FileSummary:
        rejected = {k: v for k, v in self.kinds.items() if k not in ("event", DUPLICATE)}
        ordered = {k: rejected[k] for k in (CONFLICT, *REJECT_REASONS) if k in rejected}
        return FileSummary(
            path=self.path, lines=sum(self.kinds.values()), accepted=self.kinds["event"],
            duplicates=self.kinds[DUPLICATE], rejected=ordered,
            accepted_by_customer={c: dict(sorted(v.items()))
                                  for c, v in sorted(self.by_customer.items())})


def _part_paths(path: Path, parts: int) -> list[Path]:
    if parts < 1:
        raise ValueError("parts must be at least 1")
    if parts == 1:
        return [path]
    stem, dot, suffix = path.name.partition(".")
    return [path.with_name(f"{stem}-{i:04d}{dot}{suffix}") for i in range(1, parts + 1)]


class _Sink:
    def write(self, frame: pl.DataFrame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TextSink(_Sink):
    """JSON Lines (optionally gzip) or CSV, appended chunk by chunk."""

    def __init__(self, path: Path, fmt: str, compress: bool, escape: bool) -> None:
        self.fmt = fmt
        self.escape = escape
        self.header = fmt == "csv"
        # closed in close(): a sink lives across chunks
        self.handle: IO[bytes] = (
            gzip_module.open(path, "wb", compresslevel=1)  # noqa: SIM115
            if compress else open(path, "wb")  # noqa: SIM115
        )

    def write(self, frame: pl.DataFrame) -> None:
        if self.fmt == "jsonl":
            frame.select(_line_expr(self.escape)).write_csv(
                self.handle, include_header=False, quote_style="never")
        else:
            frame.select(NATIVE_COLUMNS).write_csv(self.handle, include_header=self.header)
            self.header = False

    def close(self) -> None:
        if self.header:  # an empty CSV part still gets its header
            self.handle.write((",".join(NATIVE_COLUMNS) + "\n").encode())
        self.handle.close()


class _ParquetSink(_Sink):
    def __init__(self, path: Path, struct: pl.Struct | None) -> None:
        self.struct = struct
        properties = pa.string() if struct is None else pl.DataFrame(
            schema={"p": struct}).to_arrow().schema.field("p").type
        self.schema = pa.schema(
            [(c, pa.string()) for c in NATIVE_COLUMNS[:4]] + [("properties", properties)]
            + [(c, pa.string()) for c in NATIVE_COLUMNS[5:]])
        self.writer = pq.ParquetWriter(path, self.schema, compression="zstd")

    def write(self, frame: pl.DataFrame) -> None:
        frame = frame.select(NATIVE_COLUMNS)
        if self.struct is not None:
            frame = frame.with_columns(pl.col("properties").str.json_decode(self.struct))
        self.writer.write_table(frame.to_arrow().cast(self.schema))

    def close(self) -> None:
        self.writer.close()


def _write(sample: GeneratedSample, fmt: Format, path: str | Path, parts: int,
           sink_for: Any) -> WriteResult:
    paths = _part_paths(Path(path), parts)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    excluded = list(_excluded_kinds(fmt))
    total = sample.summary.for_format(fmt).total_lines
    per_part = max(1, math.ceil(total / parts))
    results: list[FileSummary] = []
    sink: _Sink | None = None
    tally: _Tally | None = None
    in_part = 0
    for frame in sample.iter_frames():
        if excluded:
            frame = frame.filter(~pl.col("kind").is_in(excluded))
        offset = 0
        while offset < frame.height:
            if sink is None:
                sink, tally, in_part = sink_for(paths[len(results)]), _Tally(
                    paths[len(results)]), 0
            assert tally is not None
            take = frame.height - offset
            if len(results) < parts - 1:
                take = min(take, per_part - in_part)
            piece = frame.slice(offset, take)
            sink.write(piece)
            tally.add(piece)
            offset += take
            in_part += take
            if in_part >= per_part and len(results) < parts - 1:
                sink.close()
                results.append(tally.summary())
                sink = tally = None
    if sink is not None and tally is not None:
        sink.close()
        results.append(tally.summary())
    while len(results) < parts:
        empty = paths[len(results)]
        sink_for(empty).close()
        results.append(_Tally(empty).summary())
    return WriteResult(tuple(results))


def write_jsonl(sample: GeneratedSample, path: str | Path, gzip: bool = False, *,
                parts: int = 1) -> WriteResult:
    """Write the sample as JSON Lines (gzip level 1 when ``gzip``); native and CloudEvents mixed.

    With ``parts`` > 1 the lines are split in order over ``name-0001.jsonl`` ... beside ``path``.
    """
    return _write(sample, "jsonl", path, parts,
                  lambda p: _TextSink(p, "jsonl", gzip, sample._escape))


def write_csv(sample: GeneratedSample, path: str | Path, *, parts: int = 1) -> WriteResult:
    """Write the sample as CSV in the native shape (`NATIVE_COLUMNS`), properties as JSON text.

    CloudEvents lines become native rows; malformed lines cannot exist in CSV and are left out.
    Missing values (no customer_id, no subscription_id) are empty cells.
    """
    return _write(sample, "csv", path, parts, lambda p: _TextSink(p, "csv", False, False))


def write_parquet(sample: GeneratedSample, path: str | Path,
                  properties_as: Literal["json", "struct"] = "json", *,
                  parts: int = 1) -> WriteResult:
    """Write the sample as Parquet (zstd, one row group per chunk), native columns as strings.

    ``properties_as='json'`` keeps properties as JSON text; ``'struct'`` stores a struct with one
    field per property any event name carries (null where an event has none; decimals as
    decimal(18,2)), so lines whose properties are not an object are left out too.
    """
    if properties_as not in ("json", "struct"):
        raise ValueError("properties_as must be 'json' or 'struct'")
    struct = None
    if properties_as == "struct":
        struct = _struct_dtype([leaf for leaves in sample._leaves for leaf in leaves])
        if not struct.fields:
            struct = None  # no event carries properties: an empty struct cannot be stored
    fmt: Format = "parquet_struct" if struct is not None else "parquet"
    return _write(sample, fmt, path, parts, lambda p: _ParquetSink(p, struct))


# ---------------------------------------------------------------------------------------------
# Benchmark catalog


def write_benchmark_catalog(folder: str | Path, customers: int, seed: int = 7, *,
                            example: str | Path | None = None) -> Path:
    """Write a valid catalog folder with ``customers`` generated customers, for benchmarks.

    Meters, plans and billing profiles are copied from the example catalog (``example``, default
    the project's ``catalog/``); each customer ``bench_NNNNNN`` gets one subscription to one of
    the plans, starting between 2025-01-01 and 2026-01-28 with no end, so every customer is
    active from February 2026 on (about 7% start during January 2026). Some pay by invoice,
    some have a discount, a few use another billing profile. Notification channels are left out.
    Returns the folder.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    default = Path(__file__).resolve().parents[1] / "catalog"
    source = Path(example) if example is not None else default
    sections: dict[str, list[Any]] = {"meters": [], "plans": [], "billing_profiles": []}
    files = [source] if source.is_file() else sorted(
        p for p in source.iterdir() if p.suffix in (".yaml", ".yml"))
    for file in files:
        document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for name in sections:
            sections[name].extend(document.get(name) or [])
    if not sections["meters"] or not sections["plans"]:
        raise ValueError(f"{source}: the example catalog needs meters and plans")
    profiles = sections["billing_profiles"]
    others = [p["key"] for p in profiles if not p.get("default")]
    if profiles and not any(p.get("default") for p in profiles):
        profiles[0]["default"] = True
        others = [p["key"] for p in profiles[1:]]

    rng = random.Random(f"billing-sample:{seed}:benchmark-catalog")
    plans = [p["key"] for p in sections["plans"]]
    first, span = date(2025, 1, 1), (date(2026, 1, 28) - date(2025, 1, 1)).days
    lines = ["# Generated by devkit.sample_data.write_benchmark_catalog", "customers:"]
    subs = ["subscriptions:"]
    width = max(6, len(str(customers)))
    for i in range(1, customers + 1):
        ident = f"bench_{i:0{width}d}"
        entry = f"  - {{id: {ident}, name: Benchmark Customer {i}, email: billing+{i}@bench.example"
        if others and rng.random() < 0.10:
            entry += f", billing_profile: {rng.choice(others)}"
        lines.append(entry + "}")
        start = first + timedelta(days=rng.randrange(span + 1))
        sub = f"  - {{id: sub_{ident}, customer: {ident}, plan: {rng.choice(plans)}, " \
              f"start_date: {start.isoformat()}"
        if rng.random() < 0.5:
            sub += ", billing_anchor: 1"
        if rng.random() < 0.15:
            sub += ", collection_method: send_invoice, days_until_due: 30"
        if rng.random() < 0.10:
            sub += ', discounts: [{type: percentage, percent: "10", periods: 12}]'
        subs.append(sub + "}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("meters", "plans", "customers"):
        stale = out / f"{name}.yaml"
        if stale.exists():
            stale.unlink()
    dump = {"default_flow_style": False, "sort_keys": False, "allow_unicode": True}
    (out / "meters.yaml").write_text(yaml.safe_dump({"meters": sections["meters"]}, **dump),
                                     encoding="utf-8")
    (out / "plans.yaml").write_text(yaml.safe_dump({"plans": sections["plans"]}, **dump),
                                    encoding="utf-8")
    profile_text = yaml.safe_dump({"billing_profiles": profiles}, **dump) if profiles else ""
    (out / "customers.yaml").write_text(
        profile_text + "\n".join(lines) + "\n" + "\n".join(subs) + "\n", encoding="utf-8")
    return out
