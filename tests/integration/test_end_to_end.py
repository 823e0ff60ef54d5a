"""The whole loop over real Modbus TCP on loopback: simulated meter → collector → billing → trip,
then a sale → close. Runs on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from billing import ledger
from billing.sales import sell
from collector.service import Collector
from collector.simulator import GatewaySimulator, SimulatedMeter
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Command, Meter, Operator
from tests.factories import POLICY, make_site, open_account

SHANGHAI = ZoneInfo("Asia/Shanghai")
SPEED = 3600.0  # one simulated hour per real second


def account_state(url: str, account_id: int) -> Decimal:
    with unit_of_work(url) as s:
        # Locked, so a charge the collector commits meanwhile cannot fall between the two reads.
        account = ledger.lock_account(s, account_id)
        assert ledger.ledger_sum(s, account_id) == account.balance, "ledger must sum to balance"
        return account.balance


def command_states(url: str, meter_id: int) -> list[tuple[str, str]]:
    with unit_of_work(url) as s:
        rows = s.scalars(select(Command).where(Command.meter_id == meter_id).order_by(Command.id))
        return [(c.kind, c.state) for c in rows]


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def scenario(url: str) -> None:
    start = datetime(2026, 11, 2, 10, 0, tzinfo=SHANGHAI)  # shops open: the load is high
    sim = GatewaySimulator(
        [SimulatedMeter.create(1, base_load_kw=6.0, initial_kwh=Decimal("100.00"))],
        speed=SPEED, start_at=start, tz=SHANGHAI,
    )
    await sim.start()
    simulated = sim.meter(1)
    with unit_of_work(url) as s:
        site = make_site(s, port=sim.port)
        meter_id = site.meters[0].id
        account_id = open_account(s, site, site.meters[0])
        sell(s, account_id=account_id, amount="10.00", payment_method="cash",
             idempotency_key="opening", operator=site.admin, now=datetime.now(UTC),
             policy=POLICY)
    store = SqlReadingStore(url)
    collector = Collector(url, store, interval_s=0.2, policy=POLICY,
                          command_poll_s=0.05)
    task = asyncio.create_task(collector.run())
    try:
        async def in_arrears() -> bool:
            return await asyncio.to_thread(account_state, url, account_id) <= 0

        await eventually(in_arrears, "the balance reaches 0")

        async def tripped() -> bool:
            states = await asyncio.to_thread(command_states, url, meter_id)
            return ("trip", "confirmed") in states and not simulated.relay_closed

        await eventually(tripped, "the collector trips the meter and reads the relay back")
        sim.sync()
        energy_at_trip = simulated.energy_kwh
        await asyncio.sleep(0.5)  # half a simulated hour with the relay open
        sim.sync()
        assert simulated.energy_kwh == energy_at_trip, "no energy flows through an open relay"
        assert simulated.power_kw == 0
        balance_tripped = await asyncio.to_thread(account_state, url, account_id)

        def recharge() -> Decimal:
            with unit_of_work(url) as s:
                admin = s.get_one(Operator, site.admin.id)
                return sell(s, account_id=account_id, amount="50.00", payment_method="card",
                            idempotency_key="counter-1", operator=admin,
                            now=datetime.now(UTC), policy=POLICY).balance

        assert await asyncio.to_thread(recharge) == balance_tripped + Decimal("50.00")

        async def closed() -> bool:
            states = await asyncio.to_thread(command_states, url, meter_id)
            return ("close", "confirmed") in states and simulated.relay_closed

        await eventually(closed, "the sale closes the meter again")
        sim.sync()
        energy_after_close = simulated.energy_kwh
        await asyncio.sleep(0.3)
        sim.sync()
        assert simulated.energy_kwh > energy_after_close, "energy flows again once closed"
        await asyncio.to_thread(account_state, url, account_id)  # the ledger still sums
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
        store.close()

    with unit_of_work(url) as s:
        meter = s.get_one(Meter, meter_id)
        assert meter.last_reading_at is not None
        assert meter.last_energy_kwh is not None and meter.last_energy_kwh > Decimal("100.00")
    stored = store.readings(meter_id, start.astimezone(UTC) - timedelta(days=1),
                            datetime.now(UTC) + timedelta(days=1))
    assert len(stored) >= 3, "every reading is kept in the time-series store"
    assert [r.energy_kwh for r in stored] == sorted(r.energy_kwh for r in stored)


def test_credit_runs_out_the_meter_trips_and_a_sale_restores_it(db_url: str) -> None:
    asyncio.run(asyncio.wait_for(scenario(db_url), timeout=60))
    status = subprocess.run(
        [sys.executable, "-m", "voltpay.cli", "status", "--json"],
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True, text=True, check=True, timeout=60,
    )
    (row,) = json.loads(status.stdout)
    assert row["meter"] == "M00001"
    assert row["unit"] == "A101"
    assert row["account"] == "10001"
    assert row["relay"] in ("closed", "open")
    assert Decimal(row["balance"]) == account_state(db_url, row["account_id"]).quantize(
        Decimal("0.01")
    )
    assert datetime.fromisoformat(row["last_reading_at"]).tzinfo is not None
