"""Writing a sample to files: JSON Lines (optionally gzip; native and CloudEvents mixed), CSV
and Parquet (native shape), streamed chunk by chunk, optionally split over several part files.
Each writer returns what it wrote per file (`WriteResult`). A format that cannot hold a fault
(a malformed line in CSV, say) leaves those lines out (`faults.excluded_kinds`).
"""

from __future__ import annotations

import gzip as gzip_module
import math
from collections import Counter
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from devkit.sample_data.faults import CONFLICT, DUPLICATE, REJECT_REASONS, excluded_kinds
from devkit.sample_data.lines import NATIVE_COLUMNS, Format, line_expr
from devkit.sample_data.sample import GeneratedSample
from devkit.sample_data.summary import FileSummary, WriteResult


class _Tally:
    """What one file holds, counted chunk by chunk: lines by kind, and accepted events per
    customer and event name."""

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
    """Where a file's rows go, chunk by chunk, until it is closed."""

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
            frame.select(line_expr(self.escape)).write_csv(
                self.handle, include_header=False, quote_style="never")
        else:
            frame.select(NATIVE_COLUMNS).write_csv(self.handle, include_header=self.header)
            self.header = False

    def close(self) -> None:
        if self.header:  # an empty CSV part still gets its header
            self.handle.write((",".join(NATIVE_COLUMNS) + "\n").encode())
        self.handle.close()


class _ParquetSink(_Sink):
    """Parquet (zstd, one row group per chunk); properties as JSON text or as a struct."""

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
    """Stream the sample into ``parts`` files of about equal line counts, one sink per file."""
    paths = _part_paths(Path(path), parts)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    excluded = list(excluded_kinds(fmt))
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
                  lambda p: _TextSink(p, "jsonl", gzip, sample.needs_escaping))


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
        struct = sample.properties_struct()
        if not struct.fields:
            struct = None  # no event carries properties: an empty struct cannot be stored
    fmt: Format = "parquet_struct" if struct is not None else "parquet"
    return _write(sample, fmt, path, parts, lambda p: _ParquetSink(p, struct))
