"""A planned month of sample usage and its rows, produced on demand chunk by chunk.

Timestamps spread over the month (UTC instants in [month start, month end)), mostly in file
order with about 2% arriving up to six hours late; most end in ``Z``, some carry ``+02:00`` or
``-05:00``, about 30% have milliseconds. Sources are ``gateway-eu``, ``gateway-us`` and
``batch-import``; event ids are unique and depend on month and seed. Columns are generated
vectorised from random bytes, so memory stays bounded by the chunk size.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa

from devkit.sample_data.faults import CONFLICT, DUPLICATE, KINDS, FaultPlan, spoil
from devkit.sample_data.lines import Format
from devkit.sample_data.properties import (
    U32,
    PropertyRecipe,
    properties_json,
    properties_struct,
)
from devkit.sample_data.summary import SampleSummary

SOURCES: tuple[str, ...] = ("gateway-eu", "gateway-us", "batch-import")
_SOURCE_SHARES = (0.45, 0.45, 0.10)
_OFFSETS: tuple[tuple[str, int], ...] = (("Z", 0), ("+02:00", 120), ("-05:00", -300))
_OFFSET_SHARES = (0.80, 0.12, 0.08)
_MILLIS_SHARE = 0.30
_LATE_SHARE = 0.02
_LATE_MS = 6 * 3600 * 1000
_SUBSCRIPTION_ID_SHARE = 0.30


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
    # The recipe `generate_events` planned. Segments: stretches of the month between
    # subscription starts and ends, laid end to end as "active time", with the total weight of
    # the templates active in each. Templates: (customer, subscription, event name index, id
    # pool size, cumulative weight), the cumulative weight picking one for each event.
    templates: pl.DataFrame = field(repr=False)
    segments: pl.DataFrame = field(repr=False)
    event_names: tuple[str, ...] = field(repr=False)
    property_recipes: tuple[tuple[PropertyRecipe, ...], ...] = field(repr=False)
    faults: FaultPlan = field(repr=False)
    needs_escaping: bool = field(repr=False)
    catalog_customers: frozenset[str] = field(repr=False)

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

    def properties_struct(self) -> pl.Struct:
        """The Parquet struct of every property any event name carries."""
        return properties_struct([r for recipes in self.property_recipes for r in recipes])

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
        width = max((len(recipes) for recipes in self.property_recipes), default=0)
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
        seg = self.segments
        total_active = int(seg["active_end"][-1])
        step = total_active / self.events
        active = ((pl.col("idx").cast(pl.Float64) + pl.col("u_time") / U32) * step).floor()
        active = active.cast(pl.Int64).clip(upper_bound=total_active - 1)
        late = (active - (pl.col("u_shift") % _LATE_MS).cast(pl.Int64)).clip(lower_bound=0)
        a = df.select(
            pl.when(pl.col("u_late") < int(_LATE_SHARE * U32)).then(late).otherwise(active)
        ).to_series()
        s = seg["active_start"].search_sorted(a, side="right").cast(pl.Int64) - 1
        t_ms = seg["real_start"].gather(s) + a - seg["active_start"].gather(s)
        key = seg["weight_start"].gather(s) + (
            df["u_tpl"].cast(pl.Int64) * seg["weight"].gather(s)) // U32
        del a, s
        tpl = self.templates["weight_end"].search_sorted(key, side="right")
        del key
        picked = self.templates.select(
            pl.col("customer_id", "subscription_id", "event", "pool").gather(tpl))
        millis = pl.col("u_millis") < int(_MILLIS_SHARE * U32)
        offsets = tuple(range(len(_OFFSETS)))
        df = pl.concat([df, picked], how="horizontal").with_columns(
            t_ms=t_ms.alias("t_ms"),
            millis=millis,
            source=_pick(pl.col("u_src"), SOURCES, _SOURCE_SHARES),
            offset=_pick(pl.col("u_offset"), offsets, _OFFSET_SHARES).cast(pl.Int8),
            cloudevents=pl.col("u_ce") < int(self.cloudevents_share * U32),
            kind=pl.lit("event", dtype=_KIND_ENUM),
            sub=pl.lit(0, dtype=pl.Int64),
        ).with_columns(
            t_ms=pl.when("millis").then(pl.col("t_ms")).otherwise(pl.col("t_ms") // 1000 * 1000),
            subscription_id=pl.when(
                ~pl.col("cloudevents") & (pl.col("u_sub") < int(_SUBSCRIPTION_ID_SHARE * U32))
            ).then(pl.col("subscription_id")).otherwise(None),
        ).drop("u_time", "u_late", "u_shift", "u_tpl", "u_millis", "u_src", "u_offset", "u_ce",
               "u_sub")
        del picked, t_ms

        # Copies of base events that come back later as duplicates and conflicts.
        dups = [(b, p, o) for b, p, o in self.faults.duplicates if lo <= b < hi]
        confs = [(b, p, o, d) for b, p, o, d in self.faults.conflicts if lo <= b < hi]
        copies = [df.with_columns(pos=pl.col("idx"))]
        if dups:
            plan = pl.DataFrame(dups, schema=["idx", "pos", "sub_"], orient="row")
            copies.append(df.join(plan, on="idx").with_columns(
                kind=pl.lit(DUPLICATE, dtype=_KIND_ENUM), sub=pl.col("sub_")).drop("sub_"))
        if confs:
            plan = pl.DataFrame(confs, schema=["idx", "pos", "sub_", "shift_"], orient="row")
            end_ms = epoch_ms(self.period_end)
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
            recipes = self.property_recipes[event]
            values = [pl.col(f"u_v{i}") for i in range(len(recipes))]
            auxes = [pl.col(f"u_x{i}") for i in range(len(recipes))]
            parts.append(part.select("_r", properties=properties_json(recipes, values, auxes)))
        del work
        properties = pl.concat(parts).sort("_r")["properties"]
        del parts

        event_names = pl.Series(self.event_names, dtype=pl.String)
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
        specs = [b for b in self.faults.bad if lo <= b[0] < hi or (lo == 0 and b[0] < 0)]
        if not specs:
            return _empty_rows(internal=True)
        bases = {max(pos, 0) for pos, *_ in specs}
        rows = {r["pos"]: r for r in events.filter(pl.col("pos").is_in(list(bases))).to_dicts()}
        prefix = f"evt-{self.month.replace('-', '')}-{self.seed}-bad"
        out = []
        for pos, order, reason, number in specs:
            row = dict(rows[max(pos, 0)])
            row.update(pos=pos, sub=order, kind=reason, event_id=f"{prefix}{number:06d}")
            out.append(spoil(row, reason, number, self.catalog_customers))
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
        expr = expr.when(u < int(bound * U32)).then(pl.lit(option))
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


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, of a whole-second instant."""
    return int(moment.timestamp()) * 1000
