"""The collector with TIMESERIES_URL set: readings land in a real influxd, tagged by place."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from collector.service import Collector
from collector.simulator import GatewaySimulator
from collector.tsdb import open_store
from schema.db import unit_of_work
from schema.models import Meter
from tests.factories import POLICY, make_site


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
