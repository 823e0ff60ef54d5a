"""A gateway that cannot be reached marks its meters lost; when it answers they come back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from collector.service import Collector
from collector.simulator import GatewaySimulator
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Gateway, Meter
from tests.factories import POLICY, make_site


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


def lost(url: str) -> list[bool]:
    """Whether each meter, then the gateway, is marked lost."""
    with unit_of_work(url) as s:
        meters = [m.lost_since is not None for m in s.query(Meter).order_by(Meter.id)]
        return [*meters, s.query(Gateway).one().lost_since is not None]


async def scenario(url: str) -> None:
    port = free_port()
    with unit_of_work(url) as s:
        make_site(s, meters=2, port=port)
    store = SqlReadingStore(url)
    collector = Collector(url, store, interval_s=0.1, policy=POLICY,
                          lost_after=3)
    task = asyncio.create_task(collector.run())
    sim = GatewaySimulator([1, 2], port=port)
    try:
        async def all_lost() -> bool:
            return await asyncio.to_thread(lost, url) == [True, True, True]

        await eventually(all_lost, "both meters behind the dead gateway are marked lost")
        await sim.start()

        async def all_back() -> bool:
            return await asyncio.to_thread(lost, url) == [False, False, False]

        await eventually(all_back, "the meters answer again once the gateway is back")
        with unit_of_work(url) as s:
            assert s.query(Gateway).one().last_contact_at is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()


def test_meters_behind_an_unreachable_gateway_are_lost_then_found(sqlite_url: str) -> None:
    asyncio.run(asyncio.wait_for(scenario(sqlite_url), timeout=60))
