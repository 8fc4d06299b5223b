"""The one adapter from the product's plain check outcomes to Dagster asset check results."""

from __future__ import annotations

import dagster as dg

from pipelines.checks import CheckOutcome, MarkdownTable

SEVERITIES = {"error": dg.AssetCheckSeverity.ERROR, "warning": dg.AssetCheckSeverity.WARN}


def asset_check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The outcome as Dagster shows it: Markdown tables rendered, severity kept."""
    return dg.AssetCheckResult(
        passed=outcome.passed,
        description=outcome.description,
        severity=SEVERITIES[outcome.severity],
        metadata={key: dg.MetadataValue.md(value.markdown) if isinstance(value, MarkdownTable)
                  else value for key, value in outcome.metadata.items()},
    )
