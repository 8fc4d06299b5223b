"""Finance reporting: the monthly self-contained HTML report and the finance table exports."""

from pipelines.reporting.report import ReportFiles, build_report
from pipelines.reporting.report_data import parse_month

__all__ = ["ReportFiles", "build_report", "parse_month"]
