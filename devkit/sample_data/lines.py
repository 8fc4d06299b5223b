"""What a line of a sample file looks like: the native columns, the file formats, and the two
renderers of a JSON Lines line (one row at a time for bad lines, vectorised for everything else)
that write exactly the same text."""

from __future__ import annotations

import json
from typing import Any, Literal

import polars as pl

#: Columns of CSV and Parquet files (native shape).
NATIVE_COLUMNS: tuple[str, ...] = (
    "event_id", "event_name", "customer_id", "timestamp", "properties", "source",
    "subscription_id",
)
Format = Literal["jsonl", "csv", "parquet", "parquet_struct"]


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


def _quoted(column: str, escape: bool) -> pl.Expr:
    expr = pl.col(column)
    if escape:
        expr = expr.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
            '"', '\\"', literal=True)
    return pl.concat_str([pl.lit('"'), expr, pl.lit('"')])


def line_expr(escape: bool) -> pl.Expr:
    """JSON Lines text of each row: its raw text when it has one, else native or CloudEvents.

    ``escape`` is needed only when a customer id, event name or subscription id holds a quote,
    a backslash or a control character (`GeneratedSample.needs_escaping`).
    """
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
