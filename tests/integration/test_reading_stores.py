"""The ReadingStore contract, on SQLite, PostgreSQL and a real influxd alike."""

from __future__ import annotations

import dataclasses
import itertools
import random
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.readings import MeterReading, ReadingStore
from collector.tsdb import open_store
from collector.tsdb_influx import InfluxReadingStore, TimeseriesError
from collector.tsdb_sql import SqlReadingStore
from schema.measurements import READINGS
from tests.influx import running_influxd

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2024, 3, 1, 4, 0, tzinfo=UTC)


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


def reading(meter_id: int, at: datetime, energy_kwh: str, **values: Any) -> MeterReading:
    return MeterReading(meter_id=meter_id, at=at, energy_kwh=Decimal(energy_kwh), **values)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def without_tags(readings: list[MeterReading]) -> list[MeterReading]:
    """Tags come back only from stores that keep them (not the SQL store)."""
    return [dataclasses.replace(r, tags={}) for r in readings]


# --- write and read -----------------------------------------------------------------------------


def test_readings_come_back_exactly_as_written(store: ReadingStore) -> None:
    written = [
        reading(
            1,
            T0.replace(microsecond=123456),
            "98765.43",
            power_kw=Decimal("3.4567"),
            voltage_v=Decimal("229.9"),
            current_a=Decimal("15.0001"),
            relay_closed=True,
            tags={"unit": "A-101", "floor": "1", "building": "B1", "gateway": "gw-1"},
        ),
        reading(1, T0 + timedelta(minutes=30), "98765.44", relay_closed=False),
        reading(1, T0 + timedelta(minutes=60), "0.01"),
    ]
    store.write(written)

    back = store.readings(1, T0, T0 + timedelta(days=1))

    assert without_tags(back) == without_tags(written)
    assert [str(r.energy_kwh.normalize()) for r in back] == ["98765.43", "98765.44", "0.01"]
    assert back[0].power_kw == Decimal("3.4567") and back[0].current_a == Decimal("15.0001")
    assert all(r.at.utcoffset() == timedelta(0) for r in back)
    assert back[0].at.microsecond == 123456
    assert [r.relay_closed for r in back] == [True, False, None]
    assert (back[2].power_kw, back[2].voltage_v, back[2].current_a) == (None, None, None)


def test_times_in_another_zone_are_stored_as_the_same_instant(store: ReadingStore) -> None:
    at = local(SHANGHAI, 2024, 3, 1, 12, 0)
    store.write([reading(1, at, "5.00")])

    (back,) = store.readings(1, T0, T0 + timedelta(hours=1))

    assert back.at == T0 and back.at.tzinfo is not None and back.at.utcoffset() == timedelta(0)


def test_writing_the_same_readings_again_changes_nothing(store: ReadingStore) -> None:
    batch = [reading(1, T0 + timedelta(minutes=k), f"{10 + k}.00") for k in range(5)]
    store.write(batch)
    store.write(batch)
    store.write([batch[2], batch[2]])

    assert store.readings(1, T0, T0 + timedelta(days=1)) == store.readings(
        1, T0, T0 + timedelta(days=1)
    )
    assert without_tags(store.readings(1, T0, T0 + timedelta(days=1))) == batch


def test_range_includes_start_excludes_end_and_only_that_meter(store: ReadingStore) -> None:
    times = [T0 + timedelta(minutes=k) for k in range(4)]
    store.write([reading(1, at, f"{k}.00") for k, at in enumerate(times)])
    store.write([reading(2, at, "99.00") for at in times])

    back = store.readings(1, times[1], times[3])

    assert [(r.meter_id, r.at) for r in back] == [(1, times[1]), (1, times[2])]


def test_readings_come_back_oldest_first(store: ReadingStore) -> None:
    written = [reading(1, T0 + timedelta(minutes=k), f"{k}.00") for k in range(20)]
    shuffled = written[:]
    random.Random(7).shuffle(shuffled)
    store.write(shuffled[:10])
    store.write(shuffled[10:])

    assert without_tags(store.readings(1, T0, T0 + timedelta(days=1))) == written


def test_many_readings_in_one_write(store: ReadingStore) -> None:
    # More than one write batch and more than one query page on every store.
    written = [
        reading(1, T0 + timedelta(seconds=k), str(Decimal(k).scaleb(-2))) for k in range(12_001)
    ]
    store.write(written)

    back = store.readings(1, T0, T0 + timedelta(days=1))

    assert len(back) == len(written)
    assert (back[0].energy_kwh, back[-1].energy_kwh) == (Decimal("0"), Decimal("120.00"))
    assert all(a.at < b.at for a, b in itertools.pairwise(back))


# --- daily energy -------------------------------------------------------------------------------


def test_daily_energy_follows_site_local_days(store: ReadingStore) -> None:
    store.write(
        [
            reading(1, local(SHANGHAI, 2024, 3, 1, 12, 0), "100.00"),
            reading(1, local(SHANGHAI, 2024, 3, 2, 0, 10), "101.00"),
            # 23:50 on 2 March and 00:10 on 3 March in Shanghai are both 2 March in UTC.
            reading(1, local(SHANGHAI, 2024, 3, 2, 23, 50), "110.50"),
            reading(1, local(SHANGHAI, 2024, 3, 3, 0, 10), "111.00"),
            reading(1, local(SHANGHAI, 2024, 3, 3, 23, 50), "115.25"),
            # Nothing on 4 March.
            reading(1, local(SHANGHAI, 2024, 3, 5, 8, 0), "120.00"),
            reading(1, local(SHANGHAI, 2024, 3, 6, 0, 0), "130.00"),
            # Meter 2 has no reading before the first day: it counts from its first reading.
            reading(2, local(SHANGHAI, 2024, 3, 2, 9, 0), "50.00"),
            reading(2, local(SHANGHAI, 2024, 3, 2, 18, 0), "53.25"),
            reading(2, local(SHANGHAI, 2024, 3, 3, 0, 0), "54.00"),
            reading(3, local(SHANGHAI, 2024, 3, 3, 12, 0), "7.00"),
        ]
    )

    energy = store.daily_energy([1, 2, 4], date(2024, 3, 2), date(2024, 3, 5), SHANGHAI)

    assert energy == {
        (1, date(2024, 3, 2)): Decimal("10.50"),  # 110.50 - 100.00, the day before's last
        (1, date(2024, 3, 3)): Decimal("4.75"),  # 115.25 - 110.50, across local midnight
        (1, date(2024, 3, 5)): Decimal("4.75"),  # 120.00 - 115.25, the last reading before
        (2, date(2024, 3, 2)): Decimal("3.25"),  # 53.25 - 50.00, its own first reading
        (2, date(2024, 3, 3)): Decimal("0.75"),  # a reading at 00:00 starts the new day
    }


def test_daily_energy_on_the_day_clocks_go_forward(store: ReadingStore) -> None:
    # 10 March 2024 in New York is 23 hours long: a fixed 24 h day would end an hour late.
    store.write(
        [
            reading(9, local(NEW_YORK, 2024, 3, 9, 23, 30), "10.00"),
            reading(9, local(NEW_YORK, 2024, 3, 10, 0, 30), "11.00"),
            reading(9, local(NEW_YORK, 2024, 3, 10, 23, 30), "20.00"),
            reading(9, local(NEW_YORK, 2024, 3, 11, 0, 30), "21.00"),
        ]
    )

    energy = store.daily_energy([9], date(2024, 3, 10), date(2024, 3, 11), NEW_YORK)

    assert energy == {(9, date(2024, 3, 10)): Decimal("10.00"), (9, date(2024, 3, 11)): 1}


def test_daily_energy_of_nothing_is_empty(store: ReadingStore) -> None:
    store.write([reading(1, T0, "1.00")])

    assert store.daily_energy([], date(2024, 3, 1), date(2024, 3, 2), SHANGHAI) == {}
    assert store.daily_energy([1], date(2024, 3, 2), date(2024, 3, 1), SHANGHAI) == {}
    assert store.daily_energy([2], date(2024, 3, 1), date(2024, 3, 2), SHANGHAI) == {}


# --- InfluxDB specifics -------------------------------------------------------------------------


@pytest.mark.influx
def test_influx_keeps_one_point_per_reading_and_returns_its_tags(
    influx_store: InfluxReadingStore, influx_url: str
) -> None:
    tags = {"unit": "A 101,east", "floor": "1", "building": "B=1", "gateway": "gw-1"}
    batch = [reading(5, T0 + timedelta(minutes=k), f"{k}.00", tags=tags) for k in range(3)]
    influx_store.write(batch)
    influx_store.write(batch)

    answer = httpx.get(
        f"{influx_url}/query",
        params={"db": influx_store.database, "q": f'SELECT count(energy_kwh) FROM "{READINGS}"'},
    ).json()

    assert answer["results"][0]["series"][0]["values"][0][1] == 3
    assert [r.tags for r in influx_store.readings(5, T0, T0 + timedelta(days=1))] == [tags] * 3


@pytest.mark.influx
def test_influx_refusal_names_the_server_and_influxdb_reason(influx_url: str) -> None:
    store = InfluxReadingStore(f"{influx_url}/no_such_database")
    with pytest.raises(TimeseriesError, match="database not found") as caught:
        store.readings(1, T0, T0 + timedelta(days=1))
    store.close()

    assert influx_url.removeprefix("http://") in str(caught.value)


def test_unreachable_influx_names_the_host_but_not_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = InfluxReadingStore(f"http://alice:s3cret@127.0.0.1:{port}/voltpay", timeout_s=2)

    with pytest.raises(TimeseriesError) as caught:
        store.write([reading(1, T0, "1.00")])
    store.close()

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "alice@" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_influx_url_names_the_database_and_messages_never_show_secrets() -> None:
    store = InfluxReadingStore(
        "https://ops:pa%3Ass@tsdb.example.com:8443/influx/site_1?token=a+b%2F"
    )
    store.close()

    assert store.database == "site_1"
    assert store.safe_url == "https://ops@tsdb.example.com:8443/influx/site_1"
    with pytest.raises(ValueError, match="names no database"):
        InfluxReadingStore("http://127.0.0.1:8086/")


@pytest.mark.influx
def test_influx_user_password_auth() -> None:
    with running_influxd(auth_enabled=True) as url:
        host = url.removeprefix("http://")
        httpx.post(
            f"{url}/query",
            data={"q": "CREATE USER admin WITH PASSWORD 'adm1n' WITH ALL PRIVILEGES"},
        ).raise_for_status()
        admin = InfluxReadingStore(f"http://admin:adm1n@{host}/voltpay")
        admin.create_database()
        admin.close()
        httpx.post(
            f"{url}/query",
            data={"q": "CREATE USER bob WITH PASSWORD 'b0b!pw'; GRANT ALL ON voltpay TO bob"},
            auth=("admin", "adm1n"),
        ).raise_for_status()

        # bob may write and read but not create databases: opening the store still works.
        bob = open_store(f"http://bob:b0b%21pw@{host}/voltpay", "")
        bob.write([reading(1, T0, "1.00")])
        assert [r.energy_kwh for r in bob.readings(1, T0, T0 + timedelta(hours=1))] == [1]
        bob.close()

        for wrong in (f"http://bob:nope@{host}/voltpay", f"http://{host}/voltpay?token=t0ken"):
            intruder = InfluxReadingStore(wrong)
            with pytest.raises(TimeseriesError, match="HTTP 401") as caught:
                intruder.readings(1, T0, T0 + timedelta(hours=1))
            intruder.close()
            assert "nope" not in str(caught.value) and "t0ken" not in str(caught.value)


# --- choosing the store -------------------------------------------------------------------------


def test_open_store_without_timeseries_url_is_the_sql_store(sqlite_url: str) -> None:
    store = open_store("", sqlite_url)
    assert isinstance(store, SqlReadingStore)
    store.write([reading(1, T0, "1.00")])
    assert len(store.readings(1, T0, T0 + timedelta(hours=1))) == 1


@pytest.mark.influx
def test_open_store_with_an_influx_url_creates_its_database(influx_url: str) -> None:
    store = open_store(f"{influx_url}/voltpay_open_store", "sqlite:///unused.db")
    assert isinstance(store, InfluxReadingStore)
    store.write([reading(1, T0, "1.00")])
    assert len(store.readings(1, T0, T0 + timedelta(hours=1))) == 1
    store.close()
    httpx.post(f"{influx_url}/query", data={"q": 'DROP DATABASE "voltpay_open_store"'})


def test_open_store_refuses_other_urls_without_showing_them() -> None:
    with pytest.raises(ValueError, match="'ftp' URL") as caught:
        open_store("ftp://alice:s3cret@example.com/voltpay", "sqlite://")
    assert "s3cret" not in str(caught.value)
