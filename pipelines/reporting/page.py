"""The report page: one self-contained HTML document (inline CSS and SVG, no script, nothing
fetched), its sections in a fixed order behind a navigation bar."""

from __future__ import annotations

import calendar
from collections.abc import Sequence

from pipelines.reporting.formatting import instant, text
from pipelines.reporting.report_data import ReportData
from pipelines.reporting.sections import (
    aging_section,
    alerts_section,
    corrections_section,
    discrepancies_section,
    journal_section,
    revenue_section,
    summary_section,
    sync_health_section,
    tax_section,
)

SECTIONS = (("summary", "Summary"), ("revenue", "Revenue"), ("corrections", "Corrections"),
            ("journal", "Journal and revenue recognition"), ("tax", "Tax"),
            ("discrepancies", "Discrepancies"),
            ("sync-health", "Sync health"), ("aging", "Receivables aging"),
            ("alerts", "Open alerts"))

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --accent:#2f6fad; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
header { background:#102a43; color:#fff; padding:20px 28px; }
header h1 { margin:0 0 4px; font-size:22px; }
header p { margin:0; color:#bcccdc; }
nav { margin-top:12px; }
nav a { color:#d9e2ec; margin-right:16px; text-decoration:none; font-weight:600; }
main { max-width:1240px; margin:0 auto; padding:12px 20px 36px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px;
  margin:18px 0; }
h2 { margin:0 0 10px; font-size:19px; color:#102a43; border-bottom:2px solid var(--accent);
  padding-bottom:4px; }
h3 { margin:18px 0 8px; font-size:15px; color:#243b53; }
.scroll { overflow-x:auto; }
table { border-collapse:collapse; margin:6px 0 14px; min-width:40%; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:left;
  vertical-align:top; white-space:nowrap; }
td.wrap { white-space:normal; min-width:160px; }
th { background:#f0f4f8; font-weight:600; color:#334e68; white-space:nowrap; }
tbody tr:nth-child(even) { background:#fafbfc; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0 0 8px; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; font-weight:600; }
p.empty { color:var(--muted); font-style:italic; margin:8px 0; }
p.note { color:var(--muted); font-size:13px; margin:4px 0 8px; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:#f0f4f8;
  padding:0 3px; border-radius:3px; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px;
  background:#e4e7eb; white-space:nowrap; }
.badge.ok { background:#e3f9e5; color:#207227; }
.badge.bad, .badge.critical { background:#ffe3e3; color:#a61b1b; }
.badge.warn, .badge.warning { background:#fff3c4; color:#8d2b0b; }
.badge.info { background:#dceefb; color:#0b4f8a; }
svg.chart { display:block; margin:8px 0 16px; max-width:100%; height:auto; }
svg.chart text { font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;
  fill:var(--ink); }
svg.chart text.group { font-weight:700; font-size:13px; }
svg.chart text.value, svg.chart text.axis, svg.chart text.note { fill:var(--muted); }
svg.chart line.grid { stroke:#e4e7eb; }
svg.chart line.marker { stroke:#9aa5b1; stroke-dasharray:4 3; }
footer { max-width:1240px; margin:0 auto; padding:0 20px 32px; color:var(--muted); }
footer a { color:var(--accent); }
@media print { header { background:none; color:var(--ink); } nav { display:none; }
  section { break-inside:avoid; border:none; } }
"""


def render_page(data: ReportData, exports: Sequence[str] = ()) -> str:
    """The whole report as one HTML document: inline CSS and SVG, no script, no external
    resource; every text from the warehouse escaped."""
    bodies = {"summary": summary_section(data), "revenue": revenue_section(data),
              "corrections": corrections_section(data),
              "journal": journal_section(data), "tax": tax_section(data),
              "discrepancies": discrepancies_section(data),
              "sync-health": sync_health_section(data), "aging": aging_section(data),
              "alerts": alerts_section(data)}
    nav = "".join(f'<a href="#{key}">{text(title)}</a>' for key, title in SECTIONS)
    sections = "".join(f'<section id="{key}"><h2>{text(title)}</h2>{bodies[key]}</section>'
                       for key, title in SECTIONS)
    links = ", ".join(f'<a href="{text(name)}">{text(name)}</a>' for name in exports)
    footer = (f"<p>Exports beside this page (whole tables, every month): {links}.</p>"
              if exports else "<p>No exports: the finance tables are not in the warehouse "
                              "yet.</p>")
    month_name = f"{calendar.month_name[data.first_day.month]} {data.first_day.year}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Billing report {text(data.month)}</title><style>{CSS}</style></head>"
        f"<body><header><h1>Billing report \u2014 {text(month_name)}</h1>"
        f"<p>Billing month {text(data.month)} \u00b7 generated {text(instant(data.generated_at))}"
        f"</p><nav>{nav}</nav></header><main>{sections}</main>"
        f"<footer>{footer}</footer></body></html>\n")
