"""How `billing` commands print: aligned tables, each step's counts, the open alerts."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from pipelines.sharding import connect_finance_reader


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Rows as an aligned text table (numbers right-aligned)."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None or
                   type(row[i]).__name__ == "Decimal" for row in rows) and rows
               for i in range(len(columns))]

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    print(fmt(list(columns)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(fmt(row))


def print_steps(result: dg.ExecuteInProcessResult) -> None:
    """What each step of a run did, from its materialization's metadata."""
    for materialization in result.get_asset_materialization_events():
        meta = materialization.materialization.metadata
        counts = ", ".join(f"{key.replace('_', ' ')} {value.value}" for key, value in meta.items()
                           if isinstance(value.value, int | float | str)
                           and not isinstance(value.value, bool))
        key = materialization.asset_key.to_user_string() if materialization.asset_key else "?"
        print(f"{key}: {counts or 'done'}")


def print_open_alerts() -> None:
    """The open alerts, most severe first (at most 20 shown)."""
    with connect_finance_reader() as con:
        alerts = con.execute("""
            SELECT severity, alert_key, detail FROM health.alerts
            ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                     alert_key""").fetchall()
    print(f"{len(alerts)} open alert(s)")
    for severity, key, detail in alerts[:20]:
        print(f"  {severity}: {key}: {detail}")
