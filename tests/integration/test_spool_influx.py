"""A real influxd stopped and started again: readings written meanwhile wait on disk, then
arrive, each exactly once, and billing-side writes never wait on the dead server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from collector.readings import MeterReading
from collector.spool import SpoolingStore
from collector.tsdb import open_store as open_store_of
from collector.tsdb_influx import InfluxReadingStore, TimeseriesUnavailable
from schema.measurements import READINGS
from tests.influx import InfluxServer, influx_server

pytestmark = pytest.mark.influx

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
METERS = (1, 2, 3)
DATABASE = "voltpay_spool"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def batch(number: int) -> list[MeterReading]:
    return [
        MeterReading(
            meter_id=m,
            at=T0 + timedelta(minutes=30 * number),
            energy_kwh=Decimal(100 * m + number).scaleb(-1),
            power_kw=Decimal("1.5"),
            tags={"unit": f"A1{m:02d}", "floor": "A1F", "building": "Building A"},
        )
        for m in METERS
    ]


def open_store(server: InfluxServer) -> InfluxReadingStore:
    return InfluxReadingStore(f"{server.url}/{DATABASE}", timeout_s=2)


def assert_stored_once_in_order(server: InfluxServer, batches: int) -> None:
    store = open_store(server)
    try:
        for m in METERS:
            back = store.readings(m, T0, T0 + timedelta(days=1))
            assert [(r.at, r.energy_kwh) for r in back] == [
                (r.at, r.energy_kwh)
                for n in range(1, batches + 1)
                for r in batch(n)
                if r.meter_id == m
            ]
    finally:
        store.close()
    counts = httpx.post(
        f"{server.url}/query",
        params={"db": DATABASE},
        data={"q": f'SELECT count(energy_kwh) FROM "{READINGS}" GROUP BY meter'},
    ).json()["results"][0]["series"]
    assert {s["tags"]["meter"]: s["values"][0][1] for s in counts} == {
        str(m): batches for m in METERS
    }


def write_while_down(spool: SpoolingStore, numbers: range) -> None:
    for number in numbers:
        started = time.monotonic()
        spool.write(batch(number))  # no exception: the readings wait on disk
        assert time.monotonic() - started < 1.0


def test_readings_written_while_influxdb_is_down_arrive_once_it_is_back(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with influx_server() as server:
        store = open_store(server)
        store.create_database()
        spool = SpoolingStore(store, tmp_path / "spool", clock=clock)
        for number in (1, 2, 3):
            spool.write(batch(number))
        assert spool.pending() == 0

        server.stop()
        write_while_down(spool, range(4, 9))
        assert spool.pending() == 5
        with pytest.raises(TimeseriesUnavailable):
            spool.readings(1, T0, T0 + timedelta(days=1))  # reads go to the server itself

        server.start()
        clock.now += spool.retry_after_s
        assert spool.flush() == 5
        spool.write(batch(9))
        assert spool.pending() == 0
        spool.close()

        assert_stored_once_in_order(server, 9)


def test_readings_spooled_before_a_restart_of_the_collector_arrive_after_it(
    tmp_path: Path,
) -> None:
    with influx_server() as server:
        store = open_store(server)
        store.create_database()
        spool = SpoolingStore(store, tmp_path / "spool")
        spool.write(batch(1))
        server.stop()
        write_while_down(spool, range(2, 6))
        spool.close()  # the collector stops while InfluxDB is down

        server.start()
        restarted = SpoolingStore(open_store(server), tmp_path / "spool")
        assert restarted.pending() == 4
        restarted.write(batch(6))  # what waits goes first, then this
        assert restarted.pending() == 0
        # A batch sent again (as after a crash between sending and removing it) changes nothing.
        restarted.write(batch(3))
        restarted.close()

        assert_stored_once_in_order(server, 6)


def test_a_collector_started_while_influxdb_is_down_starts_and_delivers_later(
    tmp_path: Path,
) -> None:
    with influx_server() as server:
        server.stop()
        spool = open_store_of(f"{server.url}/{DATABASE}", "", spool_dir=tmp_path / "spool")
        assert isinstance(spool, SpoolingStore)
        write_while_down(spool, range(1, 4))

        server.start()  # its database does not exist yet
        assert spool.flush(force=True) == 3
        spool.close()

        assert_stored_once_in_order(server, 3)
