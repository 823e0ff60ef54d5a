"""Choosing the time-series store, and the day arithmetic every store shares.

The store modules import from here, so `open_store` imports them when called: opening the
embedded store never loads httpx, and opening InfluxDB never loads a SQL dialect it does not use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from collector.readings import ReadingStore

T = TypeVar("T")


def open_store(timeseries_url: str, database_url: str) -> ReadingStore:
    """The store `TIMESERIES_URL` names: empty is the embedded SQL store in `database_url`,
    an http(s) URL is InfluxDB's v1-compatible API (its database is created if missing)."""
    if not timeseries_url.strip():
        from collector.tsdb_sql import SqlReadingStore

        return SqlReadingStore(database_url)
    if timeseries_url.startswith(("http://", "https://")):
        from collector.tsdb_influx import InfluxReadingStore

        store = InfluxReadingStore(timeseries_url)
        try:
            store.create_database()
        except BaseException:
            store.close()
            raise
        return store
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


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (itertools.batched arrived in 3.12)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
