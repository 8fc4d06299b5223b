"""How `billing` commands print: aligned tables, each step's counts, the open alerts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pipelines.sharding import connect_finance_reader

if TYPE_CHECKING:
    from pipelines.cli.launch import ShardRun


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


def print_steps(runs: list[ShardRun]) -> None:
    """What each step of a run did, from its materialization's metadata; with customer shards
    one run per shard, each line saying its shard."""
    for number, run in enumerate(runs):
        prefix = f"shard {number}: " if len(runs) > 1 else ""
        for key, meta in run.metadata.items():
            counts = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in meta.items()
                               if isinstance(value, int | float | str)
                               and not isinstance(value, bool))
            print(f"{prefix}{key}: {counts or 'done'}")


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
