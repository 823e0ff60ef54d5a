"""The meter simulator, seen through a real Modbus TCP client the way the collector sees it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from collector.profiles import Control, DeviceProfile, load_profile
from collector.simulator import (
    CONTROL_ADDRESS,
    MEASUREMENT_ADDRESS,
    MEASUREMENT_COUNT,
    STATUS_ADDRESS,
    STATUS_ALARM,
    STATUS_OVERLOAD,
    STATUS_POWER_PROTECT,
    STATUS_RELAY_CLOSED,
    Band,
    GatewaySimulator,
    SimulatedMeter,
    band_at,
    serve_forever,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2025, 6, 2, 12, 0, tzinfo=SHANGHAI)

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
GATEWAY_NO_RESPONSE = 0x0B


class FakeClock:
    """A monotonic clock the test moves by hand (seconds of real time)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def u32(regs: list[int], offset: int) -> int:
    return (regs[offset] << 16) | regs[offset + 1]


def s16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class Reading:
    """The 17-register measurement block decoded as the profile says."""

    def __init__(self, regs: list[int]) -> None:
        assert len(regs) == MEASUREMENT_COUNT
        self.total = Decimal(u32(regs, 0)) / 100
        self.bands = [Decimal(u32(regs, off)) / 100 for off in (2, 4, 6, 8)]
        self.voltage = Decimal(regs[0x0B]) / 10
        self.current = Decimal(regs[0x0C]) / 100
        self.power = Decimal(s16(regs[0x0D])) / 1000
        self.apparent = Decimal(regs[0x0F]) / 1000
        self.power_factor = Decimal(s16(regs[0x10])) / 1000


async def read_block(client: AsyncModbusTcpClient, device_id: int) -> Reading:
    response = await client.read_holding_registers(0, count=MEASUREMENT_COUNT, device_id=device_id)
    assert not response.isError(), response
    return Reading(list(response.registers))


async def read_status(client: AsyncModbusTcpClient, device_id: int) -> int:
    response = await client.read_holding_registers(STATUS_ADDRESS, count=1, device_id=device_id)
    assert not response.isError(), response
    return int(response.registers[0])


Scenario = Callable[[GatewaySimulator, AsyncModbusTcpClient, FakeClock], Awaitable[None]]


def run_gateway(scenario: Scenario, meters: list[Any] | None = None, **kwargs: Any) -> None:
    """Start a gateway on a free port, connect a client, run the scenario, stop everything."""

    async def main() -> None:
        clock = FakeClock()
        options: dict[str, Any] = {"speed": 3600.0, "clock": clock, "start_at": NOON}
        options.update(kwargs)
        gateway = GatewaySimulator(meters or [1, 2], **options)
        await gateway.start()
        framer = FramerType.RTU if options.get("framer") == "rtu" else FramerType.SOCKET
        client = AsyncModbusTcpClient(
            "127.0.0.1", port=gateway.port, framer=framer, timeout=1, retries=0
        )
        try:
            assert await client.connect()
            await scenario(gateway, client, clock)
        finally:
            client.close()
            await gateway.stop()

    asyncio.run(main())


# -- over the wire ---------------------------------------------------------------------------


def test_measurement_block_reads_in_one_request_with_plausible_values() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient, _: FakeClock) -> None:
        assert gw.port > 0
        r = await read_block(client, 1)
        assert r.total == sum(r.bands)
        assert Decimal(100) <= r.total <= Decimal(900)
        assert Decimal(220) <= r.voltage <= Decimal(240)
        assert Decimal("0.5") <= r.power <= Decimal("8.5")  # noon: the mall is open
        assert Decimal("0.9") <= r.power_factor <= Decimal(1)
        assert r.apparent >= r.power
        assert abs(r.current * r.voltage / 1000 - r.apparent) < Decimal("0.05")
        assert await read_status(client, 1) & STATUS_RELAY_CLOSED

    run_gateway(scenario)


def test_energy_increases_with_simulated_time_and_total_is_sum_of_bands() -> None:
    async def scenario(
        gw: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock
    ) -> None:
        before = await read_block(client, 1)
        clock.advance(2.0)  # two simulated hours at speed 3600
        after = await read_block(client, 1)
        used = after.total - before.total
        # two hours at between the first and the last power seen, within noise
        low = min(before.power, after.power) * 2 * Decimal("0.85")
        high = max(before.power, after.power) * 2 * Decimal("1.15")
        assert low <= used <= high
        assert after.total == sum(after.bands)
        # 12:00-14:00 lies in the flat band only
        assert after.bands[2] - before.bands[2] == used
        assert gw.now() == NOON + timedelta(hours=2)

    run_gateway(scenario)


def test_night_load_is_lower_than_day_load() -> None:
    async def scenario(_: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock) -> None:
        night = (await read_block(client, 1)).power
        clock.advance(10.0)  # 03:00 → 13:00
        day = (await read_block(client, 1)).power
        assert Decimal(0) < night < day / 3

    run_gateway(scenario, start_at=NOON.replace(hour=3))


def test_trip_stops_energy_and_close_resumes_it() -> None:
    async def scenario(_: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock) -> None:
        clock.advance(0.5)
        response = await client.write_registers(CONTROL_ADDRESS, [1, 1], device_id=1)
        assert not response.isError(), response
        assert not await read_status(client, 1) & STATUS_RELAY_CLOSED
        tripped = await read_block(client, 1)
        assert tripped.power == 0
        assert tripped.current == 0
        control = await client.read_holding_registers(CONTROL_ADDRESS, count=2, device_id=1)
        assert list(control.registers) == [1, 1]

        clock.advance(3.0)  # three simulated hours with the relay open
        assert (await read_block(client, 1)).total == tripped.total

        response = await client.write_registers(CONTROL_ADDRESS, [1, 0], device_id=1)
        assert not response.isError(), response
        assert await read_status(client, 1) & STATUS_RELAY_CLOSED
        clock.advance(1.0)
        resumed = await read_block(client, 1)
        assert resumed.power > 0
        assert resumed.total > tripped.total

    run_gateway(scenario)


def test_invalid_commands_and_addresses_give_exception_responses() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient, _: FakeClock) -> None:
        bad = await client.write_registers(CONTROL_ADDRESS, [2, 2], device_id=1)
        assert bad.isError()
        assert bad.exception_code == ILLEGAL_VALUE
        fc06 = await client.write_register(CONTROL_ADDRESS, 1, device_id=1)
        assert fc06.isError()
        assert fc06.exception_code == ILLEGAL_FUNCTION
        half = await client.write_registers(CONTROL_ADDRESS + 1, [1], device_id=1)
        assert half.isError()
        assert half.exception_code == ILLEGAL_VALUE
        energy = await client.write_registers(0, [0, 0], device_id=1)
        assert energy.isError()
        assert energy.exception_code == ILLEGAL_ADDRESS
        gap = await client.read_holding_registers(0x0011, count=1, device_id=1)
        assert gap.isError()
        assert gap.exception_code == ILLEGAL_ADDRESS
        too_long = await client.read_holding_registers(0, count=MEASUREMENT_COUNT + 1, device_id=1)
        assert too_long.isError()
        fc04 = await client.read_input_registers(0, count=2, device_id=1)
        assert fc04.isError()
        assert fc04.exception_code == ILLEGAL_FUNCTION
        # none of it touched the relay or the control block
        assert gw.meter(1).relay_closed
        assert await read_status(client, 1) & STATUS_RELAY_CLOSED
        control = await client.read_holding_registers(CONTROL_ADDRESS, count=2, device_id=1)
        assert list(control.registers) == [0, 0]

    run_gateway(scenario)


def test_absent_and_offline_meters_answer_like_a_gateway() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient, _: FakeClock) -> None:
        absent = await client.read_holding_registers(0, count=2, device_id=9)
        assert absent.isError()
        assert absent.exception_code == GATEWAY_NO_RESPONSE
        gw.meter(2).online = False
        offline = await client.read_holding_registers(0, count=2, device_id=2)
        assert offline.isError()
        assert offline.exception_code == GATEWAY_NO_RESPONSE
        assert not (await client.read_holding_registers(0, count=2, device_id=1)).isError()

    run_gateway(scenario)


def test_two_meters_on_one_gateway_are_independent() -> None:
    async def scenario(
        gw: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock
    ) -> None:
        one, two = await read_block(client, 1), await read_block(client, 2)
        assert one.power != two.power
        await client.write_registers(CONTROL_ADDRESS, [1, 1], device_id=1)
        clock.advance(1.0)
        assert (await read_block(client, 1)).total == one.total
        assert (await read_block(client, 2)).total > two.total
        assert await read_status(client, 2) & STATUS_RELAY_CLOSED
        assert not gw.meter(1).relay_closed
        assert gw.meter(2).relay_closed

    run_gateway(scenario)


def test_status_bits_follow_the_meter() -> None:
    meter = SimulatedMeter.create(7, base_load_kw=5.0, overload_kw=1.0, power_protect=True)
    meter.alarm = True

    async def scenario(_: GatewaySimulator, client: AsyncModbusTcpClient, __: FakeClock) -> None:
        status = await read_status(client, 7)
        expected = STATUS_RELAY_CLOSED | STATUS_POWER_PROTECT | STATUS_ALARM | STATUS_OVERLOAD
        assert status == expected
        await client.write_registers(CONTROL_ADDRESS, [1, 1], device_id=7)
        assert await read_status(client, 7) == STATUS_POWER_PROTECT | STATUS_ALARM

    run_gateway(scenario, meters=[meter])


def test_three_gateways_in_one_process_and_stopping_releases_ports() -> None:
    async def main() -> list[int]:
        sims = [GatewaySimulator([1, 2, 3], speed=3600.0, start_at=NOON, seed=i) for i in range(3)]
        ready = asyncio.Event()
        task = asyncio.create_task(serve_forever(sims, on_started=lambda _: ready.set()))
        await asyncio.wait_for(ready.wait(), timeout=2)
        ports = [sim.port for sim in sims]
        assert len(set(ports)) == 3
        for port in ports:
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
            assert await client.connect()
            response = await client.read_holding_registers(0, count=17, device_id=3)
            assert not response.isError()
            client.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(sim.running for sim in sims)
        return ports

    ports = asyncio.run(main())
    for port in ports:  # the ports are free again
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))

    async def restart() -> None:  # and a gateway can bind the same fixed port again
        gateway = GatewaySimulator([1], port=ports[0], start_at=NOON)
        await gateway.start()
        assert gateway.port == ports[0]
        await gateway.stop()

    asyncio.run(restart())


def test_gateway_rejects_bad_bus_configurations() -> None:
    with pytest.raises(ValueError, match="at most 32"):
        GatewaySimulator(range(1, 34))
    GatewaySimulator(range(1, 33))  # exactly 32 is fine
    with pytest.raises(ValueError, match="duplicate"):
        GatewaySimulator([1, 1])
    with pytest.raises(ValueError):
        GatewaySimulator([0])
    with pytest.raises(ValueError):
        GatewaySimulator([248])
    with pytest.raises(ValueError):
        GatewaySimulator([])
    with pytest.raises(ValueError):
        GatewaySimulator([1], start_at=datetime(2025, 1, 1))  # noqa: DTZ001 - naive on purpose


# -- every profile, through the collector's decode pipeline -----------------------------------

SHIPPED = ("acrel_dtsy1352", "acrel_ddsy1352", "acrel_dtsd1352", "chint_ddsu666")


async def read_profile(
    client: AsyncModbusTcpClient, profile: DeviceProfile, device_id: int
) -> dict[str, Decimal]:
    """Read every derived block as the collector does and decode it with the profile."""
    registers = {}
    for block in profile.blocks:
        read = client.read_holding_registers if block.function == 3 else client.read_input_registers
        response = await read(block.address, count=block.count, device_id=device_id)
        assert not response.isError(), (block, response)
        registers[block.name] = list(response.registers)
    return profile.decode(registers)


def near(value: Decimal | int, model: float | Decimal, tolerance: str) -> bool:
    return abs(value - Decimal(str(model))) <= Decimal(tolerance)


@pytest.mark.parametrize("key", SHIPPED)
def test_every_profile_is_served_and_decodes_to_the_model(key: str) -> None:
    meter = SimulatedMeter.create(1, base_load_kw=5.0, initial_kwh=Decimal("500.00"))

    async def scenario(
        gw: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock
    ) -> None:
        profile = load_profile(key)
        model = gw.meter(1)
        before = await read_profile(client, profile, 1)
        clock.advance(2.0)  # two simulated hours
        after = await read_profile(client, profile, 1)
        assert Decimal(500) <= before["energy_kwh"] < after["energy_kwh"]
        assert near(after["energy_kwh"], model.energy_kwh, "0.001")  # float32 for the DDSU666
        assert near(after["power_kw"], model.power_kw, "0.001")
        assert Decimal("0.5") < after["power_kw"] < Decimal("6")  # 14:00, the mall is open
        assert Decimal("0.9") <= after["power_factor"] <= 1
        if "voltage_v" in profile.fields:
            assert near(after["voltage_v"], model.voltage_v(), "0.05")
            assert near(after["current_a"], model.quantities()["current_a"], "0.005")
        if "voltage_l1_v" in profile.fields:  # three phases sharing the load
            phases = [after[f"power_l{p}_kw"] for p in (1, 2, 3)]
            assert near(sum(phases), after["power_kw"], "0.003")
            assert all(Decimal(215) < after[f"voltage_l{p}_v"] < Decimal(245) for p in (1, 2, 3))
        if "frequency_hz" in profile.fields:
            assert Decimal("49.9") <= after["frequency_hz"] <= Decimal("50.1")
        bands = profile.band_energy(after)
        if bands is not None:
            assert sum(bands.values()) == after["energy_kwh"]
        if profile.readback is not None:
            assert profile.relay_closed(after) is True

    run_gateway(scenario, meters=[meter], profile=key)


def test_meters_with_different_profiles_share_a_bus() -> None:
    acrel = SimulatedMeter.create(1)
    chint = SimulatedMeter.create(2, profile="chint_ddsu666")

    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient, _: FakeClock) -> None:
        assert gw.profile_of(2).model == "Chint DDSU666"
        fc04 = await client.read_input_registers(0x0000, count=2, device_id=1)
        assert fc04.isError() and fc04.exception_code == ILLEGAL_FUNCTION
        fc03 = await client.read_holding_registers(0x2000, count=2, device_id=2)
        assert fc03.isError() and fc03.exception_code == ILLEGAL_FUNCTION
        # the gap registers inside a coalesced block read 0; past the block they are illegal
        gap = await client.read_input_registers(0x2008, count=2, device_id=2)
        assert list(gap.registers) == [0, 0]
        outside = await client.read_input_registers(0x2010, count=1, device_id=2)
        assert outside.isError() and outside.exception_code == ILLEGAL_ADDRESS
        password = await client.read_holding_registers(0x000A, count=1, device_id=1)
        assert list(password.registers) == [0]
        energy = await read_profile(client, load_profile("chint_ddsu666"), 2)
        assert near(energy["energy_kwh"], gw.meter(2).energy_kwh, "0.001")

    run_gateway(scenario, meters=[acrel, chint])


def test_dispatched_prices_settings_and_power_protect_reach_the_meter() -> None:
    meter = SimulatedMeter.create(1, base_load_kw=5.0)
    profile = load_profile("acrel_dtsy1352")
    price = profile.controls["price"]
    settings = profile.controls["settings"]

    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient, _: FakeClock) -> None:
        prices = {"sharp": "1.45", "peak": "1.2", "flat": "0.85", "valley": "0.45"}
        written = profile.encode_control("price", prices)
        assert not (await client.write_registers(price.address, written, device_id=1)).isError()
        assert gw.meter(1).prices == {band: Decimal(v) for band, v in prices.items()}
        back = await client.read_holding_registers(price.address, count=price.count, device_id=1)
        assert list(back.registers) == written

        limits = {"alarm1_amount": "50", "alarm2_amount": "20", "overload_kw": "0.5"}
        written = profile.encode_control("settings", limits)
        assert not (await client.write_registers(settings.address, written, device_id=1)).isError()
        assert gw.meter(1).overload_kw == 0.5
        assert gw.meter(1).settings["alarm1_amount"] == Decimal(50)

        protect = profile.controls["protect_on"]
        await client.write_registers(protect.address, list(protect.values), device_id=1)
        values = await read_profile(client, profile, 1)
        assert profile.status_flag(values, "power_protect") is True
        assert profile.status_flag(values, "overload") is True  # 5 kW load over a 0.5 kW limit
        protect = profile.controls["protect_off"]
        await client.write_registers(protect.address, list(protect.values), device_id=1)
        assert not gw.meter(1).power_protect

        partial = await client.write_registers(price.address, written[:2], device_id=1)
        assert partial.isError() and partial.exception_code == ILLEGAL_VALUE

    run_gateway(scenario, meters=[meter])


def test_rtu_over_tcp_serves_the_same_registers() -> None:
    async def scenario(
        gw: GatewaySimulator, client: AsyncModbusTcpClient, clock: FakeClock
    ) -> None:
        assert gw.framer == FramerType.RTU
        profile = load_profile("acrel_dtsy1352")
        before = await read_profile(client, profile, 1)
        assert before["energy_kwh"] == gw.meter(1).energy_kwh
        assert not (await client.write_registers(CONTROL_ADDRESS, [1, 1], device_id=2)).isError()
        assert not gw.meter(2).relay_closed
        clock.advance(1.0)
        after = await read_profile(client, profile, 1)
        assert after["energy_kwh"] == gw.meter(1).energy_kwh > before["energy_kwh"]
        assert profile.relay_closed(await read_profile(client, profile, 2)) is False

    run_gateway(scenario, framer="rtu")


# -- the model -------------------------------------------------------------------------------


def test_energy_is_exact_whatever_the_read_pattern() -> None:
    start = NOON.replace(hour=6)
    coarse = SimulatedMeter.create(3, base_load_kw=4.0, initial_kwh=0)
    fine = SimulatedMeter.create(3, base_load_kw=4.0, initial_kwh=0)
    coarse.advance_to(start)
    fine.advance_to(start)
    coarse.advance_to(start + timedelta(days=1))
    for minute in range(1, 24 * 60 + 1, 7):
        fine.advance_to(start + timedelta(minutes=minute))
    fine.advance_to(start + timedelta(days=1))
    assert abs(coarse.energy_kwh - fine.energy_kwh) <= Decimal("0.01")
    for band in Band:
        assert coarse.band_energy_kwh(band) > 0  # a whole day touches every band
    assert coarse.energy_kwh == sum(coarse.band_energy_kwh(b) for b in Band)


def test_trip_stops_energy_exactly_at_the_trip_instant() -> None:
    meter = SimulatedMeter.create(4, base_load_kw=6.0, initial_kwh=Decimal("250.00"))
    assert meter.energy_kwh == Decimal("250.00")
    meter.advance_to(NOON)
    meter.trip(at=NOON + timedelta(hours=1))
    at_trip = meter.energy_kwh
    assert at_trip > Decimal("250.00")
    meter.advance_to(NOON + timedelta(days=3))
    assert meter.energy_kwh == at_trip
    assert meter.power_kw == 0
    meter.close(at=NOON + timedelta(days=3))
    meter.advance_to(NOON + timedelta(days=3, hours=1))
    assert meter.energy_kwh > at_trip


def test_time_of_use_schedule() -> None:
    def at(hour: int) -> Band:
        return band_at(NOON.replace(hour=hour))

    assert [at(h) for h in (19, 20)] == [Band.SHARP] * 2
    assert [at(h) for h in (8, 10, 17, 18, 21)] == [Band.PEAK] * 5
    assert [at(h) for h in (11, 16, 22)] == [Band.FLAT] * 3
    assert [at(h) for h in (23, 0, 7)] == [Band.VALLEY] * 3


def test_defaults_are_deterministic_per_seed_and_address() -> None:
    a, b = SimulatedMeter.create(5, seed=1), SimulatedMeter.create(5, seed=1)
    assert a == b
    assert 1.0 <= a.base_load_kw <= 8.0
    assert Decimal(100) <= a.energy_kwh <= Decimal(900)
    assert SimulatedMeter.create(6, seed=1).base_load_kw != a.base_load_kw


def test_simulator_constants_match_the_default_profile() -> None:
    profile = load_profile("acrel_dtsy1352")
    expected = {
        "energy_kwh": 0x0000,
        "energy_sharp_kwh": 0x0002,
        "energy_peak_kwh": 0x0004,
        "energy_flat_kwh": 0x0006,
        "energy_valley_kwh": 0x0008,
        "voltage_v": 0x000B,
        "current_a": 0x000C,
        "power_kw": 0x000D,
        "apparent_power_kva": 0x000F,
        "power_factor": 0x0010,
        "status": STATUS_ADDRESS,
    }
    assert {name: f.address for name, f in profile.fields.items()} == expected
    blocks = [(b.function, b.address, b.count) for b in profile.blocks]
    assert blocks == [(3, MEASUREMENT_ADDRESS, MEASUREMENT_COUNT), (3, STATUS_ADDRESS, 1)]
    assert profile.controls["trip"] == Control(16, CONTROL_ADDRESS, (1, 1), source="CODE")
    assert profile.controls["close"].values == (1, 0)
    bits = profile.status_bits
    assert 1 << bits["relay_closed"] == STATUS_RELAY_CLOSED
    assert 1 << bits["power_protect"] == STATUS_POWER_PROTECT
    assert 1 << bits["alarm"] == STATUS_ALARM
    assert 1 << bits["overload"] == STATUS_OVERLOAD
