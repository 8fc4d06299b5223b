"""Data checks as plain outcomes: what was checked, whether it passed, and the failing rows.

Every check of the product (pandera schemas over a frame, the invoice audits) returns a
`CheckOutcome`; the orchestration turns it into a Dagster asset check result
(`pipelines.asset_checks`), and tests read it as it is. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pandera.polars as pa
import polars as pl

MAX_FAILURES_SHOWN = 20

Severity = Literal["error", "warning"]
"""An error fails the check (and stops a blocking one's run); a warning only reports."""


@dataclass(frozen=True)
class MarkdownTable:
    """A small table in Markdown, shown as a table where the check's details are read."""

    markdown: str


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one data check: passed or not, why, and the counts and rows behind it."""

    passed: bool
    description: str | None = None
    metadata: Mapping[str, int | str | MarkdownTable] = field(default_factory=dict)
    severity: Severity = "error"


def markdown_table(frame: pl.DataFrame) -> MarkdownTable:
    """A small frame as a Markdown table."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |"
            for row in frame.iter_rows()]
    return MarkdownTable("\n".join([header, rule, *rows]))


def pandera_check(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> CheckOutcome:
    """Validate `frame` against `model`; a failure lists the failing checks and rows."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        shown = cases.head(MAX_FAILURES_SHOWN).select(
            [c for c in ("column", "check", "index", "failure_case") if c in cases.columns])
        return CheckOutcome(
            passed=False,
            description=f"{model.__name__}: {cases.height} failure(s)",
            metadata={
                "rows_checked": frame.height,
                "failures": cases.height,
                "failure_cases": markdown_table(shown),
            },
        )
    return CheckOutcome(passed=True, metadata={"rows_checked": frame.height})
