"""Alerts that open and close as conditions change (`health.alerts`, `health.alert_history`).

A condition has a stable key (e.g. ``sync_failed:stripe:inv_...``). Raising an open alert again
only moves its `last_seen`; resolving it moves it to the history with its closing time. Callers
hold the warehouse writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import duckdb

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Alert:
    key: str
    severity: Severity
    subject: str
    detail: str
    source: str


def raise_alerts(con: duckdb.DuckDBPyConnection, alerts: Iterable[Alert], *,
                 now: datetime) -> int:
    """Open the alerts (or refresh the ones already open); returns how many were new."""
    opened = 0
    for alert in alerts:
        known = con.execute("SELECT count(*) FROM health.alerts WHERE alert_key = $key",
                            {"key": alert.key}).fetchall()[0][0]
        if known:
            con.execute("""
                UPDATE health.alerts SET last_seen = $now, detail = $detail,
                       severity = $severity, subject = $subject
                WHERE alert_key = $key""",
                {"now": now, "detail": alert.detail, "severity": alert.severity,
                 "subject": alert.subject, "key": alert.key}).fetchall()
        else:
            con.execute("""
                INSERT INTO health.alerts
                    (alert_key, severity, subject, detail, first_seen, last_seen, source)
                VALUES ($key, $severity, $subject, $detail, $now, $now, $source)""",
                {"key": alert.key, "severity": alert.severity, "subject": alert.subject,
                 "detail": alert.detail, "now": now, "source": alert.source}).fetchall()
            opened += 1
    return opened


def resolve_alerts(con: duckdb.DuckDBPyConnection, keys: Iterable[str], *,
                   now: datetime) -> int:
    """Close the open alerts among `keys`; returns how many closed."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return 0
    con.execute("""
        INSERT INTO health.alert_history
            (alert_key, severity, subject, detail, first_seen, last_seen, closed_at, source)
        SELECT alert_key, severity, subject, detail, first_seen, last_seen, $now, source
        FROM health.alerts WHERE list_contains($keys, alert_key)""",
                {"keys": wanted, "now": now}).fetchall()
    closed = con.execute("DELETE FROM health.alerts WHERE list_contains($keys, alert_key)",
                         {"keys": wanted}).fetchall()
    return int(closed[0][0]) if closed else 0


def open_alert_keys(con: duckdb.DuckDBPyConnection, prefix: str) -> set[str]:
    """Keys of the open alerts whose key starts with `prefix`."""
    rows = con.execute("SELECT alert_key FROM health.alerts WHERE starts_with(alert_key, $p)",
                       {"p": prefix}).fetchall()
    return {row[0] for row in rows}


def open_alert_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many alerts are open now."""
    return int(con.execute("SELECT count(*) FROM health.alerts").fetchall()[0][0])
