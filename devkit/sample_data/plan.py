"""The event plan: what a month of sample usage contains, decided before any row exists.

Only customers with a subscription active in the month send events, only while it is active
(a subscription starting on the 20th sends from the 20th), and only the event names of the
meters of its plan. ``customers`` caps how many catalog customers are used (the first ones in
catalog order); customers are never invented, since events of unknown customers are rejected.
Each customer gets a random weight, each event name a weight by what it is (`event_weight`), and
events are spread over the month's active time in proportion.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime
from itertools import pairwise

import polars as pl

from devkit.sample_data.faults import fault_counts, plan_faults
from devkit.sample_data.properties import event_weight, property_recipes
from devkit.sample_data.sample import GeneratedSample, epoch_ms
from devkit.sample_data.summary import SampleSummary
from pipelines.catalog.models import Catalog, Meter, Subscription

#: Events are produced in chunks of this many; the chunk size is part of the recipe.
DEFAULT_CHUNK_EVENTS = 1_000_000
_ID_PLAIN = re.compile(r'^[^"\\\x00-\x1f]*$')


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must look like YYYY-MM, got {month!r}")
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _active_in(sub: Subscription, start: datetime, end: datetime) -> bool:
    return _midnight(sub.start_date) < end and (
        sub.end_date is None or _midnight(sub.end_date) > start)


def generate_events(
    catalog: Catalog,
    *,
    customers: int | None,
    events: int,
    month: str,
    seed: int = 7,
    duplicates: int | None = None,
    conflicts: int | None = None,
    bad_lines: int | None = None,
    cloudevents_share: float = 0.1,
    chunk_events: int = DEFAULT_CHUNK_EVENTS,
) -> GeneratedSample:
    """Plan ``events`` valid usage events of ``month`` ('YYYY-MM') for the catalog's customers.

    ``customers`` caps how many catalog customers send events (the first ones in catalog order
    with a subscription active in the month); None uses them all. ``duplicates``, ``conflicts``
    and ``bad_lines`` default to 0.1% of ``events`` (at least one each, and bad lines at least one
    per reason, once ``events`` >= 100). Bad lines are dealt out over `REJECT_REASONS` in turn.
    Nothing is generated until rows are asked for (`GeneratedSample.iter_frames` or a writer).
    """
    if events < 0:
        raise ValueError("events must be zero or more")
    if customers is not None and customers < 1:
        raise ValueError("customers must be at least 1 (or None for every catalog customer)")
    if not 0.0 <= cloudevents_share <= 1.0:
        raise ValueError("cloudevents_share must be between 0 and 1")
    if chunk_events < 1:
        raise ValueError("chunk_events must be at least 1")
    start, end = _month_bounds(month)
    n_dup, n_conf, n_bad = fault_counts(events, duplicates, conflicts, bad_lines)

    # Customers with a subscription active in the month, in catalog order, capped.
    subs_by_customer: dict[str, list[Subscription]] = {}
    for sub in catalog.subscriptions.values():
        if _active_in(sub, start, end):
            subs_by_customer.setdefault(sub.customer, []).append(sub)
    used = [c for c in catalog.customers if c in subs_by_customer]
    if customers is not None:
        used = used[:customers]

    # Event names, with what the catalog's meters read from them.
    meters_by_event: dict[str, list[Meter]] = {}
    for meter in catalog.meters.values():
        meters_by_event.setdefault(meter.event_name, []).append(meter)

    # Segments of the month between subscription starts and ends; templates per segment.
    cuts = {start, end}
    for customer in used:
        for sub in subs_by_customer[customer]:
            for day in (sub.start_date, sub.end_date):
                if day is not None and start < _midnight(day) < end:
                    cuts.add(_midnight(day))
    bounds = sorted(cuts)
    rng = random.Random(f"billing-sample:{seed}:catalog")
    weight_of = {c: 1 + int(9 * rng.random() ** 3) for c in used}
    event_names: list[str] = []
    templates: list[tuple[str, str, int, int, int]] = []
    segments: list[tuple[int, int, int, int, int]] = []
    active_at = weight_at = 0
    for seg_start, seg_end in pairwise(bounds):
        rows: list[tuple[str, str, int, int, int]] = []
        for customer in used:
            for sub in subs_by_customer[customer]:
                if not sub.active_on(seg_start.date()):
                    continue
                names: list[str] = []
                for price in catalog.plans[sub.plan].prices:
                    if price.meter and catalog.meters[price.meter].event_name not in names:
                        names.append(catalog.meters[price.meter].event_name)
                for name in names:
                    if name not in event_names:
                        event_names.append(name)
                    weight = weight_of[customer] * event_weight(name)
                    pool = 5 + 20 * weight_of[customer]
                    rows.append((customer, sub.id, event_names.index(name), pool, weight))
        if not rows:
            continue
        total_weight = sum(r[4] for r in rows)
        length = epoch_ms(seg_end) - epoch_ms(seg_start)
        segments.append((active_at, active_at + length, epoch_ms(seg_start), weight_at,
                         total_weight))
        for customer, sub_id, event, pool, weight in rows:
            weight_at += weight
            templates.append((customer, sub_id, event, pool, weight_at))
        active_at += length
    if events and not templates:
        raise ValueError(f"no catalog customer has a subscription with usage meters in {month}")
    if weight_at >= 1 << 31:
        raise ValueError("too many customers for the sample generator's weight table")

    # Faults, decided upfront so their counts are known before any row exists.
    faults = plan_faults(seed, events, n_dup, n_conf, n_bad)

    strings = [*used, *event_names, *(sub.id for c in used for sub in subs_by_customer[c])]
    recipes = tuple(tuple(property_recipes(name, meters_by_event.get(name, [])))
                    for name in event_names)
    template_frame = pl.DataFrame(
        templates, schema={"customer_id": pl.String, "subscription_id": pl.String,
                           "event": pl.Int64, "pool": pl.Int64, "weight_end": pl.Int64},
        orient="row")
    segment_frame = pl.DataFrame(
        segments, schema={"active_start": pl.Int64, "active_end": pl.Int64,
                          "real_start": pl.Int64, "weight_start": pl.Int64, "weight": pl.Int64},
        orient="row")
    return GeneratedSample(
        month=f"{start.year:04d}-{start.month:02d}",
        period_start=start,
        period_end=end,
        seed=seed,
        events=events,
        cloudevents_share=cloudevents_share,
        chunk_events=chunk_events,
        customer_ids=tuple(used),
        summary=SampleSummary(events, n_dup, n_conf, faults.bad_counts(), len(used)),
        templates=template_frame,
        segments=segment_frame,
        event_names=tuple(event_names),
        property_recipes=recipes,
        faults=faults,
        needs_escaping=not all(_ID_PLAIN.match(s) for s in strings),
        catalog_customers=frozenset(catalog.customers),
    )
