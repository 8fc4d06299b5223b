"""Running pandera schemas as Dagster asset checks: one helper for every data check."""

from __future__ import annotations

import dagster as dg
import pandera.polars as pa
import polars as pl

MAX_FAILURES_SHOWN = 20


def markdown_table(frame: pl.DataFrame) -> str:
    """A small frame as a Markdown table for Dagster metadata."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |"
            for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def pandera_check(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> dg.AssetCheckResult:
    """Validate `frame` against `model`; a failure lists the failing checks and rows."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        shown = cases.head(MAX_FAILURES_SHOWN).select(
            [c for c in ("column", "check", "index", "failure_case") if c in cases.columns])
        return dg.AssetCheckResult(
            passed=False,
            description=f"{model.__name__}: {cases.height} failure(s)",
            metadata={
                "rows_checked": frame.height,
                "failures": cases.height,
                "failure_cases": dg.MetadataValue.md(markdown_table(shown)),
            },
        )
    return dg.AssetCheckResult(passed=True, metadata={"rows_checked": frame.height})
