"""The one module that talks pymodbus. Everything else sees registers and our own errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

log = logging.getLogger(__name__)


class ModbusError(Exception):
    """A read or write that did not succeed: no answer, a broken link, or an exception response."""


class GatewayUnreachable(ModbusError):
    """The gateway itself cannot be reached: no meter behind it can answer either."""


class GatewayClient:
    """One client per gateway: Modbus RTU on the bus behind it is one request at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        transport: str = "tcp",
        timeout_s: float = 1.0,
        retries: int = 1,
    ) -> None:
        framer = FramerType.RTU if transport == "rtu-over-tcp" else FramerType.SOCKET
        self.name = f"{host}:{port}"
        self._client = AsyncModbusTcpClient(
            host,
            port=port,
            framer=framer,
            timeout=timeout_s,
            retries=retries,
            reconnect_delay=0.5,
            reconnect_delay_max=10,  # never pymodbus's 300 s default
        )
        self._lock = asyncio.Lock()

    async def _connected(self) -> None:
        if not self._client.connected and not await self._client.connect():
            raise GatewayUnreachable(
                f"gateway {self.name} refused or did not answer the connection"
            )

    async def read(self, device_id: int, function: int, address: int, count: int) -> list[int]:
        async with self._lock:
            await self._connected()
            try:
                if function == 3:
                    response = await self._client.read_holding_registers(
                        address, count=count, device_id=device_id
                    )
                elif function == 4:
                    response = await self._client.read_input_registers(
                        address, count=count, device_id=device_id
                    )
                else:
                    raise ModbusError(f"read function {function} is not supported")
            except ModbusException as exc:
                raise ModbusError(f"{self.name} device {device_id}: {exc}") from None
            if response.isError():
                raise ModbusError(
                    f"{self.name} device {device_id}: exception response {response}"
                )
            registers = list(response.registers)
            if len(registers) < count:
                raise ModbusError(f"{self.name} device {device_id}: short reply")
            return registers[:count]

    async def write(
        self, device_id: int, function: int, address: int, values: Sequence[int]
    ) -> None:
        async with self._lock:
            await self._connected()
            try:
                if function == 16:
                    response = await self._client.write_registers(
                        address, list(values), device_id=device_id
                    )
                elif function == 6 and len(values) == 1:
                    response = await self._client.write_register(
                        address, values[0], device_id=device_id
                    )
                else:
                    raise ModbusError(f"write function {function} is not supported")
            except ModbusException as exc:
                raise ModbusError(f"{self.name} device {device_id}: {exc}") from None
            if response.isError():
                raise ModbusError(
                    f"{self.name} device {device_id}: exception response {response}"
                )

    def close(self) -> None:
        self._client.close()
