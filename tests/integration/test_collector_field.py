"""The collector against simulated buses that behave like real ones: batch commands and
dispatch read back, dead and misbehaving meters, metering-only meters, RTU over TCP, and a gateway
that goes away while a command waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from billing import dispatch, monitoring
from collector.service import Collector
from collector.simulator import Fault, GatewaySimulator, SimulatedMeter
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Alarm, Command, Gateway, Meter, Operator
from tests.factories import POLICY, make_site, open_account


async def eventually(condition: Callable[[], Awaitable[bool] | bool], what: str,
                     timeout_s: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = condition()
        if await result if asyncio.iscoroutine(result) else result:
            return
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def collecting(url: str, **options: Any) -> AsyncIterator[Collector]:
    store = SqlReadingStore(url)
    collector = Collector(url, store,
                          **{"policy": POLICY, "command_poll_s": 0.05, "interval_s": 0.2,
                             **options})
    task = asyncio.create_task(collector.run())
    try:
        yield collector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


def states(url: str) -> list[tuple[str, str, str]]:
    with unit_of_work(url) as s:
        rows = s.scalars(select(Command).order_by(Command.id))
        return [(c.kind, c.state, c.result) for c in rows]


def open_alarms(url: str) -> list[tuple[str, str | None]]:
    with unit_of_work(url) as s:
        return [(row.kind, row.meter or row.gateway) for row in monitoring.open_alarms(s)]


def send(url: str, kind: str, meter_ids: list[int]) -> dispatch.BatchResult:
    with unit_of_work(url) as s:
        admin = s.scalars(select(Operator)).first()
        return dispatch.send_batch(s, meter_ids, kind, operator=admin, policy=POLICY,
                                   now=datetime.now(UTC))


def test_batch_commands_and_dispatch_are_written_and_read_back(sqlite_url: str) -> None:
    async def scenario() -> None:
        sim = GatewaySimulator([1, 2, 3], speed=60)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=3, port=sim.port)
            ids = [m.id for m in site.meters]
            open_account(s, site, *site.meters)
        try:
            async with collecting(sqlite_url, interval_s=5):
                send(sqlite_url, "price", ids[:2])
                send(sqlite_url, "settings", [ids[0]])
                send(sqlite_url, "protect_on", [ids[2]])
                send(sqlite_url, "trip", ids)

                def all_confirmed() -> bool:
                    return all(state == "confirmed" for _, state, _ in states(sqlite_url))

                await eventually(all_confirmed, "every command is confirmed by read-back")
            # The default flat price (1.2000) fills every band of the meters' price registers.
            assert sim.meter(1).prices == dict.fromkeys(
                ("sharp", "peak", "flat", "valley"), Decimal("1.2"))
            assert sim.meter(2).prices == sim.meter(1).prices
            assert sim.meter(3).prices == {}
            assert sim.meter(1).settings == {"alarm1_amount": Decimal("50"),
                                             "alarm2_amount": Decimal("20"),
                                             "overload_kw": Decimal("30")}
            assert sim.meter(3).power_protect
            assert [sim.meter(a).relay_closed for a in (1, 2, 3)] == [False, False, False]
            with unit_of_work(sqlite_url) as s:
                assert s.get_one(Meter, ids[2]).power_protect  # the platform flag too
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_silent_meter_costs_its_bus_at_most_one_timeout_a_cycle(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """32 meters, one dead: cycles are ~one 0.3 s timeout slower, never the 4 × 0.3 s of a
    retrying client; the dead meter is marked lost, logged once, and found again."""
    timeout = 0.3

    async def scenario() -> None:
        sim = GatewaySimulator(list(range(1, 33)), speed=60)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=32, port=sim.port)
            s.get_one(Gateway, site.gateway.id).timeout_s = Decimal(str(timeout))
            dead_id = site.meters[6].id
        sim.meter(7).set_fault("silent")
        try:
            async with collecting(sqlite_url, interval_s=0.5) as collector:
                started = asyncio.get_running_loop().time()
                await eventually(lambda: collector.cycles >= 8, "eight cycles", 30)
                elapsed = asyncio.get_running_loop().time() - started
                # 8 slots of 0.5 s; a retrying client would need 1.2 s per cycle
                assert elapsed < 8 * 0.5 + 2 * timeout + 1.0

                def dead_lost() -> bool:
                    with unit_of_work(sqlite_url) as s:
                        lost = [m.id for m in s.scalars(select(Meter))
                                if m.lost_since is not None]
                        return lost == [dead_id]

                await eventually(dead_lost, "only the dead meter is marked lost")
                sim.meter(7).clear_fault()

                def found() -> bool:
                    with unit_of_work(sqlite_url) as s:
                        return s.get_one(Meter, dead_id).lost_since is None

                await eventually(found, "the meter is found again once it answers")
        finally:
            await sim.stop()

    with caplog.at_level(logging.WARNING, logger="collector.service"):
        asyncio.run(asyncio.wait_for(scenario(), 90))
    warnings = [r for r in caplog.records if "M00007" in r.getMessage()]
    assert len(warnings) == 1, "a failing meter is logged once while it lasts"


@pytest.mark.parametrize("fault", [Fault("garbage"), Fault("exception", exception_code=4),
                                   Fault("slow", delay_s=0.5)])
def test_a_misbehaving_meter_fails_alone(sqlite_url: str, fault: Fault) -> None:
    """Garbage registers (a NaN float), an exception answer, or an answer after the timeout:
    that meter's read fails, the others on the bus are read, and the collector keeps going."""
    async def scenario() -> None:
        meters = [SimulatedMeter.create(a, profile="chint_ddsu666") for a in (1, 2)]
        sim = GatewaySimulator(meters, speed=60)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=2, port=sim.port, profile="chint_ddsu666")
            s.get_one(Gateway, site.gateway.id).timeout_s = Decimal("0.3")
            good, bad = (m.id for m in site.meters)
        sim.meter(2).fault = fault
        try:
            async with collecting(sqlite_url) as collector:
                await eventually(lambda: collector.cycles >= 4, "four cycles")
                await asyncio.sleep(0.3)
            with unit_of_work(sqlite_url) as s:
                assert s.get_one(Meter, good).last_energy_kwh is not None
                assert s.get_one(Meter, bad).last_reading_at is None
                assert s.get_one(Meter, bad).lost_since is not None
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.parametrize("transport", ["tcp", "rtu-over-tcp"])
def test_every_meter_family_is_read_over_both_gateway_kinds(sqlite_url: str,
                                                            transport: str) -> None:
    profiles = ["acrel_dtsy1352", "acrel_ddsy1352", "acrel_dtsd1352", "chint_ddsu666"]

    async def scenario() -> None:
        meters = [SimulatedMeter.create(a, profile=p, initial_kwh=Decimal(100 * a))
                  for a, p in enumerate(profiles, start=1)]
        sim = GatewaySimulator(meters, speed=3600, framer=transport)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=4, port=sim.port)
            s.get_one(Gateway, site.gateway.id).transport = transport
            for meter, profile in zip(site.meters, profiles, strict=True):
                meter.profile = profile
            ids = [m.id for m in site.meters]
        try:
            async with collecting(sqlite_url) as collector:
                await eventually(lambda: collector.cycles >= 3, "three cycles")
                await asyncio.sleep(0.3)
            with unit_of_work(sqlite_url) as s:
                for address, meter_id in enumerate(ids, start=1):
                    meter = s.get_one(Meter, meter_id)
                    assert meter.last_energy_kwh is not None, meter.profile
                    assert meter.last_energy_kwh > Decimal(100 * address), meter.profile
                    assert meter.lost_since is None
                assert s.get_one(Meter, ids[2]).relay == "unknown"  # metering only: no relay
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_meter_drawing_more_than_its_threshold_raises_an_overload_alarm(
    sqlite_url: str,
) -> None:
    """Meter 1 may draw 0.5 kW (its own threshold) and draws more; meter 2 is under the
    site's default of 30 kW. With no sustain time, the first reading over it raises; the
    alarm stays one while the overload lasts."""
    async def scenario() -> None:
        sim = GatewaySimulator([1, 2], speed=60)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=2, port=sim.port)
            site.meters[0].overload_kw = Decimal("0.5")
        try:
            policy = replace(POLICY, overload_sustain=timedelta(0))
            async with collecting(sqlite_url, policy=policy) as collector:
                await eventually(lambda: collector.cycles >= 4, "four cycles")
            assert open_alarms(sqlite_url) == [("overload", "M00001")]
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_command_for_a_metering_only_meter_fails_with_the_reason(sqlite_url: str) -> None:
    async def scenario() -> None:
        sim = GatewaySimulator([SimulatedMeter.create(1, profile="acrel_dtsd1352")])
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=1, port=sim.port, profile="acrel_dtsd1352")
            meter_id = site.meters[0].id
        try:
            async with collecting(sqlite_url, interval_s=5):
                send(sqlite_url, "trip", [meter_id])
                await eventually(lambda: states(sqlite_url)[0][1] == "failed", "it fails")
            assert states(sqlite_url) == [
                ("trip", "failed", "Acrel DTSD1352 has no 'trip' control")]
            with unit_of_work(sqlite_url) as s:
                (alarm,) = s.scalars(select(Alarm)).all()
                assert (alarm.kind, alarm.meter_id, alarm.detail, alarm.cleared_at) == (
                    "command_failed", meter_id, "Acrel DTSD1352 has no 'trip' control", None)
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_command_waits_for_a_gateway_that_went_away(sqlite_url: str) -> None:
    async def scenario() -> None:
        sim = GatewaySimulator([1], speed=60)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=1, port=sim.port)
            meter_id = site.meters[0].id
        try:
            async with collecting(sqlite_url, interval_s=0.2) as collector:
                await eventually(lambda: collector.cycles >= 2, "two cycles")
                await sim.go_down()

                def gateway_lost() -> bool:
                    with unit_of_work(sqlite_url) as s:
                        return s.scalars(select(Gateway)).one().lost_since is not None

                await eventually(gateway_lost, "the gateway is marked lost")
                await eventually(lambda: open_alarms(sqlite_url) == [("lost_contact", "GW-01")],
                                 "a lost-contact alarm names the gateway")
                send(sqlite_url, "trip", [meter_id])
                await asyncio.sleep(0.5)
                assert states(sqlite_url)[0][1] == "queued", "it waits for the gateway"
                await sim.come_back()
                await eventually(lambda: states(sqlite_url)[0][1] == "confirmed",
                                 "it runs once the gateway is back")
                await eventually(lambda: open_alarms(sqlite_url) == [],
                                 "the alarm clears once the gateway answers")
            assert not sim.meter(1).relay_closed
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
