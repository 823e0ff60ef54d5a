"""A local serial port (RTU): the collector reads meters and trips one through a pseudo-terminal
pair made by socat — the simulated bus on one end, the collector's serial client on the other."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.simulator import GatewaySimulator
from schema.db import unit_of_work
from schema.models import Command, Gateway, Meter
from tests.factories import make_site
from tests.integration.test_collector_field import collecting, eventually, send


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.fail("socat is missing: `make test` installs it (apt-get install socat)")
    bus, port = tmp_path / "bus", tmp_path / "ttyVOLT0"
    process = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={bus}", f"pty,raw,echo=0,link={port}"],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (bus.exists() and port.exists()):
        assert time.monotonic() < deadline, "socat made no pseudo-terminals"
        time.sleep(0.05)
    try:
        yield str(bus), str(port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_meters_on_a_local_serial_port_are_read_and_controlled(
    sqlite_url: str, pty_pair: tuple[str, str]
) -> None:
    bus, port = pty_pair

    async def scenario() -> None:
        sim = GatewaySimulator([1, 2], speed=3600, serial_device=bus, baudrate=9600)
        await sim.start()
        with unit_of_work(sqlite_url) as s:
            site = make_site(s, meters=2)
            gateway = s.get_one(Gateway, site.gateway.id)
            gateway.transport, gateway.host, gateway.baudrate = "serial", port, 9600
            ids = [m.id for m in site.meters]
        try:
            async with collecting(sqlite_url, interval_s=0.3) as collector:
                await eventually(lambda: collector.cycles >= 2, "two cycles")
                send(sqlite_url, "trip", [ids[1]])

                def confirmed() -> bool:
                    with unit_of_work(sqlite_url) as s:
                        return s.scalars(select(Command.state)).one() == "confirmed"

                await eventually(confirmed, "the trip is confirmed over the serial line")
                await asyncio.sleep(0.5)
            with unit_of_work(sqlite_url) as s:
                assert all(s.get_one(Meter, i).last_energy_kwh is not None for i in ids)
                assert s.get_one(Meter, ids[1]).relay == "open"
            assert not sim.meter(2).relay_closed and sim.meter(1).relay_closed
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
