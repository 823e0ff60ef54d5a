"""`make bench`: each figure on a line of its own, `bench <name> <value> <unit>`.

- billing_readings_per_s: interval readings billed per second (SQLite, batches of 1,000).
- meter_reads_per_s: meters read per second through the collector's Modbus client from one
  simulated gateway with 32 meters on loopback (two register blocks per meter).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from billing import accounts, operators
from billing.charging import charge_readings
from billing.policy import BillingPolicy
from collector.modbus import GatewayClient
from collector.profiles import load_profile
from collector.simulator import GatewaySimulator
from schema.db import get_engine, migrate, unit_of_work
from schema.models import Building, Floor, Gateway, Meter, Unit

T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
POLICY = BillingPolicy()


@dataclass(frozen=True)
class Reading:
    meter_id: int
    at: datetime
    energy_kwh: Decimal


def bench_billing(meters: int = 200, rounds: int = 25) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        with unit_of_work(url) as s:
            admin = operators.create_operator(
                s, username="bench", password="bench-password", role="administrator", now=T0
            )
            floor = Floor(building=Building(code="B", name="Bench"), level=1, name="B1F")
            gateways = [Gateway(name=f"GW{g}", host="127.0.0.1", port=1502 + g)
                        for g in range((meters + 31) // 32)]
            ids = []
            for i in range(meters):
                gateway = gateways[i // 32]
                meter = Meter(serial=f"M{i}", profile="acrel_dtsy1352", gateway=gateway,
                              bus_address=i % 32 + 1, unit=Unit(floor=floor, number=f"U{i}"))
                s.add(meter)
                s.flush()
                accounts.open_account(s, number=f"A{i}", tenant_name=f"T{i}",
                                      meter_ids=[meter.id], operator=admin, now=T0,
                                      policy=POLICY)
                ids.append(meter.id)
        count = 0
        started = time.perf_counter()
        for r in range(rounds):
            at = T0 + timedelta(minutes=30 * r)
            batch = [Reading(m, at, Decimal("100.00") + Decimal("0.37") * r) for m in ids]
            with unit_of_work(url) as s:
                charge_readings(s, batch, policy=POLICY, now=at)
            count += len(batch)
        elapsed = time.perf_counter() - started
        get_engine(url).dispose()
        return count / elapsed


async def _bench_reads(seconds: float = 3.0) -> float:
    profile = load_profile("acrel_dtsy1352")
    sim = GatewaySimulator(list(range(1, 33)))
    await sim.start()
    client = GatewayClient("127.0.0.1", sim.port, timeout_s=1.0, retries=0)
    reads = 0
    try:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            for address in range(1, 33):
                for block in profile.blocks:
                    await client.read(address, block.function, block.address, block.count)
                reads += 1
        elapsed = time.perf_counter() - started
    finally:
        client.close()
        await sim.stop()
    return reads / elapsed


def main() -> None:
    print(f"bench billing_readings_per_s {bench_billing():.0f} readings/s", flush=True)
    print(f"bench meter_reads_per_s {asyncio.run(_bench_reads()):.0f} meters/s", flush=True)


if __name__ == "__main__":
    main()
