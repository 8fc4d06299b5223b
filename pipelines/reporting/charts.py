"""Charts for the finance report as inline SVG, drawn here so the page needs nothing but itself.

The numbers a chart prints come formatted by the caller (exact Decimals, the currency's minor
units); floats are used only for pixel positions. Amounts of different currencies are never put
on one scale: each group of a bar chart (one currency) is scaled to its own largest bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

WIDTH = 760
LABEL_WIDTH = 230
BAR_WIDTH = 380
ROW_HEIGHT = 22
GROUP_HEADING = 26
PALETTE = ("#2f6fad", "#c0392b", "#e08e0b", "#2e8b57", "#7d5ba6", "#6c7a89")


@dataclass(frozen=True)
class Bar:
    """One bar: its label, the exact value that sets its length, and the text printed beside."""

    label: str
    value: Decimal | int
    text: str


@dataclass(frozen=True)
class BarGroup:
    """Bars sharing one scale (e.g. one currency), under a heading."""

    title: str
    bars: Sequence[Bar]


@dataclass(frozen=True)
class Series:
    """One line of a line chart: a value per x position."""

    name: str
    values: Sequence[int]
    color: str


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _fraction(value: Decimal | int, largest: Decimal | int) -> float:
    """The share of the bar area a value takes (a float: pixels only)."""
    if not largest:
        return 0.0
    return float(abs(Decimal(value)) / abs(Decimal(largest)))


def bar_chart(title: str, groups: Sequence[BarGroup], *, note: str | None = None) -> str:
    """Horizontal bars, one block per group, each group on its own scale.

    Used for revenue by plan (a group per currency), discrepancy counts and receivables aging.
    """
    rows = sum(len(g.bars) for g in groups)
    height = 8 + len(groups) * GROUP_HEADING + rows * ROW_HEIGHT + (18 if note else 0)
    parts = [f'<svg class="chart" role="img" aria-label="{_attr(title)}" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}">',
             f"<title>{escape(title)}</title>"]
    y = 8
    for index, group in enumerate(groups):
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<text class="group" x="0" y="{y + 16}">{escape(group.title)}</text>')
        y += GROUP_HEADING
        largest = max((abs(Decimal(b.value)) for b in group.bars), default=Decimal(0))
        for bar in group.bars:
            length = max(_fraction(bar.value, largest) * BAR_WIDTH, 1.0 if bar.value else 0.0)
            fill = "#9aa5b1" if Decimal(bar.value) < 0 else color
            parts.append(
                f'<g><title>{escape(bar.label)}: {escape(bar.text)}</title>'
                f'<text class="label" x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">'
                f"{escape(_short(bar.label))}</text>"
                f'<rect x="{LABEL_WIDTH}" y="{y + 4}" width="{length:.1f}" height="14" '
                f'rx="2" fill="{fill}"/>'
                f'<text class="value" x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 15}">'
                f"{escape(bar.text)}</text></g>")
            y += ROW_HEIGHT
    if note:
        parts.append(f'<text class="note" x="0" y="{y + 12}">{escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, x_labels: Sequence[str], series: Sequence[Series], *,
               marker: int | None = None, marker_label: str = "") -> str:
    """Lines over days (e.g. a provider's attempts, failures and 429s), with a legend, the
    y scale from 0 to the largest value, and an optional dashed marker at one x position."""
    height, left, right, top, bottom = 244, 52, 16, 44, 40
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    largest = max((v for s in series for v in s.values), default=0) or 1
    count = len(x_labels)

    def x(i: int) -> float:
        return left + (plot_w / 2 if count <= 1 else plot_w * i / (count - 1))

    def y(v: int) -> float:
        return top + plot_h - plot_h * (v / largest)

    parts = [f'<svg class="chart" role="img" aria-label="{_attr(title)}" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}">',
             f"<title>{escape(title)}</title>"]
    for tick in sorted({0, largest // 2, largest}):
        parts.append(f'<line class="grid" x1="{left}" x2="{WIDTH - right}" '
                     f'y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="axis" x="{left - 6}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:,}</text>')
    if marker is not None and 0 <= marker < count:
        parts.append(f'<line class="marker" x1="{x(marker):.1f}" x2="{x(marker):.1f}" '
                     f'y1="{top}" y2="{top + plot_h}"/>'
                     f'<text class="axis" x="{x(marker):.1f}" y="{top - 6}" '
                     f'text-anchor="middle">'
                     f"{escape(marker_label)}</text>")
    shown = {0, count - 1} | ({marker} if marker is not None else set())
    for i in sorted(i for i in shown if 0 <= i < count):
        anchor = "start" if i == 0 and count > 1 else "end" if i == count - 1 else "middle"
        parts.append(f'<text class="axis" x="{x(i):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="{anchor}">{escape(x_labels[i])}</text>')
    for position, line in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
        parts.append(f'<polyline fill="none" stroke="{_attr(line.color)}" stroke-width="2" '
                     f'points="{points}"><title>{escape(line.name)}</title></polyline>')
        for i, v in enumerate(line.values):
            if v:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" '
                             f'fill="{_attr(line.color)}"><title>{escape(x_labels[i])} '
                             f"{escape(line.name)}: {v:,}</title></circle>")
        lx = left + position * 150
        parts.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{_attr(line.color)}"/>'
                     f'<text class="legend" x="{lx + 17}" y="16">{escape(line.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
