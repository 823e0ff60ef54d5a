"""Simulated faults, seen through a real pymodbus client with the collector's short timeouts:
silent, slow, exception-answering and garbage meters, and a gateway that goes down and comes
back on the same port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from collector.profiles import DecodeError, DeviceProfile, load_profile
from collector.simulator import Fault, GatewaySimulator, SimulatedMeter

NOON = datetime(2025, 6, 2, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TIMEOUT_S = 0.3
DEVICE_FAILURE = 0x04
GATEWAY_NO_RESPONSE = 0x0B
DTSY = load_profile("acrel_dtsy1352")


def client_for(gw: GatewaySimulator, timeout: float = TIMEOUT_S) -> AsyncModbusTcpClient:
    framer = FramerType.RTU if gw.framer == FramerType.RTU else FramerType.SOCKET
    return AsyncModbusTcpClient(
        "127.0.0.1",
        port=gw.port,
        framer=framer,
        timeout=timeout,
        retries=0,
        reconnect_delay=0.1,
        reconnect_delay_max=0.1,
    )


async def read_profile(
    client: AsyncModbusTcpClient, profile: DeviceProfile, device_id: int
) -> dict[str, Decimal]:
    registers = {}
    for block in profile.blocks:
        read = client.read_holding_registers if block.function == 3 else client.read_input_registers
        response = await read(block.address, count=block.count, device_id=device_id)
        assert not response.isError(), (block, response)
        registers[block.name] = list(response.registers)
    return profile.decode(registers)


async def energy(client: AsyncModbusTcpClient, device_id: int) -> Any:
    """The first two registers of a meter, or the exception response."""
    return await client.read_holding_registers(0, count=2, device_id=device_id)


Scenario = Callable[[GatewaySimulator, AsyncModbusTcpClient], Awaitable[None]]


def run_gateway(scenario: Scenario, meters: list[Any] | None = None, **kwargs: Any) -> None:
    async def main() -> None:
        gateway = GatewaySimulator(meters or [1, 2], start_at=NOON, **kwargs)
        await gateway.start()
        client = client_for(gateway)
        try:
            assert await client.connect()
            await scenario(gateway, client)
        finally:
            client.close()
            await gateway.stop()

    asyncio.run(main())


async def times_out(request: Awaitable[Any]) -> float:
    """Seconds until the request failed for want of an answer."""
    started = time.monotonic()
    with pytest.raises(ModbusIOException, match="No response"):
        await request
    return time.monotonic() - started


def test_a_silent_meter_makes_the_client_time_out_and_its_neighbours_still_answer() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        gw.meter(1).set_fault("silent")
        assert await times_out(energy(client, 1)) >= TIMEOUT_S
        assert not (await energy(client, 2)).isError()
        gw.meter(1).clear_fault()
        assert not (await energy(client, 1)).isError()

    run_gateway(scenario)


def test_a_silent_meter_behind_a_modbus_tcp_gateway_can_answer_0x0b_after_a_delay() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        gw.meter(1).fault = Fault("silent", delay_s=0.1, exception_code=GATEWAY_NO_RESPONSE)
        started = time.monotonic()
        response = await energy(client, 1)
        assert time.monotonic() - started >= 0.1
        assert response.isError() and response.exception_code == GATEWAY_NO_RESPONSE

    run_gateway(scenario)


def test_a_slow_meter_answers_after_its_delay_or_after_the_client_gave_up() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        gw.meter(1).set_fault("slow", delay_s=0.15)
        started = time.monotonic()
        values = await read_profile(client, DTSY, 1)
        assert time.monotonic() - started >= 0.15 * len(DTSY.blocks)
        assert values["energy_kwh"] == gw.meter(1).energy_kwh
        gw.meter(1).set_fault("slow", delay_s=TIMEOUT_S + 0.2)
        await times_out(energy(client, 1))

    run_gateway(scenario)


def test_a_failing_meter_answers_an_exception_code() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        gw.meter(1).set_fault("exception")
        response = await energy(client, 1)
        assert response.isError() and response.exception_code == DEVICE_FAILURE
        gw.meter(1).set_fault("exception", exception_code=0x06)  # device busy
        write = await client.write_registers(0x0057, [1, 1], device_id=1)
        assert write.isError() and write.exception_code == 0x06
        assert gw.meter(1).relay_closed  # the refused trip did nothing

    run_gateway(scenario)


def test_a_garbage_meter_answers_implausible_registers() -> None:
    chint = SimulatedMeter.create(2, profile="chint_ddsu666")

    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        gw.meter(1).set_fault("garbage")
        values = await read_profile(client, DTSY, 1)
        assert values["energy_kwh"] == Decimal("42949672.95")
        assert values["voltage_v"] == Decimal("6553.5")
        gw.meter(1).set_fault("garbage", garbage=0)
        assert (await read_profile(client, DTSY, 1))["energy_kwh"] == 0
        gw.meter(2).set_fault("garbage")
        with pytest.raises(DecodeError, match="field voltage_v"):  # a float32 NaN
            await read_profile(client, load_profile("chint_ddsu666"), 2)

    run_gateway(scenario, meters=[1, chint])


def test_a_gateway_goes_down_refuses_connections_and_comes_back_on_the_same_port() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        port = gw.port
        assert not (await energy(client, 1)).isError()
        await gw.go_down()
        assert gw.down and not gw.running
        refused = client_for(gw)
        assert not await refused.connect()  # connection refused
        refused.close()
        with pytest.raises(ModbusException):  # the open connection was dropped
            await energy(client, 1)
        await gw.come_back()
        assert gw.port == port and gw.running and not gw.down
        again = client_for(gw)
        try:
            assert await again.connect()
            assert not (await energy(again, 1)).isError()
        finally:
            again.close()

    run_gateway(scenario)


def test_over_rtu_an_absent_or_silent_meter_stays_quiet() -> None:
    async def scenario(gw: GatewaySimulator, client: AsyncModbusTcpClient) -> None:
        await times_out(energy(client, 9))  # no meter 9: a serial server has nothing to say
        gw.meter(1).online = False
        await times_out(energy(client, 1))
        await asyncio.sleep(0.05)  # a guard gap after a timeout on a link without ids
        response = await energy(client, 2)
        assert not response.isError()
        assert response.dev_id == 2

    run_gateway(scenario, framer="rtu")


def test_fault_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="fault kind"):
        Fault("flaky")
    with pytest.raises(ValueError):
        Fault("slow", exception_code=DEVICE_FAILURE)
    with pytest.raises(ValueError):
        Fault("exception", exception_code=0x99)
    with pytest.raises(ValueError):
        Fault("slow", delay_s=-1)
    assert Fault("exception").answer == DEVICE_FAILURE
    assert Fault("silent").drops and Fault("silent").answer is None
