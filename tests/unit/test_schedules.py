"""Schedules evaluated without running anything: what each tick would launch."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg


def test_daily_schedule_rates_the_current_month():
    from pipelines.run_context import NOW_TAG
    from pipelines.schedules import daily_billing_schedule

    tick = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    request = daily_billing_schedule(dg.build_schedule_context(scheduled_execution_time=tick))
    assert request.partition_key == "2026-11-01"
    assert request.tags[NOW_TAG] == tick.isoformat()
