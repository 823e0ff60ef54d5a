"""Simulated Modbus TCP gateways with Acrel DTSY1352 prepaid meters on their RS-485 bus.

The register layout is the one in `collector/profiles/acrel_dtsy1352.yaml` (holding registers,
FC03 read, FC16 write, 32-bit values high word first):

=========  =====  ==================================================================
address    regs   meaning
=========  =====  ==================================================================
0x0000     2      total energy, UINT32 × 0.01 kWh (always the sum of the four bands)
0x0002..   2 × 4  sharp, peak, flat, valley energy, UINT32 × 0.01 kWh
0x000A     1      password (UINT16)
0x000B     1      voltage, UINT16 × 0.1 V
0x000C     1      current, UINT16 × 0.01 A
0x000D     1      active power, INT16 × 0.001 kW (0 while the relay is open)
0x000E     1      reserved, 0
0x000F     1      apparent power, UINT16 × 0.001 kVA
0x0010     1      power factor, INT16 × 0.001
0x0057     2      remote control, FC16 only: [1, 1] trip, [1, 0] close
0x0300     1      status word (OURS): bit0 relay closed, bit1 power-protect, bit2 alarm,
                  bit3 overload
=========  =====  ==================================================================

Every other address answers ILLEGAL_ADDRESS; function codes other than 3 and 16 answer
ILLEGAL_FUNCTION; a device id that is not on the bus, or a meter set offline, answers 0x0B
(gateway target failed to respond) like a real Modbus TCP gateway.

Registers are live without a background task: each meter is integrated lazily up to the
simulated "now" just before its registers are returned. The load is piecewise constant over
15-minute slots (UTC-aligned, so every slot lies inside one local hour for any real time zone),
which makes the integration exact and independent of how often a meter is read.

Simulated wall time is ``start_at + (clock() - clock_at_construction) * speed``; the clock is
injectable so tests can drive time without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from types import TracebackType
from zoneinfo import ZoneInfo

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

__all__ = [
    "CONTROL_ADDRESS",
    "CONTROL_CLOSE",
    "CONTROL_TRIP",
    "DEFAULT_TZ",
    "MAX_METERS_PER_GATEWAY",
    "MEASUREMENT_ADDRESS",
    "MEASUREMENT_COUNT",
    "STATUS_ADDRESS",
    "STATUS_ALARM",
    "STATUS_OVERLOAD",
    "STATUS_POWER_PROTECT",
    "STATUS_RELAY_CLOSED",
    "TOU_SCHEDULE",
    "Band",
    "GatewaySimulator",
    "GatewaySpec",
    "SimulatedMeter",
    "band_at",
    "run_simulators",
    "serve_forever",
]

# --------------------------------------------------------------------------------------------
# Register map (must match collector/profiles/acrel_dtsy1352.yaml)
# --------------------------------------------------------------------------------------------
MEASUREMENT_ADDRESS = 0x0000
MEASUREMENT_COUNT = 17  # 0x0000..0x0010
ENERGY_TOTAL_ADDRESS = 0x0000
PASSWORD_ADDRESS = 0x000A
VOLTAGE_ADDRESS = 0x000B
CURRENT_ADDRESS = 0x000C
POWER_ADDRESS = 0x000D
RESERVED_ADDRESS = 0x000E
APPARENT_POWER_ADDRESS = 0x000F
POWER_FACTOR_ADDRESS = 0x0010
CONTROL_ADDRESS = 0x0057
CONTROL_COUNT = 2
CONTROL_TRIP = (1, 1)
CONTROL_CLOSE = (1, 0)
STATUS_ADDRESS = 0x0300

STATUS_RELAY_CLOSED = 1 << 0
STATUS_POWER_PROTECT = 1 << 1
STATUS_ALARM = 1 << 2
STATUS_OVERLOAD = 1 << 3

FC_READ_HOLDING = 3
FC_WRITE_MULTIPLE = 16

MAX_METERS_PER_GATEWAY = 32
MIN_ADDRESS = 1
MAX_ADDRESS = 247

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

SLOT_SECONDS = 900  # the load is constant within a 15-minute slot
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


class Band(StrEnum):
    """Time-of-use tariff bands, in register order (0x0002, 0x0004, 0x0006, 0x0008)."""

    SHARP = "sharp"
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


BAND_ORDER: tuple[Band, ...] = (Band.SHARP, Band.PEAK, Band.FLAT, Band.VALLEY)

_S, _P, _F, _V = Band.SHARP, Band.PEAK, Band.FLAT, Band.VALLEY
#: Band per local hour 0..23: sharp 19-21, peak 8-11 / 17-19 / 21-22, flat 11-17 / 22-23,
#: valley 23-8.
TOU_SCHEDULE: tuple[Band, ...] = (
    _V, _V, _V, _V, _V, _V, _V, _V,  # 00-08
    _P, _P, _P,  # 08-11
    _F, _F, _F, _F, _F, _F,  # 11-17
    _P, _P,  # 17-19
    _S, _S,  # 19-21
    _P,  # 21-22
    _F,  # 22-23
    _V,  # 23-24
)  # fmt: skip

#: Share of a meter's base load drawn at each local hour (a shopping mall: low at night,
#: high 10:00-22:00). Interpolated linearly at the middle of each 15-minute slot.
MALL_CURVE: tuple[float, ...] = (
    0.10, 0.08, 0.08, 0.08, 0.08, 0.10, 0.15, 0.25,  # 00-07
    0.40, 0.65, 0.90, 0.95, 1.00, 0.95, 0.90, 0.90,  # 08-15
    0.92, 0.97, 1.00, 1.00, 0.97, 0.90, 0.50, 0.20,  # 16-23
)  # fmt: skip

LOAD_NOISE = 0.05  # ± share of the load, deterministic per meter and slot
NOMINAL_VOLTAGE_V = 230.0
VOLTAGE_SPREAD_V = 4.0

# Default split of the initial energy over the bands (sharp, peak, flat; valley is the rest).
_INITIAL_SHARES = (0.10, 0.35, 0.30)


def band_at(local: datetime) -> Band:
    """The tariff band of a local (site time zone) instant."""
    return TOU_SCHEDULE[local.hour]


# --------------------------------------------------------------------------------------------
# Deterministic pseudo-randomness (stable across Python versions and processes)
# --------------------------------------------------------------------------------------------
_M64 = 0xFFFFFFFFFFFFFFFF


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _unit(*keys: int) -> float:
    """A deterministic number in [0, 1) from integer keys."""
    x = 0x243F6A8885A308D3
    for key in keys:
        x = _splitmix64(x ^ (key & _M64))
    return (x >> 11) / float(1 << 53)


def _signed16(value: int) -> int:
    """Two's complement of a signed 16-bit value as the register holds it."""
    value = max(-0x8000, min(0x7FFF, value))
    return value & _U16


def _unsigned16(value: int) -> int:
    return max(0, min(_U16, value))


# --------------------------------------------------------------------------------------------
# The meter model
# --------------------------------------------------------------------------------------------
@dataclass
class SimulatedMeter:
    """One prepaid meter: a time-of-day load, a relay and energy per tariff band.

    Energy is kept exactly as integer hundredths of a kWh per band (what the registers show)
    plus a float remainder below one hundredth; the total is the sum of the band values, so
    total == sharp + peak + flat + valley always holds on the wire.

    Time is an aware datetime; the time-of-day shaping and the tariff band use the time zone of
    the datetimes given to `advance_to` (the gateway passes its site time zone).
    """

    address: int
    base_load_kw: float
    relay_closed: bool = True
    power_protect: bool = False
    alarm: bool = False
    #: When set, the overload bit is raised while the drawn power exceeds it.
    overload_kw: float | None = None
    power_factor: float = 0.95
    password: int = 0
    #: Seeds the per-slot noise of load and voltage.
    seed: int = 0
    #: When False the gateway answers 0x0B for this meter (a silent meter on the bus).
    online: bool = True
    energy_hundredths: dict[Band, int] = field(default_factory=lambda: dict.fromkeys(BAND_ORDER, 0))
    #: Simulated instant the meter has been integrated up to (None: not started).
    sim_time: datetime | None = None
    _remainder: dict[Band, float] = field(
        init=False, repr=False, default_factory=lambda: dict.fromkeys(BAND_ORDER, 0.0)
    )

    def __post_init__(self) -> None:
        if not MIN_ADDRESS <= self.address <= MAX_ADDRESS:
            raise ValueError(f"meter address {self.address} outside {MIN_ADDRESS}..{MAX_ADDRESS}")
        if self.base_load_kw < 0:
            raise ValueError("base_load_kw must be >= 0")
        if not 0 < self.power_factor <= 1:
            raise ValueError("power_factor must be in (0, 1]")
        if not 0 <= self.password <= _U16:
            raise ValueError("password must fit a 16-bit register")
        missing = set(BAND_ORDER) - set(self.energy_hundredths)
        for band in missing:
            self.energy_hundredths[band] = 0
        if any(v < 0 for v in self.energy_hundredths.values()):
            raise ValueError("energy must be >= 0")
        if self.sim_time is not None and self.sim_time.tzinfo is None:
            raise ValueError("sim_time must be an aware datetime")

    @classmethod
    def create(
        cls,
        address: int,
        *,
        seed: int = 0,
        base_load_kw: float | None = None,
        initial_kwh: Decimal | float | int | None = None,
        relay_closed: bool = True,
        power_protect: bool = False,
        overload_kw: float | None = None,
    ) -> SimulatedMeter:
        """A meter whose unspecified properties are chosen deterministically from seed and
        address: base load 1-8 kW, power factor 0.90-0.98, initial energy 100-900 kWh split
        over the bands (10 % sharp, 35 % peak, 30 % flat, the rest valley)."""
        if base_load_kw is None:
            base_load_kw = round(1.0 + 7.0 * _unit(seed, address, 1), 2)
        power_factor = round(0.90 + 0.08 * _unit(seed, address, 2), 3)
        if initial_kwh is None:
            total = 10_000 + int(80_000 * _unit(seed, address, 3))
        else:
            total = int((Decimal(str(initial_kwh)) * 100).to_integral_value())
        if total < 0:
            raise ValueError("initial_kwh must be >= 0")
        sharp, peak, flat = (int(total * share) for share in _INITIAL_SHARES)
        energy = {
            Band.SHARP: sharp,
            Band.PEAK: peak,
            Band.FLAT: flat,
            Band.VALLEY: total - sharp - peak - flat,
        }
        return cls(
            address=address,
            base_load_kw=base_load_kw,
            relay_closed=relay_closed,
            power_protect=power_protect,
            overload_kw=overload_kw,
            power_factor=power_factor,
            seed=seed,
            energy_hundredths=energy,
        )

    # -- load model ---------------------------------------------------------------------------
    def _slot_local_start(self, slot: int, tz: tzinfo) -> datetime:
        return datetime.fromtimestamp(slot * SLOT_SECONDS, tz)

    def load_kw(self, when: datetime) -> float:
        """Power the connected load draws at `when` (whether or not the relay is closed)."""
        if when.tzinfo is None:
            raise ValueError("when must be an aware datetime")
        slot = math.floor(when.timestamp() / SLOT_SECONDS)
        return self._slot_load_kw(slot, self._slot_local_start(slot, when.tzinfo))

    def _slot_load_kw(self, slot: int, local_start: datetime) -> float:
        # Shape at the middle of the slot.
        hour = local_start.hour + (local_start.minute + SLOT_SECONDS / 60 / 2) / 60
        low = int(hour) % 24
        high = (low + 1) % 24
        frac = hour - int(hour)
        shape = MALL_CURVE[low] * (1 - frac) + MALL_CURVE[high] * frac
        noise = 1.0 + LOAD_NOISE * (2.0 * _unit(self.seed, self.address, slot, 11) - 1.0)
        return self.base_load_kw * shape * noise

    def voltage_v(self, when: datetime | None = None) -> float:
        """Supply voltage at `when` (default: the meter's current simulated time)."""
        if when is None:
            when = self.sim_time
        if when is None:
            return NOMINAL_VOLTAGE_V
        slot = math.floor(when.timestamp() / SLOT_SECONDS)
        u = _unit(self.seed, self.address, slot, 12)
        return NOMINAL_VOLTAGE_V + VOLTAGE_SPREAD_V * (2.0 * u - 1.0)

    @property
    def power_kw(self) -> float:
        """Active power now: the load while the relay is closed, else 0."""
        if not self.relay_closed or self.sim_time is None:
            return 0.0
        return self.load_kw(self.sim_time)

    # -- time ---------------------------------------------------------------------------------
    def advance_to(self, when: datetime) -> None:
        """Integrate energy up to `when` (aware). The first call only sets the starting point;
        going backwards does nothing. Energy accumulates only while the relay is closed."""
        if when.tzinfo is None:
            raise ValueError("when must be an aware datetime")
        if self.sim_time is None:
            self.sim_time = when
            return
        if when <= self.sim_time:
            return
        if self.relay_closed and self.base_load_kw > 0:
            tz = when.tzinfo
            t0 = self.sim_time.timestamp()
            t1 = when.timestamp()
            while t0 < t1:
                slot = math.floor(t0 / SLOT_SECONDS)
                seg_end = min(t1, (slot + 1) * SLOT_SECONDS)
                local = self._slot_local_start(slot, tz)
                kw = self._slot_load_kw(slot, local)
                # kW × s → hundredths of a kWh: × 100 / 3600
                self._add(band_at(local), kw * (seg_end - t0) / 36.0)
                t0 = seg_end
        self.sim_time = when

    def _add(self, band: Band, hundredths: float) -> None:
        acc = self._remainder[band] + hundredths
        whole = math.floor(acc)
        self.energy_hundredths[band] += whole
        self._remainder[band] = acc - whole

    # -- relay --------------------------------------------------------------------------------
    def trip(self, at: datetime | None = None) -> None:
        """Open the relay (after integrating up to `at`, if given)."""
        if at is not None:
            self.advance_to(at)
        self.relay_closed = False

    def close(self, at: datetime | None = None) -> None:
        """Close the relay (after integrating up to `at`, if given)."""
        if at is not None:
            self.advance_to(at)
        self.relay_closed = True

    # -- what the registers show --------------------------------------------------------------
    @property
    def total_hundredths(self) -> int:
        return sum(self.energy_hundredths[b] & _U32 for b in BAND_ORDER) & _U32

    @property
    def energy_kwh(self) -> Decimal:
        """Total energy as the registers show it (0.01 kWh resolution)."""
        return Decimal(self.total_hundredths) / 100

    def band_energy_kwh(self, band: Band) -> Decimal:
        return Decimal(self.energy_hundredths[band] & _U32) / 100

    @property
    def overloaded(self) -> bool:
        return self.overload_kw is not None and self.power_kw > self.overload_kw

    @property
    def status_word(self) -> int:
        word = 0
        if self.relay_closed:
            word |= STATUS_RELAY_CLOSED
        if self.power_protect:
            word |= STATUS_POWER_PROTECT
        if self.alarm:
            word |= STATUS_ALARM
        if self.overloaded:
            word |= STATUS_OVERLOAD
        return word

    def measurement_registers(self) -> list[int]:
        """The 17 registers 0x0000..0x0010 at the meter's current simulated time."""
        regs: list[int] = []
        for value in [self.total_hundredths] + [
            self.energy_hundredths[b] & _U32 for b in BAND_ORDER
        ]:
            regs += [(value >> 16) & _U16, value & _U16]
        volts = self.voltage_v()
        kw = self.power_kw
        if kw > 0:
            kva = kw / self.power_factor
            pf = self.power_factor
        else:
            kva = 0.0
            pf = 1.0
        amps = kva * 1000.0 / volts
        regs += [
            self.password & _U16,
            _unsigned16(round(volts * 10)),
            _unsigned16(round(amps * 100)),
            _signed16(round(kw * 1000)),
            0,
            _unsigned16(round(kva * 1000)),
            _signed16(round(pf * 1000)),
        ]
        return regs

    def registers(self) -> dict[int, int]:
        """Register address → value for the live registers (measurements and status)."""
        regs = dict(enumerate(self.measurement_registers(), start=MEASUREMENT_ADDRESS))
        regs[STATUS_ADDRESS] = self.status_word
        return regs


# --------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------
def _simdata() -> list[SimData]:
    """The register blocks of one meter; the gaps between them are invalid addresses."""
    return [
        SimData(ENERGY_TOTAL_ADDRESS, values=[0] * 5, datatype=DataType.UINT32, readonly=True),
        SimData(PASSWORD_ADDRESS, count=3, datatype=DataType.UINT16, readonly=True),
        SimData(POWER_ADDRESS, datatype=DataType.INT16, readonly=True),
        SimData(RESERVED_ADDRESS, datatype=DataType.UINT16, readonly=True),
        SimData(APPARENT_POWER_ADDRESS, datatype=DataType.UINT16, readonly=True),
        SimData(POWER_FACTOR_ADDRESS, datatype=DataType.INT16, readonly=True),
        SimData(CONTROL_ADDRESS, count=CONTROL_COUNT, datatype=DataType.REGISTERS),
        SimData(STATUS_ADDRESS, datatype=DataType.UINT16, readonly=True),
    ]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host if host and host != "::" else "0.0.0.0", 0))
        return int(sock.getsockname()[1])


class GatewaySimulator:
    """A Modbus TCP gateway with up to 32 simulated meters on its bus.

    `meters` are SimulatedMeter objects or bare addresses (then built with
    `SimulatedMeter.create(address, seed=seed)`). With port=0 a free port is chosen when the
    gateway starts; `.port` is the bound port after `start()`.
    """

    def __init__(
        self,
        meters: Iterable[SimulatedMeter | int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        start_at: datetime | None = None,
        tz: tzinfo = DEFAULT_TZ,
        seed: int = 0,
        offline_delay: float = 0.0,
    ) -> None:
        built = [
            m if isinstance(m, SimulatedMeter) else SimulatedMeter.create(m, seed=seed)
            for m in meters
        ]
        if not built:
            raise ValueError("a gateway needs at least one meter")
        if len(built) > MAX_METERS_PER_GATEWAY:
            raise ValueError(
                f"{len(built)} meters on one gateway; an RS-485 bus carries at most "
                f"{MAX_METERS_PER_GATEWAY}"
            )
        addresses = [m.address for m in built]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"duplicate meter addresses on one gateway: {sorted(addresses)}")
        if not speed > 0:
            raise ValueError("speed must be > 0")
        if not 0 <= port <= 0xFFFF:
            raise ValueError("port must be 0..65535")
        if start_at is None:
            start_at = datetime.now(UTC)
        elif start_at.tzinfo is None:
            raise ValueError("start_at must be an aware datetime")
        self.host = host
        self.requested_port = port
        self.port = port
        self.speed = float(speed)
        self.tz = tz
        self.offline_delay = offline_delay
        self._clock = clock
        self._clock0 = clock()
        self._start_at = start_at.astimezone(tz)
        self._meters: dict[int, SimulatedMeter] = {m.address: m for m in built}
        for meter in built:
            meter.advance_to(self._start_at)
        self._server: ModbusTcpServer | None = None

    # -- model access -------------------------------------------------------------------------
    @property
    def meters(self) -> list[SimulatedMeter]:
        return list(self._meters.values())

    @property
    def addresses(self) -> list[int]:
        return sorted(self._meters)

    def meter(self, address: int) -> SimulatedMeter:
        """The meter at a bus address (KeyError if none)."""
        return self._meters[address]

    def now(self) -> datetime:
        """Simulated wall time in the site time zone."""
        elapsed = (self._clock() - self._clock0) * self.speed
        return self._start_at + timedelta(seconds=elapsed)

    def sync(self) -> None:
        """Integrate every meter up to the simulated now."""
        now = self.now()
        for meter in self._meters.values():
            meter.advance_to(now)

    def trip(self, address: int) -> None:
        """Open a meter's relay now, as a remote trip command would."""
        self.meter(address).trip(at=self.now())

    def close(self, address: int) -> None:
        """Close a meter's relay now, as a remote close command would."""
        self.meter(address).close(at=self.now())

    # -- Modbus -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    def _devices(self) -> list[SimDevice]:
        devices = [
            SimDevice(id=address, simdata=_simdata(), action=self._meter_action(meter))
            for address, meter in sorted(self._meters.items())
        ]
        # Device id 0 catches every id that is not on the bus: a real gateway answers 0x0B.
        devices.append(
            SimDevice(
                id=0,
                simdata=SimData(0, count=0x10000, datatype=DataType.REGISTERS),
                action=self._absent_action,
            )
        )
        return devices

    async def _absent_action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self.offline_delay > 0:
            await asyncio.sleep(self.offline_delay)
        return ExcCodes.GATEWAY_NO_RESPONSE

    def _meter_action(self, meter: SimulatedMeter) -> SimAction:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            current_registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if not meter.online:
                return await self._absent_action(
                    function_code, start_address, address, count, current_registers, set_values
                )
            if function_code not in (FC_READ_HOLDING, FC_WRITE_MULTIPLE):
                return ExcCodes.ILLEGAL_FUNCTION
            now = self.now()
            if set_values is not None:
                # Only the control block is writable (everything else is read-only).
                if address != CONTROL_ADDRESS or count != CONTROL_COUNT:
                    return ExcCodes.ILLEGAL_VALUE
                command = tuple(int(v) for v in set_values)
                if command == CONTROL_TRIP:
                    meter.trip(at=now)
                elif command == CONTROL_CLOSE:
                    meter.close(at=now)
                else:
                    return ExcCodes.ILLEGAL_VALUE
            else:
                meter.advance_to(now)
            self._refresh(meter, start_address, current_registers)
            return None

        return action

    @staticmethod
    def _refresh(meter: SimulatedMeter, start_address: int, registers: list[int]) -> None:
        base = MEASUREMENT_ADDRESS - start_address
        registers[base : base + MEASUREMENT_COUNT] = meter.measurement_registers()
        registers[STATUS_ADDRESS - start_address] = meter.status_word

    async def start(self) -> None:
        """Bind and start serving in the running event loop."""
        if self._server is not None:
            raise RuntimeError("gateway simulator already started")
        port = self.requested_port
        if port == 0 and self.host in ("", "0.0.0.0", "::"):
            # A wildcard listener may open one socket per address family, each with its own
            # ephemeral port: pick one port up front instead.
            port = _free_port(self.host)
        server = ModbusTcpServer(context=self._devices(), address=(self.host, port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            with contextlib.suppress(Exception):
                await server.shutdown()
            raise OSError(f"simulated gateway cannot listen on {self.host}:{port}") from exc
        listener = server.transport
        sockets = getattr(listener, "sockets", None)
        if port == 0 and sockets:
            port = int(sockets[0].getsockname()[1])
        self.port = port
        self._server = server

    async def stop(self) -> None:
        """Stop serving, drop client connections and release the port."""
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()
        wait_closed = getattr(listener, "wait_closed", None)
        if wait_closed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wait_closed(), timeout=1.0)
        if self.requested_port == 0:
            self.port = 0

    async def __aenter__(self) -> GatewaySimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return (
            f"GatewaySimulator({self.host}:{self.port}, meters={self.addresses}, "
            f"speed={self.speed:g})"
        )


# --------------------------------------------------------------------------------------------
# Running several gateways
# --------------------------------------------------------------------------------------------
#: (host, port, bus addresses) of one simulated gateway.
GatewaySpec = tuple[str, int, Sequence[int]]


async def serve_forever(
    simulators: Sequence[GatewaySimulator],
    *,
    on_started: Callable[[Sequence[GatewaySimulator]], None] | None = None,
) -> None:
    """Start every simulator, call `on_started`, and serve until cancelled; always stops them
    all. If one cannot start, the ones already started are stopped and the error propagates."""
    started: list[GatewaySimulator] = []
    try:
        for simulator in simulators:
            await simulator.start()
            started.append(simulator)
        if on_started is not None:
            on_started(simulators)
        await asyncio.Event().wait()
    finally:
        for simulator in reversed(started):
            # Shielded so a second cancellation cannot leave a port bound.
            with contextlib.suppress(Exception):
                await asyncio.shield(simulator.stop())


async def run_simulators(
    specs: Sequence[GatewaySpec],
    *,
    speed: float = 1.0,
    seed: int = 0,
    start_at: datetime | None = None,
    tz: tzinfo = DEFAULT_TZ,
    clock: Callable[[], float] = time.monotonic,
    on_started: Callable[[Sequence[GatewaySimulator]], None] | None = None,
) -> None:
    """One GatewaySimulator per (host, port, addresses) spec, served until cancelled. The
    gateways share one simulated clock; gateway i uses seed `seed * 1_000_003 + i`, so meters
    with the same address on different gateways differ."""
    if start_at is None:
        start_at = datetime.now(UTC)
    simulators = [
        GatewaySimulator(
            addresses,
            host=host,
            port=port,
            speed=speed,
            clock=clock,
            start_at=start_at,
            tz=tz,
            seed=seed * 1_000_003 + index,
        )
        for index, (host, port, addresses) in enumerate(specs)
    ]
    await serve_forever(simulators, on_started=on_started)
