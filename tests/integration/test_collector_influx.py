"""The collector with TIMESERIES_URL set: readings land in a real influxd, tagged by place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from collector.service import Collector
from collector.simulator import GatewaySimulator
from collector.spool import SpoolingStore
from collector.tsdb import open_store
from schema.db import unit_of_work
from schema.models import LedgerEntry, Meter
from tests.factories import POLICY, make_site, open_account
from tests.influx import InfluxServer, influx_server


async def collect_for_a_while(url: str, store_url: str) -> list[int]:
    sim = GatewaySimulator([1, 2], speed=3600)
    await sim.start()
    with unit_of_work(url) as s:
        meter_ids = [m.id for m in make_site(s, meters=2, port=sim.port).meters]
    store = open_store(store_url, url)
    collector = Collector(url, store, interval_s=0.1, policy=POLICY)
    task = asyncio.create_task(collector.run())
    try:
        while collector.cycles < 5:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # let the sink write the last batch
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
        store.close()
    return meter_ids


def test_collected_readings_are_written_to_influxdb(sqlite_url: str, influx_url: str) -> None:
    store_url = f"{influx_url}/collector_test"
    meter_ids = asyncio.run(asyncio.wait_for(collect_for_a_while(sqlite_url, store_url), 60))
    store = open_store(store_url, sqlite_url)
    try:
        now = datetime.now(UTC)
        readings = store.readings(meter_ids[0], now - timedelta(hours=1), now + timedelta(hours=1))
        assert len(readings) >= 5
        assert readings[0].tags["unit"] == "A101"
        assert readings[0].tags["building"] == "Building A"
        assert readings[0].tags["gateway"] == "GW-01"
        energies = [r.energy_kwh for r in readings]
        assert energies == sorted(energies) and energies[-1] > energies[0]
        with unit_of_work(sqlite_url) as s:
            assert s.get_one(Meter, meter_ids[0]).last_energy_kwh == energies[-1]
    finally:
        store.close()


async def collect_through_an_outage(
    url: str, server: InfluxServer, spool: Path
) -> tuple[list[int], datetime, datetime]:
    sim = GatewaySimulator([1, 2], speed=3600)
    await sim.start()
    with unit_of_work(url) as s:
        site = make_site(s, meters=2, port=sim.port)
        meter_ids = [m.id for m in site.meters]
        open_account(s, site, *site.meters)
    store = open_store(f"{server.url}/outage", url, spool_dir=spool)
    collector = Collector(url, store, interval_s=0.1, policy=POLICY, maintenance_every_s=0.2)
    task = asyncio.create_task(collector.run())

    async def cycles(n: int) -> None:
        target = collector.cycles + n
        while collector.cycles < target:
            await asyncio.sleep(0.02)

    try:
        await cycles(3)
        await asyncio.to_thread(server.stop)
        down_at = datetime.now(UTC)
        charges_before = await asyncio.to_thread(charge_count, url)
        await cycles(6)  # InfluxDB is down: readings spool, billing goes on
        assert await asyncio.to_thread(charge_count, url) > charges_before
        assert isinstance(store, SpoolingStore) and store.pending() > 0
        up_at = datetime.now(UTC)
        await asyncio.to_thread(server.start)
        while store.pending():  # the maintenance loop delivers the spool
            await asyncio.sleep(0.05)
        await cycles(2)
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
        store.close()
    return meter_ids, down_at, up_at


def charge_count(url: str) -> int:
    with unit_of_work(url) as s:
        return s.scalar(select(func.count()).select_from(LedgerEntry)
                        .where(LedgerEntry.kind == "charge")) or 0


def test_influxdb_down_and_back_loses_no_reading_and_never_holds_up_billing(
    sqlite_url: str, tmp_path: Path
) -> None:
    with influx_server() as server:
        meter_ids, down_at, up_at = asyncio.run(asyncio.wait_for(
            collect_through_an_outage(sqlite_url, server, tmp_path / "spool"), 90))
        store = open_store(f"{server.url}/outage", sqlite_url)
        try:
            now = datetime.now(UTC)
            for meter_id in meter_ids:
                stored = store.readings(meter_id, now - timedelta(hours=1),
                                        now + timedelta(hours=1))
                times = [r.at for r in stored]
                assert times == sorted(set(times)), "in order, none twice"
                assert len(times) >= 11
                # The cycles read while InfluxDB was down (a slow machine may skip a slot, never
                # a cycle's readings) arrived from the spool.
                assert sum(1 for t in times if down_at <= t <= up_at) >= 5
        finally:
            store.close()
