"""Simulated Modbus gateways with meters on their RS-485 bus, driven by the device profiles.

A meter is a physical model (`SimulatedMeter`): a time-of-day load, a relay, energy per tariff
band, voltage, current, power, power factor, frequency, three phases, power-protect, and the
prices and thresholds a dispatch wrote. A gateway (`GatewaySimulator`) serves each meter through
its device profile (`collector/profiles/*.yaml`, default `acrel_dtsy1352`): the register image is
the model's quantities encoded through the profile's fields (a field named ``voltage_v`` shows the
model's voltage, ``energy_peak_kwh`` the peak band, ``status`` the status word built from the
profile's ``status_bits``), so the collector's decode pipeline round-trips it.

What the gateway answers, per meter:

* FC03 / FC04 reads of registers inside the profile's read blocks for that function code (gap
  registers inside a coalesced block read 0); FC03 also reads the control registers (the last
  switch command written, the prices and thresholds in force). Any other address answers
  ILLEGAL_ADDRESS; a read function the profile does not use answers ILLEGAL_FUNCTION.
* Writes that match a control of the profile exactly: a switch control's values (trip, close,
  protect_on, protect_off) or a block control's full register range (price, settings), decoded
  through the profile and applied to the model. A wrong value or a partial write of a control
  range answers ILLEGAL_VALUE, a write elsewhere ILLEGAL_ADDRESS, a write function no control uses
  ILLEGAL_FUNCTION. Power-protect is stored and reported only: as in installations where it is a
  platform flag, it does not stop a trip.
* A device id that is not on the bus, or a meter with ``online = False``, answers 0x0B (gateway
  target failed to respond) after ``offline_delay`` seconds, like a Modbus TCP gateway; a
  transparent serial server (``framer="rtu"``) cannot answer for a meter, so there they are silent.

Faults, per meter (``meter.fault = Fault(...)``, ``meter.set_fault(...)``, ``meter.clear_fault()``),
apply to every request that reaches the meter's registers (reads outside the profile's address
span are refused by the server first):

* ``silent``: without ``exception_code`` the request is dropped and never answered, so a client
  times out (and, over RTU, the bus stays quiet); with ``exception_code`` (e.g. 0x0B) the gateway
  answers that code after ``delay_s``, like a gateway whose own bus timeout expired.
* ``slow``: the correct answer after ``delay_s`` (longer than the client's timeout, a late answer
  arrives after the client gave up: over TCP it is discarded by transaction id, over RTU it may be
  taken as the answer to the next request).
* ``exception``: exception ``exception_code`` (default 0x04, device failure) after ``delay_s``.
* ``garbage``: reads answer after ``delay_s`` with every register set to ``garbage`` (default
  0xFFFF: 42,949,672.95 kWh, 6553.5 V, a float32 NaN); writes still work.

Per gateway, ``await sim.go_down()`` closes the listener and every connection (connections are
refused) and ``await sim.come_back()`` listens again on the same port.

Registers are live without a background task: each meter is integrated lazily up to the simulated
"now" just before its registers are returned. The load is piecewise constant over 15-minute slots
(UTC-aligned, so every slot lies inside one local hour for any real time zone), which makes the
integration exact and independent of how often a meter is read. Simulated wall time is
``start_at + (clock() - clock_at_construction) * speed``; the clock is injectable so tests can
drive time without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from types import TracebackType
from zoneinfo import ZoneInfo

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimAction, SimData, SimDevice

from collector.profiles import Control, DecodeError, DeviceProfile, load_profile

__all__ = [
    "CONTROL_ADDRESS",
    "CONTROL_CLOSE",
    "CONTROL_TRIP",
    "DEFAULT_PROFILE",
    "DEFAULT_TZ",
    "FAULT_KINDS",
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
    "Fault",
    "GatewaySimulator",
    "GatewaySpec",
    "SimulatedMeter",
    "band_at",
    "run_simulators",
    "serve_forever",
]

DEFAULT_PROFILE = "acrel_dtsy1352"

# The default profile's layout (collector/profiles/acrel_dtsy1352.yaml; a test checks they agree).
MEASUREMENT_ADDRESS = 0x0000
MEASUREMENT_COUNT = 17  # 0x0000..0x0010, one read
CONTROL_ADDRESS = 0x0057
CONTROL_TRIP = (1, 1)
CONTROL_CLOSE = (1, 0)
STATUS_ADDRESS = 0x0300

STATUS_RELAY_CLOSED = 1 << 0
STATUS_POWER_PROTECT = 1 << 1
STATUS_ALARM = 1 << 2
STATUS_OVERLOAD = 1 << 3

MAX_METERS_PER_GATEWAY = 32
MIN_ADDRESS = 1
MAX_ADDRESS = 247

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")

SLOT_SECONDS = 900  # the load is constant within a 15-minute slot
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
_WRITE_FUNCTIONS = (6, 16)


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
PHASE_VOLTAGE_SPREAD_V = 1.5  # ± of each phase around the meter's voltage
PHASE_SHARE_SPREAD = 0.05  # ± of each phase's share of the load around 1/3
NOMINAL_FREQUENCY_HZ = 50.0
FREQUENCY_SPREAD_HZ = 0.05

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


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------
FAULT_KINDS = ("silent", "slow", "exception", "garbage")


@dataclass(frozen=True)
class Fault:
    """How a meter misbehaves (see the module documentation for the exact semantics)."""

    kind: str
    delay_s: float = 0.0
    #: silent: None drops the request, a code answers it after delay_s; exception: default 0x04.
    exception_code: int | None = None
    #: garbage: the value of every register read.
    garbage: int = 0xFFFF

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if not self.delay_s >= 0:
            raise ValueError("delay_s must be >= 0")
        if self.exception_code is not None:
            if self.kind not in ("silent", "exception"):
                raise ValueError(f"a {self.kind} fault answers no exception code")
            ExcCodes(self.exception_code)  # ValueError for a code Modbus does not define
        if not 0 <= self.garbage <= _U16:
            raise ValueError("garbage must fit a 16-bit register")

    @property
    def answer(self) -> ExcCodes | None:
        """The exception code answered, or None (a normal answer, or none at all)."""
        if self.kind == "exception":
            return ExcCodes(self.exception_code or ExcCodes.DEVICE_FAILURE)
        if self.kind == "silent" and self.exception_code is not None:
            return ExcCodes(self.exception_code)
        return None

    @property
    def drops(self) -> bool:
        return self.kind == "silent" and self.exception_code is None


# --------------------------------------------------------------------------------------------
# The meter model
# --------------------------------------------------------------------------------------------
Quantity = Decimal | float | int


@dataclass
class SimulatedMeter:
    """One meter: a time-of-day load, a relay and energy per tariff band.

    Energy is kept exactly as integer hundredths of a kWh per band plus a float remainder below
    one hundredth; the total is the sum of the band values, so total == sharp + peak + flat +
    valley always holds on the wire.

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
    #: Device profile key (or profile) to serve this meter with; None: the gateway's.
    profile: str | DeviceProfile | None = None
    #: How the meter misbehaves on the bus; None: it answers normally.
    fault: Fault | None = None
    #: Band prices written by a price dispatch (per kWh).
    prices: dict[str, Decimal] = field(default_factory=dict)
    #: Values written by a settings dispatch (e.g. alarm1_amount; overload_kw also sets
    #: overload_kw).
    settings: dict[str, Decimal] = field(default_factory=dict)
    _remainder: dict[Band, float] = field(
        init=False, repr=False, default_factory=lambda: dict.fromkeys(BAND_ORDER, 0.0)
    )
    #: Per-slot values already drawn: (kind, slot, ...) -> value. Reads within one slot (most of
    #: them) reuse them instead of hashing again.
    _memo: dict[tuple[object, ...], float] = field(
        init=False, repr=False, compare=False, default_factory=dict
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
        profile: str | DeviceProfile | None = None,
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
            profile=profile,
        )

    # -- faults -------------------------------------------------------------------------------
    def set_fault(
        self,
        kind: str,
        *,
        delay_s: float = 0.0,
        exception_code: int | None = None,
        garbage: int = 0xFFFF,
    ) -> Fault:
        """Make the meter misbehave from the next request on (see `Fault`)."""
        self.fault = Fault(kind, delay_s=delay_s, exception_code=exception_code, garbage=garbage)
        return self.fault

    def clear_fault(self) -> None:
        self.fault = None

    # -- load model ---------------------------------------------------------------------------
    def _slot_local_start(self, slot: int, tz: tzinfo) -> datetime:
        return datetime.fromtimestamp(slot * SLOT_SECONDS, tz)

    def _memoized(self, key: tuple[object, ...], compute: Callable[[], float]) -> float:
        value = self._memo.get(key)
        if value is None:
            if len(self._memo) > 64:  # only the current slot's values are wanted again
                self._memo.clear()
            value = self._memo[key] = compute()
        return value

    def load_kw(self, when: datetime) -> float:
        """Power the connected load draws at `when` (whether or not the relay is closed)."""
        tz = when.tzinfo
        if tz is None:
            raise ValueError("when must be an aware datetime")
        slot = math.floor(when.timestamp() / SLOT_SECONDS)
        return self._memoized(
            ("load", slot, tz, self.seed, self.address, self.base_load_kw),
            lambda: self._slot_load_kw(slot, self._slot_local_start(slot, tz)),
        )

    def _slot_load_kw(self, slot: int, local_start: datetime) -> float:
        # Shape at the middle of the slot.
        hour = local_start.hour + (local_start.minute + SLOT_SECONDS / 60 / 2) / 60
        low = int(hour) % 24
        high = (low + 1) % 24
        frac = hour - int(hour)
        shape = MALL_CURVE[low] * (1 - frac) + MALL_CURVE[high] * frac
        noise = 1.0 + LOAD_NOISE * (2.0 * _unit(self.seed, self.address, slot, 11) - 1.0)
        return self.base_load_kw * shape * noise

    def _slot(self, when: datetime | None) -> int | None:
        if when is None:
            when = self.sim_time
        return None if when is None else math.floor(when.timestamp() / SLOT_SECONDS)

    def voltage_v(self, when: datetime | None = None) -> float:
        """Supply voltage at `when` (default: the meter's current simulated time)."""
        slot = self._slot(when)
        if slot is None:
            return NOMINAL_VOLTAGE_V
        return NOMINAL_VOLTAGE_V + VOLTAGE_SPREAD_V * self._spread(slot, 12)

    def _spread(self, slot: int, key: int) -> float:
        """A deterministic number in [-1, 1) per meter, slot and quantity."""
        seed, address = self.seed, self.address
        return self._memoized(
            ("spread", slot, key, seed, address),
            lambda: 2.0 * _unit(seed, address, slot, key) - 1.0,
        )

    def phase_voltage_v(self, phase: int, when: datetime | None = None) -> float:
        """Voltage of phase 1, 2 or 3: the meter's voltage ± a small per-phase offset."""
        slot = self._slot(when)
        offset = 0.0 if slot is None else self._spread(slot, 20 + phase)
        return self.voltage_v(when) + PHASE_VOLTAGE_SPREAD_V * offset

    @property
    def phase_shares(self) -> tuple[float, float, float]:
        """Share of the load on each phase (fixed per meter, summing to 1)."""
        one, two = (
            1 / 3 + PHASE_SHARE_SPREAD * (2.0 * _unit(self.seed, self.address, 40 + p) - 1.0)
            for p in (1, 2)
        )
        return (one, two, 1.0 - one - two)

    def frequency_hz(self, when: datetime | None = None) -> float:
        slot = self._slot(when)
        if slot is None:
            return NOMINAL_FREQUENCY_HZ
        return NOMINAL_FREQUENCY_HZ + FREQUENCY_SPREAD_HZ * self._spread(slot, 30)

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
    def flags(self) -> dict[str, bool]:
        """The states a status word can report, by the status bit names profiles use."""
        return {
            "relay_closed": self.relay_closed,
            "power_protect": self.power_protect,
            "alarm": self.alarm,
            "overload": self.overloaded,
        }

    def status_word(self, bits: Mapping[str, int] | None = None) -> int:
        """The status word with the given bit positions (default: the DTSY1352 profile's)."""
        if bits is None:
            bits = {"relay_closed": 0, "power_protect": 1, "alarm": 2, "overload": 3}
        flags = self.flags
        return sum(1 << bit for name, bit in bits.items() if flags.get(name))

    def quantities(self, *, phases: bool = True) -> dict[str, Quantity]:
        """Every quantity a profile field may show, by field name, at the simulated time.
        Energy is exact (Decimal, 0.01 kWh); the rest are floats. The load sits on one phase for
        the single-phase names and is split over three phases for the _l1/_l2/_l3 names (left
        out unless `phases`)."""
        volts = self.voltage_v()
        kw = self.power_kw
        pf = self.power_factor if kw > 0 else 1.0
        kva = kw / pf
        values: dict[str, Quantity] = {
            "energy_kwh": self.energy_kwh,
            "voltage_v": volts,
            "current_a": kva * 1000.0 / volts,
            "power_kw": kw,
            "apparent_power_kva": kva,
            "reactive_power_kvar": math.sqrt(max(kva * kva - kw * kw, 0.0)),
            "power_factor": pf,
            "frequency_hz": self.frequency_hz(),
            "password": self.password,
            "ct_ratio": 1,
        }
        for band in BAND_ORDER:
            values[f"energy_{band}_kwh"] = self.band_energy_kwh(band)
        if not phases:
            return values
        for phase, share in enumerate(self.phase_shares, start=1):
            phase_volts = self.phase_voltage_v(phase)
            values[f"voltage_l{phase}_v"] = phase_volts
            values[f"power_l{phase}_kw"] = kw * share
            values[f"current_l{phase}_a"] = kw * share / pf * 1000.0 / phase_volts
        return values

    def apply_settings(self, values: Mapping[str, Decimal]) -> None:
        """Store dispatched settings; overload_kw also becomes the overload limit (0: none)."""
        self.settings.update(values)
        if "overload_kw" in values:
            limit = values["overload_kw"]
            self.overload_kw = float(limit) if limit > 0 else None


# --------------------------------------------------------------------------------------------
# A profile as the gateway serves it
# --------------------------------------------------------------------------------------------
class _Layout:
    """What a profile makes readable and writable, precomputed once per profile."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile
        self.fields = {
            fc: [f for f in profile.fields.values() if f.function == fc] for fc in (3, 4)
        }
        self.readable: dict[int, set[int]] = {}
        for block in profile.blocks:
            self.readable.setdefault(block.function, set()).update(range(block.address, block.end))
        # One entry per control register range (trip and close share theirs).
        self.ranges: dict[tuple[int, int], list[tuple[str, Control]]] = {}
        for kind, control in profile.controls.items():
            self.ranges.setdefault((control.address, control.count), []).append((kind, control))
            self.readable.setdefault(3, set()).update(range(control.address, control.end))
        self.write_functions = {c.function for c in profile.controls.values()}
        status = profile.readback.field if profile.readback else "status"
        self.status_fields = {status, "status"} & set(profile.fields)
        self.phases = any(re.search(r"_l[123]_", name) for name in profile.fields)
        addresses = set().union(*self.readable.values())
        self.low = min(addresses)
        self.high = max(addresses) + 1


@dataclass
class _MeterState:
    """A meter as its gateway serves it: the model, its layout, the switch registers written."""

    meter: SimulatedMeter
    layout: _Layout
    written: dict[int, int] = field(default_factory=dict)


def _framer(framer: str | FramerType) -> FramerType:
    names = {
        "tcp": FramerType.SOCKET,
        "socket": FramerType.SOCKET,
        "rtu": FramerType.RTU,
        "rtu-over-tcp": FramerType.RTU,
    }
    if isinstance(framer, FramerType) and framer in names.values():
        return framer
    if isinstance(framer, str) and framer in names:
        return names[framer]
    raise ValueError(f"framer {framer!r}: expected 'tcp' or 'rtu'")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host if host and host != "::" else "0.0.0.0", 0))
        return int(sock.getsockname()[1])


def _place(out: list[int], address: int, start: int, words: Sequence[int]) -> None:
    """Copy `words` (registers from `start`) into `out` (registers from `address`) where they
    overlap."""
    for i, word in enumerate(words):
        offset = start + i - address
        if 0 <= offset < len(out):
            out[offset] = word


class _Drop(NoSuchIdException):
    """Raised in a device action so the server sends no answer at all (the server is built with
    ignore_missing_devices, and device id 0 catches every id that is not on the bus)."""


# --------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------
class GatewaySimulator:
    """A Modbus gateway with up to 32 simulated meters on its bus.

    `meters` are SimulatedMeter objects or bare addresses (then built with
    `SimulatedMeter.create(address, seed=seed)`). Each meter is served through its own `profile`,
    else the gateway's `profile` (a key of collector/profiles or a DeviceProfile). `framer` is
    "tcp" (a Modbus TCP gateway, MBAP) or "rtu" (a transparent serial server: raw RTU frames
    with CRC over TCP). With port=0 a free port is chosen when the gateway starts; `.port` is
    the bound port after `start()`.
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
        profile: str | DeviceProfile = DEFAULT_PROFILE,
        framer: str | FramerType = "tcp",
        serial_device: str | None = None,
        baudrate: int = 9600,
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
        self.framer = _framer(framer)
        # A bus on a serial line (e.g. one end of a pseudo-terminal pair) instead of a TCP port.
        self.serial_device = serial_device
        self.baudrate = baudrate
        self._clock = clock
        self._clock0 = clock()
        self._start_at = start_at.astimezone(tz)
        layouts: dict[int, _Layout] = {}

        def layout(spec: str | DeviceProfile) -> _Layout:
            resolved = load_profile(spec) if isinstance(spec, str) else spec
            if id(resolved) not in layouts:
                layouts[id(resolved)] = _Layout(resolved)
            return layouts[id(resolved)]

        self._meters: dict[int, _MeterState] = {
            m.address: _MeterState(m, layout(m.profile or profile)) for m in built
        }
        for meter in built:
            meter.advance_to(self._start_at)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._down = False

    # -- model access -------------------------------------------------------------------------
    @property
    def meters(self) -> list[SimulatedMeter]:
        return [state.meter for state in self._meters.values()]

    @property
    def addresses(self) -> list[int]:
        return sorted(self._meters)

    def meter(self, address: int) -> SimulatedMeter:
        """The meter at a bus address (KeyError if none)."""
        return self._meters[address].meter

    def profile_of(self, address: int) -> DeviceProfile:
        """The profile a meter is served with."""
        return self._meters[address].layout.profile

    def now(self) -> datetime:
        """Simulated wall time in the site time zone."""
        elapsed = (self._clock() - self._clock0) * self.speed
        return self._start_at + timedelta(seconds=elapsed)

    def sync(self) -> None:
        """Integrate every meter up to the simulated now."""
        now = self.now()
        for state in self._meters.values():
            state.meter.advance_to(now)

    def trip(self, address: int) -> None:
        """Open a meter's relay now, as a remote trip command would."""
        self.meter(address).trip(at=self.now())

    def close(self, address: int) -> None:
        """Close a meter's relay now, as a remote close command would."""
        self.meter(address).close(at=self.now())

    # -- the register image -------------------------------------------------------------------
    def _quantities(self, state: _MeterState, names: set[str]) -> dict[str, Quantity]:
        layout = state.layout
        status_only = names <= layout.status_fields
        values = {} if status_only else state.meter.quantities(phases=layout.phases)
        if names & layout.status_fields:
            status = state.meter.status_word(layout.profile.status_bits)
            values.update(dict.fromkeys(layout.status_fields, status))
        return values

    def _control_image(self, state: _MeterState, kind: str, control: Control) -> list[int]:
        if control.encoding is None:
            return [state.written.get(a, 0) for a in range(control.address, control.end)]
        meter = state.meter
        registers: list[int] = []
        for item in control.items:
            value: Quantity = 0
            if kind == "price":
                value = meter.prices.get(item, 0)
            elif item == "overload_kw" and meter.overload_kw is not None:
                value = meter.overload_kw
            else:
                value = meter.settings.get(item, 0)
            registers += control.encoding.encode(value)
        return registers

    def _image(self, state: _MeterState, function: int, address: int, count: int) -> list[int]:
        out = [0] * count
        end = address + count
        shown = [
            fld for fld in state.layout.fields.get(function, ())
            if fld.address < end and address < fld.end
        ]  # fmt: skip
        if shown:
            values = self._quantities(state, {fld.name for fld in shown})
            for fld in shown:
                _place(out, address, fld.address, fld.encode(values.get(fld.name, 0)))
        if function == 3:
            for (start, size), controls in state.layout.ranges.items():
                if start < end and address < start + size:
                    kind, control = controls[0]
                    _place(out, address, start, self._control_image(state, kind, control))
        return out

    def _write(
        self, state: _MeterState, function: int, address: int, values: list[int]
    ) -> ExcCodes | None:
        layout, meter = state.layout, state.meter
        if function not in layout.write_functions:
            return ExcCodes.ILLEGAL_FUNCTION
        end = address + len(values)
        touched = [
            controls
            for (start, size), controls in layout.ranges.items()
            if start < end and address < start + size
        ]
        if not touched:
            return ExcCodes.ILLEGAL_ADDRESS
        candidates = [
            (kind, control)
            for controls in touched
            for kind, control in controls
            if (control.function, control.address, control.count)
            == (function, address, len(values))
        ]
        now = self.now()
        for kind, control in candidates:
            if control.encoding is not None:
                try:
                    decoded = control.decode(values)
                except DecodeError:
                    return ExcCodes.ILLEGAL_VALUE
                if kind == "price":
                    meter.prices.update(decoded)
                else:
                    meter.apply_settings(decoded)
                return None
            if tuple(values) == control.values:
                if kind == "trip":
                    meter.trip(at=now)
                elif kind == "close":
                    meter.close(at=now)
                elif kind in ("protect_on", "protect_off"):
                    meter.advance_to(now)
                    meter.power_protect = kind == "protect_on"
                state.written.update(zip(range(address, end), values, strict=True))
                return None
        return ExcCodes.ILLEGAL_VALUE

    # -- Modbus -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def down(self) -> bool:
        """True between go_down() and come_back()."""
        return self._down

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    def _devices(self) -> list[SimDevice]:
        devices = [
            SimDevice(
                id=address,
                simdata=SimData(
                    state.layout.low,
                    count=state.layout.high - state.layout.low,
                    datatype=DataType.REGISTERS,
                ),
                action=self._meter_action(state),
            )
            for address, state in sorted(self._meters.items())
        ]
        # Device id 0 catches every id that is not on the bus.
        devices.append(
            SimDevice(
                id=0,
                simdata=SimData(0, count=0x10000, datatype=DataType.REGISTERS),
                action=self._absent_action,
            )
        )
        return devices

    async def _no_meter(self) -> ExcCodes:
        """A meter that does not answer: a Modbus TCP gateway answers 0x0B after its own
        timeout; a transparent serial server has nothing to say."""
        if self.framer == FramerType.RTU:
            raise _Drop("no meter answers at this address")
        if self.offline_delay > 0:
            await asyncio.sleep(self.offline_delay)
        return ExcCodes.GATEWAY_NO_RESPONSE

    async def _absent_action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        return await self._no_meter()

    def _meter_action(self, state: _MeterState) -> SimAction:
        meter, layout = state.meter, state.layout

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            current_registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if set_values is None and function_code in _WRITE_FUNCTIONS:
                return None  # the server reading back what an FC06 write just stored
            if not meter.online:
                return await self._no_meter()
            fault = meter.fault
            if fault is not None:
                if fault.drops:
                    raise _Drop(f"meter {meter.address} is silent")
                if fault.delay_s > 0:
                    await asyncio.sleep(fault.delay_s)
                if fault.answer is not None:
                    return fault.answer
            if set_values is not None:
                return self._write(state, function_code, address, [int(v) for v in set_values])
            readable = layout.readable.get(function_code)
            if readable is None:
                return ExcCodes.ILLEGAL_FUNCTION
            if any(a not in readable for a in range(address, address + count)):
                return ExcCodes.ILLEGAL_ADDRESS
            meter.advance_to(self.now())
            if fault is not None and fault.kind == "garbage":
                image = [fault.garbage] * count
            else:
                image = self._image(state, function_code, address, count)
            offset = address - start_address
            current_registers[offset : offset + count] = image
            return None

        return action

    async def _listen(self, port: int) -> None:
        if self.serial_device is not None:
            serial = ModbusSerialServer(
                context=self._devices(), framer=FramerType.RTU, port=self.serial_device,
                baudrate=self.baudrate, ignore_missing_devices=True,
            )
            await serial.serve_forever(background=True)
            self._server = serial
            return
        server = ModbusTcpServer(
            context=self._devices(),
            address=(self.host, port),
            framer=self.framer,
            ignore_missing_devices=True,  # lets a silent meter drop a request (see _Drop)
        )
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

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()
        wait_closed = getattr(listener, "wait_closed", None)
        if wait_closed is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wait_closed(), timeout=1.0)

    async def start(self) -> None:
        """Bind and start serving in the running event loop."""
        if self._server is not None or self._down:
            raise RuntimeError("gateway simulator already started")
        port = self.requested_port
        if port == 0 and self.host in ("", "0.0.0.0", "::"):
            # A wildcard listener may open one socket per address family, each with its own
            # ephemeral port: pick one port up front instead.
            port = _free_port(self.host)
        await self._listen(port)

    async def go_down(self) -> None:
        """The gateway fails: drop every connection and refuse new ones, keeping the port."""
        if self._server is None:
            raise RuntimeError("gateway simulator is not running")
        await self._close()
        self._down = True

    async def come_back(self) -> None:
        """The gateway recovers: listen again on the same port (OSError if it was taken)."""
        if not self._down:
            raise RuntimeError("gateway simulator is not down")
        await self._listen(self.port)
        self._down = False

    async def stop(self) -> None:
        """Stop serving, drop client connections and release the port."""
        await self._close()
        self._down = False
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
        framer = "rtu" if self.framer == FramerType.RTU else "tcp"
        return (
            f"GatewaySimulator({self.host}:{self.port}, {framer}, meters={self.addresses}, "
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
    profile: str | DeviceProfile = DEFAULT_PROFILE,
    framer: str | FramerType = "tcp",
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
            profile=profile,
            framer=framer,
        )
        for index, (host, port, addresses) in enumerate(specs)
    ]
    await serve_forever(simulators, on_started=on_started)
