"""The one module that talks pymodbus. Everything else sees registers and our own errors.

One `GatewayClient` per gateway, holding one pymodbus client and a lock, so the RS-485 bus behind
it never sees two requests at once. Transports: a Modbus TCP gateway (MBAP framing), a
transparent serial server (raw RTU frames over TCP), or a local serial port (RTU).

Timeouts are the caller's business: pymodbus retries nothing (`retries=0`) and never reconnects
on its own (`reconnect_delay=0`, so never its 300 s back-off); the scheduler decides when to try
a meter or a gateway again. After a timeout on an RTU link (no transaction id to match a reply
to its request) the client waits a guard gap, so a late reply cannot pass for the next answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

log = logging.getLogger(__name__)

TRANSPORTS = ("tcp", "rtu-over-tcp", "serial")


class ModbusError(Exception):
    """A read or write that did not succeed: no answer, a broken link, or an exception response."""


class NoAnswer(ModbusError):
    """The meter did not answer in time (or the gateway said so: exception 0x0A / 0x0B)."""


class GatewayUnreachable(ModbusError):
    """The gateway itself cannot be reached: no meter behind it can answer either."""


GATEWAY_PATH_EXCEPTIONS = (0x0A, 0x0B)  # path unavailable, target device failed to respond


@dataclass(frozen=True)
class Link:
    """How to reach one gateway's bus."""

    transport: str = "tcp"
    host: str = "127.0.0.1"  # for serial: the device path, e.g. /dev/ttyUSB0
    port: int = 502
    baudrate: int = 9600
    timeout_s: float = 1.0
    gap_s: float = 0.0  # silence kept between two requests on the bus
    # Immediate retries of a command write that got no answer (reads are never retried within a
    # cycle: a dead meter may cost its bus only one timeout).
    retries: int = 0

    @property
    def name(self) -> str:
        return self.host if self.transport == "serial" else f"{self.host}:{self.port}"


class GatewayClient:
    def __init__(self, link: Link) -> None:
        if link.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {link.transport!r}; use one of {TRANSPORTS}")
        self.link = link
        self.name = link.name
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if link.transport == "serial":
            self._client = AsyncModbusSerialClient(
                link.host, framer=FramerType.RTU, baudrate=link.baudrate,
                timeout=link.timeout_s, retries=0, reconnect_delay=0,
            )
        else:
            self._client = AsyncModbusTcpClient(
                link.host, port=link.port,
                framer=FramerType.RTU if link.transport == "rtu-over-tcp" else FramerType.SOCKET,
                timeout=link.timeout_s, retries=0, reconnect_delay=0,
            )
        self._lock = asyncio.Lock()
        self._rtu = link.transport != "tcp"

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        if self._client.connected:
            return
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            raise GatewayUnreachable(f"gateway {self.name}: {exc}") from None
        if not ok:
            raise GatewayUnreachable(
                f"gateway {self.name} refused or did not answer the connection"
            )

    async def _call(
        self, device_id: int, what: str, request: Callable[[], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        await self.connect()
        try:
            response = await request()
        except ConnectionException as exc:
            self._client.close()
            raise GatewayUnreachable(f"gateway {self.name}: {exc}") from None
        except ModbusIOException:
            if self._rtu:
                await asyncio.sleep(max(self.link.timeout_s / 2, 0.05))  # let a late reply pass
            raise NoAnswer(f"{self.name} device {device_id}: no answer to {what}") from None
        except ModbusException as exc:
            raise ModbusError(f"{self.name} device {device_id}: {what}: {exc}") from None
        finally:
            if self.link.gap_s:
                await asyncio.sleep(self.link.gap_s)
        if response.isError():
            code = getattr(response, "exception_code", None)
            if code in GATEWAY_PATH_EXCEPTIONS:
                raise NoAnswer(f"{self.name} device {device_id}: gateway reports no answer "
                               f"(exception {code:#04x}) to {what}")
            raise ModbusError(f"{self.name} device {device_id}: exception {code} to {what}")
        return response

    async def read(self, device_id: int, function: int, address: int, count: int) -> list[int]:
        if function not in (3, 4):
            raise ModbusError(f"read function {function} is not supported")
        what = f"FC{function:02d} {address:#06x}+{count}"
        async with self._lock:
            read = (
                self._client.read_holding_registers if function == 3
                else self._client.read_input_registers
            )
            response = await self._call(
                device_id, what, lambda: read(address, count=count, device_id=device_id)
            )
        registers = list(response.registers)
        if len(registers) < count:
            raise ModbusError(f"{self.name} device {device_id}: short reply to {what}")
        return registers[:count]

    async def write(
        self, device_id: int, function: int, address: int, values: Sequence[int]
    ) -> None:
        what = f"FC{function:02d} {address:#06x}={list(values)}"
        async with self._lock:
            if function == 16:
                await self._call(device_id, what, lambda: self._client.write_registers(
                    address, list(values), device_id=device_id))
            elif function == 6 and len(values) == 1:
                await self._call(device_id, what, lambda: self._client.write_register(
                    address, values[0], device_id=device_id))
            else:
                raise ModbusError(f"write function {function} is not supported")

    def close(self) -> None:
        self._client.close()
