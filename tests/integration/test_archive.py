"""Archiving (数据转存) on SQLite, PostgreSQL and a real influxd: old days become one row per meter
and day, their readings leave the hot data, and no report total moves."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import delete, select

from collector.archive import archive_cutoff, archive_readings
from collector.readings import MeterReading, ReadingStore
from collector.tsdb_influx import InfluxReadingStore
from collector.tsdb_sql import SqlReadingStore, rebuild_day_spans
from schema.db import get_engine
from schema.measurements import DAILY
from schema.models import DailyReading, ReadingDay

Rows = Callable[..., dict[tuple[int, date], tuple[object, ...]]]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
FIRST_DAY = date(2024, 3, 1)
DAYS = [FIRST_DAY + timedelta(days=k) for k in range(10)]
GROUPS = ("meter", "unit", "floor", "building")
PLACES: dict[int, dict[str, str]] = {
    1: {"unit": "U1", "floor": "F1", "building": "B1", "gateway": "GW-1"},
    2: {"unit": "U2", "floor": "F1", "building": "B1", "gateway": "GW-1"},
    3: {"unit": "U3", "floor": "F2", "building": "B2", "gateway": "GW-2"},
    4: {"gateway": "GW-2"},
}
# Report ranges across the cutoff, inside the archived days, and inside the hot ones.
RANGES = [
    (DAYS[0], DAYS[9]),
    (DAYS[2], DAYS[8]),
    (DAYS[1], DAYS[4]),
    (DAYS[6], DAYS[7]),
    (DAYS[7], DAYS[9]),
    (DAYS[8], DAYS[8]),
]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("influx", marks=pytest.mark.influx),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[ReadingStore]:
    if request.param == "influx":
        influx: InfluxReadingStore = request.getfixturevalue("influx_store")
        yield influx
        return
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    sql = SqlReadingStore(url)
    yield sql
    sql.close()


@pytest.fixture
def archived_rows(
    store: ReadingStore, request: pytest.FixtureRequest
) -> Callable[..., dict[tuple[int, date], tuple[object, ...]]]:
    """What the store keeps per archived meter-day: (energy, readings, first value, last value,
    highest power), read straight from ts_daily or the daily measurement."""
    kind = request.node.callspec.params["store"]
    if kind != "influx":
        url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "pg_url")

        def from_sql(tz: ZoneInfo = SHANGHAI) -> dict[tuple[int, date], tuple[object, ...]]:
            with get_engine(url).connect() as conn:
                return {
                    (row.meter_id, row.on_date): (
                        row.energy_kwh,
                        row.readings,
                        row.first_energy_kwh,
                        row.last_energy_kwh,
                        row.max_power_kw,
                    )
                    for row in conn.execute(select(DailyReading))
                }

        return from_sql
    influx_url = request.getfixturevalue("influx_url")
    assert isinstance(store, InfluxReadingStore)

    def from_influx(tz: ZoneInfo = SHANGHAI) -> dict[tuple[int, date], tuple[object, ...]]:
        query = (
            "SELECT energy_kwh, readings, first_energy_kwh, last_energy_kwh, max_power_kw "
            f'FROM "{DAILY}" GROUP BY meter'
        )
        answer = httpx.post(
            f"{influx_url}/query",
            params={"db": store.database, "epoch": "ns"},
            data={"q": query},
        ).json()["results"][0]
        rows: dict[tuple[int, date], tuple[object, ...]] = {}
        for series in answer.get("series", []):
            for ns, energy, count, first, last, power in series["values"]:
                day = datetime.fromtimestamp(ns / 1e9, tz).date()
                rows[(int(series["tags"]["meter"]), day)] = (
                    kwh(energy),
                    count,
                    kwh(first),
                    kwh(last),
                    kwh(power),
                )
        return rows

    return from_influx


def kwh(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value)).quantize(Decimal("0.0001"))


def at(tz: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)


def ten_days() -> list[MeterReading]:
    """Ten days in Shanghai: meter 1 every three hours; meter 2 silent on days 3-4 and 6-8, so
    day 9 counts from day 5; meter 3 starts on day 5; meter 4 reads either side of midnight."""
    rng = random.Random(4)
    readings = []
    energy = {m: Decimal(100 * m) for m in PLACES}

    def add(meter_id: int, when: datetime) -> None:
        energy[meter_id] += Decimal(rng.randint(0, 400)).scaleb(-2)
        readings.append(
            MeterReading(
                meter_id,
                when,
                energy[meter_id],
                power_kw=Decimal(rng.randint(0, 99)),
                tags=PLACES[meter_id],
            )
        )

    for k, day in enumerate(DAYS, start=1):
        for hour in range(0, 24, 3):
            add(1, at(SHANGHAI, day, hour, 15))
            if k not in (3, 4, 6, 7, 8):
                add(2, at(SHANGHAI, day, hour, 40))
            if k >= 5 and hour >= 9:
                add(3, at(SHANGHAI, day, hour))
        add(4, at(SHANGHAI, day, 0, 0))
        add(4, at(SHANGHAI, day, 23, 59))
    return readings


def reference(
    readings: Sequence[MeterReading], start_on: date, end_on: date, tz: ZoneInfo
) -> dict[tuple[int, date], Decimal]:
    """Daily energy by its definition, from every reading ever written."""
    result = {}
    for meter_id in {r.meter_id for r in readings}:
        mine = sorted((r for r in readings if r.meter_id == meter_id), key=lambda r: r.at)
        day = start_on
        while day <= end_on:
            today = [r for r in mine if r.at.astimezone(tz).date() == day]
            earlier = [r for r in mine if r.at.astimezone(tz).date() < day]
            if today:
                start = (earlier or today)[-1 if earlier else 0].energy_kwh
                result[(meter_id, day)] = today[-1].energy_kwh - start
            day += timedelta(days=1)
    return result


def reports(store: ReadingStore, tz: ZoneInfo = SHANGHAI) -> dict[object, object]:
    """Every report over every range: per meter, and by meter, unit, floor and building."""
    result: dict[object, object] = {}
    for start_on, end_on in RANGES:
        result[(start_on, end_on)] = store.daily_energy(list(PLACES), start_on, end_on, tz)
        for group in GROUPS:
            result[(group, start_on, end_on)] = store.daily_energy_by(
                group, start_on, end_on, tz, meters=PLACES
            )
    return result


def hot(store: ReadingStore) -> dict[int, list[MeterReading]]:
    start, end = (
        at(SHANGHAI, DAYS[0], 0) - timedelta(days=30),
        at(SHANGHAI, DAYS[-1], 0) + (timedelta(days=30)),
    )
    return {m: store.readings(m, start, end) for m in PLACES}


def test_archiving_keeps_every_report_total_and_removes_old_readings(
    store: ReadingStore, archived_rows: Rows
) -> None:
    written = ten_days()
    store.write(written)
    before = reports(store)
    for (start_on, end_on), energy in ((k, v) for k, v in before.items() if len(k) == 2):
        assert energy == reference(written, start_on, end_on, SHANGHAI)
    cutoff = at(SHANGHAI, DAYS[7], 15)  # in day 8: days 1-7 are whole days before it

    removed = store.archive(cutoff, SHANGHAI)

    day8 = at(SHANGHAI, DAYS[7], 0)
    assert removed == sum(1 for r in written if r.at < day8)
    assert reports(store) == before
    for meter_id, readings in hot(store).items():
        assert [(r.at, r.energy_kwh) for r in readings] == [
            (r.at, r.energy_kwh) for r in written if r.meter_id == meter_id and r.at >= day8
        ]
    # One row per meter-day archived, with the day's energy as reports counted it.
    daily_before = before[(DAYS[0], DAYS[9])]
    assert isinstance(daily_before, dict)
    rows = archived_rows()
    assert set(rows) == {key for key in daily_before if key[1] < DAYS[7]}
    for (meter_id, day), (energy_kwh, count, first_kwh, last_kwh, max_power) in rows.items():
        today = [
            r for r in written if r.meter_id == meter_id and r.at.astimezone(SHANGHAI).date() == day
        ]
        assert energy_kwh == daily_before[(meter_id, day)]
        assert (count, first_kwh, last_kwh) == (
            len(today),
            today[0].energy_kwh,
            today[-1].energy_kwh,
        )
        assert max_power == max(r.power_kw for r in today if r.power_kw is not None)


def test_archiving_twice_changes_nothing(store: ReadingStore, archived_rows: Rows) -> None:
    store.write(ten_days())
    cutoff = archive_cutoff(at(SHANGHAI, DAYS[9], 12), keep_days=3, tz=SHANGHAI)
    assert cutoff == at(SHANGHAI, DAYS[7], 0)
    archive_readings(store, keep_days=3, tz=SHANGHAI, now=at(SHANGHAI, DAYS[9], 12))
    totals, rows, readings = reports(store), archived_rows(), hot(store)

    assert store.archive(cutoff, SHANGHAI) == 0
    assert store.archive(cutoff - timedelta(days=2), SHANGHAI) == 0

    assert (reports(store), archived_rows(), hot(store)) == (totals, rows, readings)


def test_readings_that_arrive_after_their_day_was_archived_count_once(
    store: ReadingStore, archived_rows: Rows
) -> None:
    written = ten_days()
    store.write(written)
    store.archive(at(SHANGHAI, DAYS[7], 0), SHANGHAI)
    # Meter 1's reading at noon on day 3 is sent again (a spool re-sends after a crash).
    (resent,) = [r for r in written if r.meter_id == 1 and r.at == at(SHANGHAI, DAYS[2], 12, 15)]
    # Meter 2 was silent on day 7: a reading from then turns up (a spool delivered it late).
    day5 = [r for r in written if r.meter_id == 2 and r.at < at(SHANGHAI, DAYS[5], 0)]
    late_kwh = day5[-1].energy_kwh + Decimal("0.01")
    late = MeterReading(2, at(SHANGHAI, DAYS[6], 22), late_kwh, tags=PLACES[2])
    store.write([resent, late])
    everything = [*written, late]

    for start_on, end_on in RANGES:
        assert store.daily_energy(list(PLACES), start_on, end_on, SHANGHAI) == reference(
            everything, start_on, end_on, SHANGHAI
        )
    totals = reports(store)
    rows = archived_rows()

    assert store.archive(at(SHANGHAI, DAYS[7], 0), SHANGHAI) == 2

    assert reports(store) == totals
    merged = archived_rows()
    assert merged[(1, DAYS[2])] == rows[(1, DAYS[2])]  # the re-sent reading is not counted twice
    assert merged[(2, DAYS[6])][:4] == (
        reference(everything, DAYS[6], DAYS[6], SHANGHAI)[(2, DAYS[6])],
        1,
        late_kwh,
        late_kwh,
    )
    assert {k: v for k, v in merged.items() if k != (2, DAYS[6])} == rows
    assert hot(store)[2][0].at == at(SHANGHAI, DAYS[8], 0, 40)


def test_archived_days_follow_local_days_across_a_clock_change(
    store: ReadingStore, archived_rows: Rows
) -> None:
    # 10 March 2024 in New York is 23 hours long.
    days = [date(2024, 3, 8) + timedelta(days=k) for k in range(6)]
    written = [
        MeterReading(9, at(NEW_YORK, day, hour, 30), Decimal(10 * k + hour).scaleb(-1))
        for k, day in enumerate(days)
        for hour in range(0, 24, 2)
        if not (day == date(2024, 3, 10) and hour == 2)  # 02:30 does not exist that day
    ]
    store.write(written)
    expected = reference(written, days[0], days[-1], NEW_YORK)
    assert store.daily_energy([9], days[0], days[-1], NEW_YORK) == expected

    removed = store.archive(at(NEW_YORK, date(2024, 3, 12), 0), NEW_YORK)

    assert removed == sum(1 for r in written if r.at < at(NEW_YORK, date(2024, 3, 12), 0))
    assert store.daily_energy([9], days[0], days[-1], NEW_YORK) == expected
    for start_on in days:
        assert store.daily_energy([9], start_on, days[-1], NEW_YORK) == reference(
            written, start_on, days[-1], NEW_YORK
        )
    assert {day for _, day in archived_rows(NEW_YORK)} == set(days[:4])


def test_archiving_nothing_archives_nothing(store: ReadingStore, archived_rows: Rows) -> None:
    assert store.archive(at(SHANGHAI, DAYS[0], 0), SHANGHAI) == 0
    store.write(ten_days())
    assert store.archive(at(SHANGHAI, DAYS[0], 23), SHANGHAI) == 0  # day 1 is not over
    assert archived_rows() == {}


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_day_spans_rebuilt_from_archived_days_and_readings_report_the_same(
    request: pytest.FixtureRequest, database: str
) -> None:
    """A store written before it kept day spans (what migration 0007 fills them from)."""
    url: str = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    store = SqlReadingStore(url, tz=SHANGHAI)
    written = ten_days()
    store.write(written)
    store.archive(at(SHANGHAI, DAYS[7], 0), SHANGHAI)
    before = reports(store)
    with get_engine(url).begin() as conn:
        conn.execute(delete(ReadingDay))
    assert all(not energy for energy in reports(store).values())

    with get_engine(url).begin() as conn:
        rebuild_day_spans(conn, SHANGHAI)

    assert reports(store) == before
    assert before[(DAYS[0], DAYS[9])] == reference(written, DAYS[0], DAYS[9], SHANGHAI)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_store_kept_in_another_zone_counts_its_days(
    request: pytest.FixtureRequest, database: str
) -> None:
    """Day spans follow the store's zone; energy in any other zone is counted from the readings
    (archived days count in the zone they were archived in, so none are archived here), and
    both agree with the definition."""
    url: str = request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url")
    store = SqlReadingStore(url, tz=NEW_YORK)
    written = ten_days()
    store.write(written)

    for start_on, end_on in RANGES:
        for tz in (NEW_YORK, SHANGHAI):
            expected = reference(written, start_on, end_on, tz)
            assert store.daily_energy(list(PLACES), start_on, end_on, tz) == expected
            by_meter = store.daily_energy_by("meter", start_on, end_on, tz, meters=PLACES)
            assert by_meter == {(str(m), on): kwh for (m, on), kwh in expected.items()}


@pytest.mark.influx
def test_influx_groups_archived_days_by_the_tags_they_had(
    influx_store: InfluxReadingStore,
) -> None:
    influx_store.write(ten_days())

    def by_tags() -> dict[object, object]:
        return {
            (group, start_on, end_on): influx_store.daily_energy_by(
                group, start_on, end_on, SHANGHAI
            )
            for group in GROUPS
            for start_on, end_on in RANGES
        }

    before = by_tags()
    assert before == {key: value for key, value in reports(influx_store).items() if len(key) == 3}

    influx_store.archive(at(SHANGHAI, DAYS[7], 0), SHANGHAI)

    assert by_tags() == before
