"""The ReadingStore contract, on SQLite, PostgreSQL and a real influxd alike."""

from __future__ import annotations

import dataclasses
import itertools
import random
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from collector.readings import EnergyGroup, MeterReading, ReadingStore, StoreUnavailable
from collector.spool import SpoolingStore
from collector.tsdb import open_store
from collector.tsdb_influx import InfluxReadingStore, TimeseriesError
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.measurements import READINGS
from schema.models import Building, Floor, Gateway, Meter, Unit
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


def database_url(request: pytest.FixtureRequest) -> str:
    """The database the SQL `store` of this test works in."""
    sqlite_or_pg = request.node.callspec.params["store"]
    return str(request.getfixturevalue("sqlite_url" if sqlite_or_pg == "sqlite" else "pg_url"))


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


# --- daily energy by meter, unit, floor, building -----------------------------------------------

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def place(unit: str, floor: str, building: str) -> dict[str, str]:
    return {"unit": unit, "floor": floor, "building": building, "gateway": "GW-1"}


# Where each meter sits, as the collector tags its readings; meter 5 is in no unit.
PLACES: dict[int, dict[str, str]] = {
    1: place("U1", "F1", "B1"),
    2: place("U1", "F1", "B1"),
    3: place("U2", "F1", "B1"),
    4: place("U3", "F2", "B2"),
    5: {"gateway": "GW-1"},
}


def placed_readings(ids: dict[int, int] | None = None) -> list[MeterReading]:
    """Two days of readings of the five meters of PLACES (`ids` renames meters)."""
    ids = ids or {m: m for m in PLACES}
    rows = [
        (1, (3, 1, 8), "10.00"),
        (1, (3, 1, 20), "12.50"),
        (1, (3, 2, 9), "13.00"),
        (1, (3, 2, 23), "15.00"),
        (2, (3, 1, 9), "100.00"),
        (2, (3, 2, 9), "101.25"),
        (3, (3, 2, 10), "5.00"),
        (3, (3, 2, 11), "7.00"),
        (4, (3, 1, 10), "1.00"),
        (4, (3, 2, 10), "2.00"),
        (5, (3, 1, 10), "50.00"),
        (5, (3, 2, 10), "60.00"),
    ]
    return [
        reading(ids[m], local(SHANGHAI, 2024, mo, d, h, 0), kwh, tags=PLACES[m])
        for m, (mo, d, h), kwh in rows
    ]


def by_group(ids: dict[int, int] | None = None) -> dict[str, dict[tuple[str, date], Decimal]]:
    meter = {m: str((ids or {m: m for m in PLACES})[m]) for m in PLACES}
    return {
        "meter": {
            (meter[1], D1): Decimal("2.50"),  # 12.50 - 10.00
            (meter[1], D2): Decimal("2.50"),  # 15.00 - 12.50
            (meter[2], D1): Decimal("0"),  # one reading: nothing known used yet
            (meter[2], D2): Decimal("1.25"),
            (meter[3], D2): Decimal("2.00"),
            (meter[4], D1): Decimal("0"),
            (meter[4], D2): Decimal("1.00"),
            (meter[5], D1): Decimal("0"),
            (meter[5], D2): Decimal("10.00"),
        },
        "unit": {
            ("U1", D1): Decimal("2.50"),
            ("U1", D2): Decimal("3.75"),
            ("U2", D2): Decimal("2.00"),
            ("U3", D1): Decimal("0"),
            ("U3", D2): Decimal("1.00"),
        },
        "floor": {
            ("F1", D1): Decimal("2.50"),
            ("F1", D2): Decimal("5.75"),
            ("F2", D1): Decimal("0"),
            ("F2", D2): Decimal("1.00"),
        },
        "building": {
            ("B1", D1): Decimal("2.50"),
            ("B1", D2): Decimal("5.75"),
            ("B2", D1): Decimal("0"),
            ("B2", D2): Decimal("1.00"),
        },
    }


@pytest.mark.parametrize("group", ["meter", "unit", "floor", "building"])
def test_daily_energy_by_place_the_caller_gives(store: ReadingStore, group: EnergyGroup) -> None:
    store.write(placed_readings())

    energy = store.daily_energy_by(group, D1, D2, SHANGHAI, meters=PLACES)

    assert energy == by_group()[group]
    # The groups add up their meters' own daily energy; meter 5 is in no unit.
    placed = [m for m, tags in PLACES.items() if group == "meter" or group in tags]
    assert sum(energy.values()) == sum(store.daily_energy(placed, D1, D2, SHANGHAI).values())


def test_daily_energy_by_counts_only_the_meters_given(store: ReadingStore) -> None:
    store.write(placed_readings())

    assert store.daily_energy_by("unit", D2, D2, SHANGHAI, meters={1: PLACES[1]}) == {
        ("U1", D2): Decimal("2.50")
    }
    assert store.daily_energy_by("unit", D1, D2, SHANGHAI, meters={5: PLACES[5]}) == {}
    assert store.daily_energy_by("unit", D2, D1, SHANGHAI, meters=PLACES) == {}
    with pytest.raises(ValueError, match="not 'gateway'"):
        store.daily_energy_by("gateway", D1, D2, SHANGHAI, meters=PLACES)  # type: ignore[arg-type]


@pytest.mark.parametrize("group", ["meter", "unit", "floor", "building"])
def test_daily_energy_by_place_the_store_knows(
    store: ReadingStore, group: EnergyGroup, request: pytest.FixtureRequest
) -> None:
    # InfluxDB knows places from the readings' tags; the SQL store from the site's tables.
    ids = {m: m for m in PLACES}
    if isinstance(store, SqlReadingStore):
        ids = build_site(database_url(request))
    store.write(placed_readings(ids))

    assert store.daily_energy_by(group, D1, D2, SHANGHAI) == by_group(ids)[group]


def build_site(url: str) -> dict[int, int]:
    """The places of PLACES as buildings, floors, units and meters; PLACES meter -> meter id."""
    with unit_of_work(url) as session:
        gateway = Gateway(name="GW-1", host="127.0.0.1", port=1502, transport="tcp")
        buildings = {code: Building(code=code, name=code) for code in ("B1", "B2")}
        floors = {
            name: Floor(building=buildings[building], level=level, name=name)
            for name, building, level in (("F1", "B1", 1), ("F2", "B2", 1))
        }
        units = {
            number: Unit(floor=floors[floor], number=number)
            for number, floor in (("U1", "F1"), ("U2", "F1"), ("U3", "F2"))
        }
        meters = {
            m: Meter(
                serial=f"S{m}",
                profile="acrel_dtsy1352",
                gateway=gateway,
                bus_address=m,
                unit=units[tags["unit"]] if "unit" in tags else None,
            )
            for m, tags in PLACES.items()
        }
        session.add_all([gateway, *meters.values()])
        session.flush()
        return {m: meter.id for m, meter in meters.items()}


@pytest.mark.influx
def test_influx_counts_a_moved_meter_where_it_was_each_day(
    influx_store: InfluxReadingStore,
) -> None:
    influx_store.write(
        [
            reading(7, local(SHANGHAI, 2024, 3, 1, 8, 0), "1.00", tags=place("U1", "F1", "B1")),
            reading(7, local(SHANGHAI, 2024, 3, 1, 18, 0), "3.00", tags=place("U1", "F1", "B1")),
            # Moved to U2 in the morning of 2 March: the day counts where it ended.
            reading(7, local(SHANGHAI, 2024, 3, 2, 8, 0), "4.00", tags=place("U1", "F1", "B1")),
            reading(7, local(SHANGHAI, 2024, 3, 2, 18, 0), "8.00", tags=place("U2", "F1", "B1")),
        ]
    )

    assert influx_store.daily_energy_by("unit", D1, D2, SHANGHAI) == {
        ("U1", D1): Decimal("2.00"),
        ("U2", D2): Decimal("5.00"),  # 8.00 - 3.00: one meter, one chain of readings
    }
    assert influx_store.daily_energy([7], D1, D2, SHANGHAI) == {
        (7, D1): Decimal("2.00"),
        (7, D2): Decimal("5.00"),
    }


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
    assert isinstance(caught.value, StoreUnavailable)  # a spool keeps the readings for later


@pytest.mark.influx
def test_influx_outage_and_refusal_are_told_apart(
    influx_store: InfluxReadingStore, influx_url: str
) -> None:
    # Someone stored energy_kwh as a string: our float is refused for what it is.
    at_ns = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    httpx.post(
        f"{influx_url}/write",
        params={"db": influx_store.database},
        content=f'{READINGS},meter=9 energy_kwh="x" {at_ns}'.encode(),
    ).raise_for_status()
    with pytest.raises(TimeseriesError, match="field type conflict") as refused:
        influx_store.write([reading(1, T0, "1.00")])
    assert not isinstance(refused.value, StoreUnavailable)

    missing = InfluxReadingStore(f"{influx_url}/no_such_database")
    with pytest.raises(StoreUnavailable, match="database not found"):
        missing.write([reading(1, T0, "1.00")])  # may exist later: worth keeping the readings
    missing.close()


def test_sql_store_that_cannot_write_is_unavailable(tmp_path: Path) -> None:
    store = SqlReadingStore(f"sqlite:///{tmp_path / 'not_migrated.db'}")

    with pytest.raises(StoreUnavailable, match="could not write"):
        store.write([reading(1, T0, "1.00")])


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


def test_open_store_with_a_spool_directory_spools(sqlite_url: str, tmp_path: Path) -> None:
    store = open_store("", sqlite_url, spool_dir=tmp_path / "spool")
    assert isinstance(store, SpoolingStore) and isinstance(store.inner, SqlReadingStore)
    store.write([reading(1, T0, "1.00")])
    assert len(store.readings(1, T0, T0 + timedelta(hours=1))) == 1
    store.close()


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
