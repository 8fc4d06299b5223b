"""Cells and tables of the report page: every value formatted and escaped in one place.

Money is printed from exact Decimals with the currency's minor units (`pipelines.rating.money`);
every text that comes from the warehouse goes through `text`, which escapes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

from pipelines.rating.money import round_money
from pipelines.reporting.report_data import ReportData


def text(value: object) -> str:
    """Escaped text for the page; a missing value shows as a dash."""
    return "\u2014" if value is None or value == "" else escape(str(value), quote=True)


def format_money(amount: Decimal | int | None, currency: str) -> str:
    """An exact amount with the currency's minor units and thousands separators
    (EUR 1234.5 -> '1,234.50', JPY 150000 -> '150,000'). Unknown codes print as stored."""
    if amount is None:
        return ""
    try:
        return f"{round_money(Decimal(amount), currency):,}"
    except ValueError:
        return f"{Decimal(amount):,f}"


def count(value: int | None) -> str:
    """A count with thousands separators; blank when missing."""
    return "" if value is None else f"{value:,}"


def instant(value: datetime | None) -> str:
    """An instant in UTC to the minute; blank when missing."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def number(value: float | None, digits: int = 0) -> str:
    """A measurement (milliseconds, hours) with thousands separators; blank when missing."""
    return "" if value is None else f"{value:,.{digits}f}"


def table(columns: Sequence[str], rows: Iterable[Sequence[str]], *,
          numeric: Iterable[int] = (), wrap: Iterable[int] = (), css: str = "") -> str:
    """An HTML table; cells are given already escaped (from `text` and the formatters).
    Numeric columns are right-aligned; only the `wrap` columns (free text) break lines."""
    classes = {i: ' class="num"' for i in numeric} | {i: ' class="wrap"' for i in wrap}
    head = "".join(f"<th{classes.get(i, '')}>{text(c)}</th>" for i, c in enumerate(columns))
    body = "".join("<tr>" + "".join(f"<td{classes.get(i, '')}>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="{text(css) if css else "data"}"><thead><tr>{head}'
            f"</tr></thead><tbody>{body}</tbody></table></div>")


def nothing_to_report(reason: str) -> str:
    """The line a section shows when it has no rows."""
    return f'<p class="empty">Nothing to report: {text(reason)}</p>'


def missing_note(data: ReportData, tables: Iterable[str]) -> str:
    """A note naming the tables a section reads that are not in the warehouse yet."""
    gone = sorted(set(tables) & data.missing)
    if not gone:
        return ""
    return (f'<p class="note">Not in the warehouse yet: {text(", ".join(gone))} '
            f"(the reconciliation has not built it yet).</p>")


def status_badge(status: str) -> str:
    """A match status as a badge: green when matched, red otherwise."""
    css = "ok" if status == "matched" else "bad"
    return f'<span class="badge {css}">{text(status)}</span>'
