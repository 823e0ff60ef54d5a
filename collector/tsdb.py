"""Choosing the time-series store, and the day arithmetic every store shares.

The store modules import from here, so `open_store` imports them when called: opening the
embedded store never loads httpx, and opening InfluxDB never loads a SQL dialect it does not use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from collector.readings import EnergyGroup, ReadingStore, StoreUnavailable
from schema.measurements import TAG_BUILDING, TAG_FLOOR, TAG_UNIT

T = TypeVar("T")
log = logging.getLogger(__name__)


def open_store(
    timeseries_url: str, database_url: str, *, spool_dir: str | os.PathLike[str] | None = None
) -> ReadingStore:
    """The store `TIMESERIES_URL` names: empty is the embedded SQL store in `database_url`,
    an http(s) URL is InfluxDB's v1-compatible API (its database is created if missing).

    With `spool_dir` the store is wrapped in a SpoolingStore on that directory (the collector's
    writer): readings wait there while the store is unavailable, and an InfluxDB that is down
    when this opens does not stop the collector from starting (the database is created by the
    first write that finds it missing)."""
    if not timeseries_url.strip():
        from collector.tsdb_sql import SqlReadingStore

        return _spooled(SqlReadingStore(database_url), spool_dir)
    if timeseries_url.startswith(("http://", "https://")):
        from collector.tsdb_influx import InfluxReadingStore

        store = InfluxReadingStore(timeseries_url, create_missing_database=spool_dir is not None)
        try:
            store.create_database()
        except StoreUnavailable as exc:
            if spool_dir is None:
                store.close()
                raise
            log.warning("opening the time-series store: %s; readings are spooled meanwhile", exc)
        except BaseException:
            store.close()
            raise
        return _spooled(store, spool_dir)
    # Name only the scheme: the rest of the URL may hold a password.
    got = (
        f"a {timeseries_url.split('://', 1)[0]!r} URL"
        if "://" in timeseries_url
        else "a value without http:// or https://"
    )
    raise ValueError(
        "TIMESERIES_URL must be empty (readings kept in DATABASE_URL) or an InfluxDB URL such as "
        f"http://user:pass@127.0.0.1:8086/voltpay; got {got}"
    )


def _spooled(store: ReadingStore, spool_dir: str | os.PathLike[str] | None) -> ReadingStore:
    if spool_dir is None:
        return store
    from collector.spool import SpoolingStore

    try:
        return SpoolingStore(store, spool_dir)
    except BaseException:
        store.close()
        raise


def local_day_starts(start_on: date, end_on: date, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants where the local days start_on .. end_on begin, plus where end_on ends.

    Days are 23 or 25 hours long across a DST change, so each boundary is its own local midnight.
    A midnight skipped by a DST jump (fold=0) resolves to the instant the day actually begins.
    """
    count = (end_on - start_on).days + 1
    return [
        datetime.combine(start_on + timedelta(days=k), time(0), tzinfo=tz).astimezone(UTC)
        for k in range(count + 1)
    ]


def energy_per_day(
    meter_id: int, last_before: Decimal | None, spans: Mapping[date, tuple[Decimal, Decimal]]
) -> dict[tuple[int, date], Decimal]:
    """Per-day energy of one meter from each day's (first, last) register value.

    `last_before` is the last value before the first day asked for. Each day's energy is its last
    value minus the last value before it (the previous day with readings, however far back), or
    minus its own first value when the meter has no earlier reading. Days without readings have no
    entry: what the meter used on them is not known until it reports again.
    """
    result: dict[tuple[int, date], Decimal] = {}
    previous = last_before
    for day in sorted(spans):
        first, last = spans[day]
        result[(meter_id, day)] = last - (first if previous is None else previous)
        previous = last
    return result


@dataclass(frozen=True)
class Mark:
    """A meter's energy register at one instant."""

    at: datetime
    energy_kwh: Decimal


def later(a: Mark | None, b: Mark | None) -> Mark | None:
    """The more recent of two marks (either may be missing)."""
    if a is None or (b is not None and b.at > a.at):
        return b
    return a


@dataclass(frozen=True)
class DaySpan:
    """A meter's first and last reading on one local day."""

    first: Mark
    last: Mark

    def merged(self, other: DaySpan | None) -> DaySpan:
        """The span covering both: readings of a day may sit partly in raw readings and partly
        in the day's archived row (readings that arrived after the day was archived)."""
        if other is None:
            return self
        first = self.first if self.first.at <= other.first.at else other.first
        last = self.last if self.last.at >= other.last.at else other.last
        return DaySpan(first, last)


def energy_from_spans(
    meter_id: int, before: Mark | None, spans: Mapping[date, DaySpan]
) -> dict[tuple[int, date], Decimal]:
    """energy_per_day from merged spans and the last mark before the first day."""
    return energy_per_day(
        meter_id,
        None if before is None else before.energy_kwh,
        {day: (span.first.energy_kwh, span.last.energy_kwh) for day, span in spans.items()},
    )


# The tag that places a meter in each group; "meter" groups by the meter itself.
GROUP_TAGS: dict[str, str] = {"unit": TAG_UNIT, "floor": TAG_FLOOR, "building": TAG_BUILDING}


def check_group(group: str) -> None:
    if group != "meter" and group not in GROUP_TAGS:
        raise ValueError(f"energy is grouped by meter, unit, floor or building, not {group!r}")


def group_value(group: EnergyGroup, meter_id: int, tags: Mapping[str, str]) -> str | None:
    """The key a meter counts under in `group`, or None when it has no such place."""
    check_group(group)
    if group == "meter":
        return str(meter_id)
    return tags.get(GROUP_TAGS[group]) or None


def add_up(
    energy: Mapping[tuple[int, date], Decimal], key: Callable[[int, date], str | None]
) -> dict[tuple[str, date], Decimal]:
    """Per-meter daily energy summed under each meter-day's group key (None: left out)."""
    result: dict[tuple[str, date], Decimal] = {}
    for (meter_id, day), kwh in energy.items():
        value = key(meter_id, day)
        if value is not None:
            result[(value, day)] = result.get((value, day), Decimal(0)) + kwh
    return result


def energy_by_group(
    store: ReadingStore,
    group: EnergyGroup,
    start_on: date,
    end_on: date,
    tz: ZoneInfo,
    meters: Mapping[int, Mapping[str, str]],
) -> dict[tuple[str, date], Decimal]:
    """daily_energy_by for meters placed by the caller: the store's daily_energy, added up."""
    check_group(group)
    places = {meter_id: group_value(group, meter_id, tags) for meter_id, tags in meters.items()}
    chosen = [meter_id for meter_id, value in places.items() if value is not None]
    energy = store.daily_energy(chosen, start_on, end_on, tz)
    return add_up(energy, lambda meter_id, _day: places[meter_id])


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (itertools.batched arrived in 3.12)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
