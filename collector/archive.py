"""Archiving (数据转存): old readings rolled up to one row per meter per site-local day.

The hot data keeps every reading for a configurable number of days; older whole days become one
daily row per meter (the SQL store's `ts_daily` table, InfluxDB's `meter_readings_daily`
measurement) and their readings are removed. A daily row keeps the day's first and last register
values with their times, which is all daily energy needs: a day's energy is its last value minus
the last value before it, and "the last value before it" is the previous day's row when that day
was archived. So every report total stays what it was; only `readings()` of archived days comes
back empty.

The stores do the work (`ReadingStore.archive`); this module holds what they share: which days a
cutoff covers, how a day's rows merge, and the energy kept on each row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from collector.readings import ReadingStore
from collector.tsdb import DaySpan, local_day_starts

# Days archived per step: each step is one transaction (SQL) or one delete (InfluxDB), so a
# first run over a long history works in bounded pieces.
ARCHIVE_STEP_DAYS = 7


@dataclass(frozen=True)
class DayRollup:
    """One meter's readings of one local day, as kept after archiving.

    `energy_kwh` is the day's energy as daily_energy counts it (last value minus the last value
    before the day, or minus the day's first when there is none) when the row was written; the
    stores compute reports from the first and last values, so it is there for anyone reading the
    rows directly. `readings` is how many readings the day had. `tags` (InfluxDB only) are the
    tags of the day's last reading.
    """

    meter_id: int
    on_date: date
    span: DaySpan
    readings: int
    max_power_kw: Decimal | None
    energy_kwh: Decimal = Decimal(0)
    tags: Mapping[str, str] = field(default_factory=dict)


def archive_cut(before: datetime, tz: ZoneInfo) -> tuple[date, datetime]:
    """The first local day not archived, and the UTC instant it starts.

    Only whole days entirely before `before` are archived: the day `before` falls in stays hot.
    """
    if before.tzinfo is None:
        raise ValueError(f"expected an aware datetime, got {before!r}")
    cut_on = before.astimezone(tz).date()
    return cut_on, local_day_starts(cut_on, cut_on, tz)[0]


def archive_cutoff(now: datetime, keep_days: int, tz: ZoneInfo) -> datetime:
    """Where archiving starts when the last `keep_days` local days (today included) stay hot."""
    if keep_days < 1:
        raise ValueError(f"keep at least today's readings hot, not {keep_days} days")
    first_kept = now.astimezone(tz).date() - timedelta(days=keep_days - 1)
    return local_day_starts(first_kept, first_kept, tz)[0].astimezone(UTC)


def archive_readings(store: ReadingStore, *, keep_days: int, tz: ZoneInfo, now: datetime) -> int:
    """Archive every local day older than the last `keep_days`; return the readings removed."""
    return store.archive(archive_cutoff(now, keep_days, tz), tz)


def merge_rollup(kept: DayRollup | None, fresh: DayRollup) -> DayRollup:
    """A day's archived row with readings of that day found in the hot data again.

    Those are readings written after the day was archived, or (InfluxDB, which has no
    transactions) readings whose removal an interrupted run did not reach. Readings inside the
    archived span are taken to be counted already: a re-sent reading has the time of one that was.
    The archived row keeps its tags, so InfluxDB overwrites the same point.
    """
    if kept is None:
        return fresh
    inside = kept.span.first.at <= fresh.span.first.at and fresh.span.last.at <= kept.span.last.at
    powers = [p for p in (kept.max_power_kw, fresh.max_power_kw) if p is not None]
    return replace(
        kept,
        span=kept.span.merged(fresh.span),
        readings=kept.readings + (0 if inside else fresh.readings),
        max_power_kw=max(powers) if powers else None,
    )


def chain_energy(rollups: Iterable[DayRollup], previous_kwh: Decimal | None) -> list[DayRollup]:
    """One meter's rows, oldest first, each with its day's energy; `previous_kwh` is the last
    value before the first of them."""
    result = []
    for rollup in sorted(rollups, key=lambda r: r.on_date):
        start = rollup.span.first.energy_kwh if previous_kwh is None else previous_kwh
        result.append(replace(rollup, energy_kwh=rollup.span.last.energy_kwh - start))
        previous_kwh = rollup.span.last.energy_kwh
    return result


def merge_step(
    kept: Mapping[tuple[int, date], DayRollup],
    fresh: Mapping[tuple[int, date], DayRollup],
    previous_kwh: dict[int, Decimal],
) -> list[DayRollup]:
    """The rows of one archiving step that must be written: archived rows merged with the
    step's hot readings, energy chained from `previous_kwh` (updated in place for the next step).
    Rows that come out unchanged are left out."""
    merged = {key: merge_rollup(kept.get(key), rollup) for key, rollup in fresh.items()}
    for key, rollup in kept.items():
        merged.setdefault(key, rollup)
    by_meter: dict[int, list[DayRollup]] = {}
    for rollup in merged.values():
        by_meter.setdefault(rollup.meter_id, []).append(rollup)
    changed = []
    for meter_id, rollups in by_meter.items():
        chained = chain_energy(rollups, previous_kwh.get(meter_id))
        previous_kwh[meter_id] = chained[-1].span.last.energy_kwh
        changed += [r for r in chained if kept.get((r.meter_id, r.on_date)) != r]
    return changed
