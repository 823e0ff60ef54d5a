"""The collector: one task and one client per gateway, reads on interval slots, commands first.

Gateways run in parallel; within a gateway every request is sequential, because the RS-485 bus
behind it carries one request at a time. Reads happen once per interval slot on the wall clock
(a 30-minute interval reads at :00 and :30), and every reading of a slot carries the slot's
start as its time. Readings from all gateways flow into one sink task that writes them to the
time-series store and bills them in one database transaction per batch, so the relational
database sees one writer however many gateways there are.

A meter that does not answer costs its bus at most one timeout per cycle: a failed read is not
retried within the cycle, the meter's other blocks are skipped, and a meter that keeps failing
is only probed every few cycles. A gateway that refuses connections is tried again with a
capped back-off. A meter with no good read for `lost_after` slots, and a gateway unreachable
for as many, are marked lost with the time contact was lost; they are marked back when they
answer.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, selectinload

from billing import alarms, notices
from billing.charging import charge_readings
from billing.policy import BillingPolicy
from collector.archive import archive_readings
from collector.modbus import GatewayClient, GatewayUnreachable, Link, ModbusError, NoAnswer
from collector.profiles import DecodeError, DeviceProfile, load_all_profiles, load_profile
from collector.readings import MeterReading, ReadingStore, StoreUnavailable
from collector.spool import SpoolingStore
from schema import measurements as m
from schema.db import unit_of_work
from schema.models import Alarm, Command, Floor, Gateway, Meter, Unit

log = logging.getLogger(__name__)
RETRY_COMMAND_AFTER_S = 2.0
MAX_PROBE_EVERY = 4  # a meter that keeps failing is still tried at least every 4th cycle
RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0
STORED_QUANTUM = Decimal("0.0001")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class MeterTarget:
    meter_id: int
    serial: str
    bus_address: int
    profile: DeviceProfile
    tags: dict[str, str]


@dataclass(frozen=True)
class GatewayTarget:
    gateway_id: int
    name: str
    link: Link
    interval_s: float | None
    meters: tuple[MeterTarget, ...]


@dataclass(frozen=True)
class CommandJob:
    command_id: int
    meter_id: int
    kind: str
    expires_at: datetime
    payload: dict[str, str] | None = None


@dataclass
class Batch:
    readings: list[MeterReading] = field(default_factory=list)
    lost: dict[int, datetime] = field(default_factory=dict)  # meter id -> last good contact
    gateways_lost: dict[int, datetime] = field(default_factory=dict)
    gateways_seen: dict[int, datetime] = field(default_factory=dict)


@dataclass
class Health:
    """Contact state of a meter or gateway, kept in memory by its gateway task."""

    failures: int = 0  # consecutive failed cycles
    since: datetime | None = None  # when contact was last good (or first failed)
    skip: int = 0  # cycles still to skip before the next probe

    def failed(self, at: datetime) -> int:
        if self.failures == 0:
            self.since = at
        self.failures += 1
        self.skip = min(2 ** (self.failures - 1), MAX_PROBE_EVERY) - 1
        return self.failures

    def recovered(self) -> bool:
        was_failing = self.failures > 0
        self.failures, self.skip, self.since = 0, 0, None
        return was_failing


def load_site(session: Session) -> list[GatewayTarget]:
    gateways = session.scalars(
        select(Gateway)
        .where(Gateway.enabled.is_(True))
        .options(
            selectinload(Gateway.meters)
            .selectinload(Meter.unit)
            .selectinload(Unit.floor)
            .selectinload(Floor.building)
        )
        .order_by(Gateway.id)
    ).all()
    targets = []
    for gw in gateways:
        meters = []
        for meter in gw.meters:
            tags = {m.TAG_GATEWAY: gw.name}
            if meter.unit is not None:
                tags[m.TAG_UNIT] = meter.unit.number
                tags[m.TAG_FLOOR] = meter.unit.floor.name
                tags[m.TAG_BUILDING] = meter.unit.floor.building.name
            meters.append(
                MeterTarget(meter.id, meter.serial, meter.bus_address,
                            load_profile(meter.profile), tags)
            )
        link = Link(transport=gw.transport, host=gw.host, port=gw.port,
                    baudrate=gw.baudrate, timeout_s=float(gw.timeout_s), gap_s=gw.gap_ms / 1000,
                    retries=gw.retries)
        targets.append(
            GatewayTarget(
                gateway_id=gw.id, name=gw.name, link=link,
                interval_s=float(gw.interval_s) if gw.interval_s else None,
                meters=tuple(meters),
            )
        )
    return targets


_meters = cast(Table, Meter.__table__)
_gateways = cast(Table, Gateway.__table__)
# One statement each, executed for many rows at once (executemany): plain values, no ORM objects.
_METER_READ = (
    update(_meters)
    .where(_meters.c.id == bindparam("b_id"))
    .values(
        last_reading_at=bindparam("b_at"),
        last_energy_kwh=bindparam("b_energy"),
        last_power_kw=bindparam("b_power"),
        lost_since=None,
        # A profile without a relay read-back leaves the relay as it was.
        relay=func.coalesce(bindparam("b_relay", type_=_meters.c.relay.type), _meters.c.relay),
    )
)
_METER_LOST = (
    update(_meters)
    .where(_meters.c.id == bindparam("b_id"), _meters.c.lost_since.is_(None))
    .values(lost_since=bindparam("b_since"))
)
_GATEWAY_SEEN = (
    update(_gateways)
    .where(_gateways.c.id == bindparam("b_id"))
    .values(last_contact_at=bindparam("b_at"), lost_since=None)
)
_GATEWAY_LOST = (
    update(_gateways)
    .where(_gateways.c.id == bindparam("b_id"), _gateways.c.lost_since.is_(None))
    .values(lost_since=bindparam("b_since"))
)


def record_contact(session: Session, batch: Batch) -> None:
    """Each read meter's last reading and relay; meters and gateways lost (since when, unless
    already marked) and found again. A batch may hold several cycles: a meter's last reading
    wins, and a reading clears a loss reported in the same batch.

    Bulk UPDATEs in meter and gateway id order (the order every batch locks them in), a
    statement per kind executed for all rows at once: at 10,000 meters, loading and flushing
    ORM objects for this took a second."""
    by_id = {r.meter_id: r for r in batch.readings}
    if by_id:
        session.execute(_METER_READ, [
            {"b_id": meter_id, "b_at": r.at, "b_energy": r.energy_kwh, "b_power": r.power_kw,
             "b_relay": None if r.relay_closed is None else
             "closed" if r.relay_closed else "open"}
            for meter_id, r in sorted(by_id.items())
        ])
    lost = sorted((meter_id, since) for meter_id, since in batch.lost.items()
                  if meter_id not in by_id)
    if lost:
        session.execute(_METER_LOST, [{"b_id": i, "b_since": since} for i, since in lost])
    if batch.gateways_seen:
        session.execute(_GATEWAY_SEEN, [
            {"b_id": i, "b_at": at} for i, at in sorted(batch.gateways_seen.items())
        ])
    gateways_lost = sorted((gateway_id, since) for gateway_id, since
                           in batch.gateways_lost.items() if gateway_id not in batch.gateways_seen)
    if gateways_lost:
        session.execute(_GATEWAY_LOST, [
            {"b_id": i, "b_since": since} for i, since in gateways_lost
        ])


class Collector:
    def __init__(
        self,
        database_url: str,
        store: ReadingStore,
        *,
        interval_s: float,
        policy: BillingPolicy,
        command_poll_s: float = 1.0,
        lost_after: int = 3,
        archive_keep_days: int | None = None,
        maintenance_every_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database_url = database_url
        self.store = store
        self.interval_s = interval_s
        self.policy = policy
        self.command_poll_s = command_poll_s
        self.lost_after = lost_after
        self.archive_keep_days = archive_keep_days
        self.maintenance_every_s = maintenance_every_s
        self.clock = clock
        self.cycles = 0
        self._sink: asyncio.Queue[Batch] = asyncio.Queue()
        self._commands: dict[int, asyncio.Queue[CommandJob]] = {}
        self._gateway_of_meter: dict[int, int] = {}
        self._meters: dict[int, MeterTarget] = {}
        self._in_flight: set[int] = set()
        self._not_before: dict[int, float] = {}
        self.overload = alarms.OverloadWatch(policy.overload_sustain)

    async def run(self) -> None:
        """Collect until cancelled."""
        targets = await asyncio.to_thread(self._load_site)
        log.info("collecting %d meters on %d gateways", len(self._meters), len(targets))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._sink_loop())
            group.create_task(self._command_loop())
            group.create_task(self._maintenance_loop())
            for target in targets:
                group.create_task(GatewayTask(self, target).run())

    def _load_site(self) -> list[GatewayTarget]:
        load_all_profiles()  # a broken profile file stops the collector at start, named
        with unit_of_work(self.database_url) as session:
            targets = load_site(session)
        for target in targets:
            self._commands[target.gateway_id] = asyncio.Queue()
            for meter in target.meters:
                self._gateway_of_meter[meter.meter_id] = target.gateway_id
                self._meters[meter.meter_id] = meter
        return targets

    # --- storing and billing -------------------------------------------------------------

    async def _sink_loop(self) -> None:
        while True:
            batch = await self._sink.get()
            while not self._sink.empty():
                more = self._sink.get_nowait()
                batch.readings += more.readings
                batch.lost.update(more.lost)
                batch.gateways_lost.update(more.gateways_lost)
                batch.gateways_seen.update(more.gateways_seen)
            try:
                await asyncio.to_thread(self._persist, batch)
            except Exception:
                log.exception("could not store and bill %d readings", len(batch.readings))

    def _persist(self, batch: Batch) -> None:
        if batch.readings:
            try:
                self.store.write(batch.readings)
            except Exception as exc:  # billing must not wait for the time-series store
                log.error("time-series store: %s", exc)
        now = self.clock()
        with unit_of_work(self.database_url) as session:
            record_contact(session, batch)
            alarms.contact(session, at=now, policy=self.policy)
            thresholds = {
                meter_id: kw
                for meter_id, kw in session.execute(
                    select(Meter.id, Meter.overload_kw).where(Meter.overload_kw.is_not(None))
                )
                if kw is not None
            }
            self.overload.check(
                session, batch.readings, thresholds=thresholds, default_kw=self.policy.overload_kw
            )
            charge_readings(session, batch.readings, policy=self.policy, now=now)

    async def _maintenance_loop(self) -> None:
        """Deliver spooled readings and archive old ones, off the billing path."""
        archived_on = None
        backlog = 0
        while True:
            await asyncio.sleep(self.maintenance_every_s)
            try:
                if isinstance(self.store, SpoolingStore):
                    await asyncio.to_thread(self.store.flush)
                    pending = self.store.pending()
                    if pending != backlog:
                        level = logging.WARNING if pending > backlog else logging.INFO
                        log.log(level, "%d reading batches wait in the spool", pending)
                        backlog = pending
                today = self.clock().astimezone(self.policy.tz).date()
                if self.archive_keep_days is not None and archived_on != today:
                    removed = await asyncio.to_thread(
                        archive_readings, self.store, keep_days=self.archive_keep_days,
                        tz=self.policy.tz, now=self.clock(),
                    )
                    archived_on = today
                    if removed:
                        log.info("archived %d readings into daily rows", removed)
            except StoreUnavailable as exc:
                log.warning("time-series store unavailable for maintenance: %s", exc)
            except Exception:
                log.exception("time-series maintenance failed")

    # --- commands ------------------------------------------------------------------------

    async def _command_loop(self) -> None:
        while True:
            try:
                jobs = await asyncio.to_thread(self._queued_commands)
            except Exception:
                log.exception("could not load queued commands")
                jobs = []
            for job in jobs:
                if job.command_id in self._in_flight:
                    continue
                if self._not_before.get(job.command_id, 0.0) > time.monotonic():
                    continue
                gateway_id = self._gateway_of_meter.get(job.meter_id)
                if gateway_id is None:
                    continue
                self._in_flight.add(job.command_id)
                await self._commands[gateway_id].put(job)
            await asyncio.sleep(self.command_poll_s)

    def _queued_commands(self) -> list[CommandJob]:
        with unit_of_work(self.database_url) as session:
            rows = session.scalars(
                select(Command).where(Command.state == "queued").order_by(Command.id)
            ).all()
            return [CommandJob(c.id, c.meter_id, c.kind, c.expires_at, c.payload) for c in rows]

    async def execute(self, client: GatewayClient, job: CommandJob) -> None:
        try:
            await self._run_command(client, job)
        finally:
            self._in_flight.discard(job.command_id)

    async def _run_command(self, client: GatewayClient, job: CommandJob) -> None:
        meter = self._meters[job.meter_id]
        profile = meter.profile
        control = profile.controls.get(job.kind)
        if self.clock() >= job.expires_at:
            await asyncio.to_thread(self._finish, job, "expired", "expired before it could run")
            return
        if control is None:
            await asyncio.to_thread(
                self._finish, job, "failed", f"{profile.model} has no '{job.kind}' control"
            )
            return
        try:
            registers = profile.encode_control(
                job.kind,
                {item: (job.payload or {}).get(item, "") for item in control.items}
                if control.is_block else None,
            )
        except ValueError as exc:
            await asyncio.to_thread(self._finish, job, "failed", f"cannot dispatch: {exc}")
            return
        await asyncio.to_thread(self._mark_sent, job)
        try:
            for attempt in range(client.link.retries + 1):
                try:
                    await client.write(meter.bus_address, control.function, control.address,
                                       registers)
                    break
                except NoAnswer:
                    if attempt == client.link.retries:
                        raise
            confirmed, result, reading = await self._read_back(client, meter, job, registers)
        except (ModbusError, DecodeError) as exc:
            await asyncio.to_thread(self._retry_later, job, str(exc))
            return
        if confirmed:
            await asyncio.to_thread(self._finish, job, "confirmed", result, reading)
        else:
            await asyncio.to_thread(self._retry_later, job, result)

    async def _read_back(
        self, client: GatewayClient, meter: MeterTarget, job: CommandJob, written: list[int]
    ) -> tuple[bool, str, MeterReading | None]:
        """Read the meter after a write: did the change take?"""
        control = meter.profile.controls[job.kind]
        if control.is_block:
            back = await client.read(meter.bus_address, 3, control.address, control.count)
            if back == written:
                values = control.decode(back)
                return True, "read back: " + ", ".join(f"{k} {v}" for k, v in values.items()), None
            return False, "read-back does not show the values written", None
        values = await read_values(client, meter)
        reading = reading_from(meter, values, self.clock())
        if job.kind in ("trip", "close"):
            want = job.kind == "close"
            if reading.relay_closed is want:
                return True, f"relay {'closed' if want else 'open'}", reading
            return False, "read-back does not show the relay change", reading
        if job.kind in ("protect_on", "protect_off"):
            flag = meter.profile.status_flag(values, "power_protect")
            if flag is None:
                return True, "written (the meter reports no power-protect state)", reading
            if flag is (job.kind == "protect_on"):
                return True, f"power-protect {'on' if flag else 'off'}", reading
            return False, "read-back does not show the power-protect change", reading
        return True, "written", reading

    def _mark_sent(self, job: CommandJob) -> None:
        with unit_of_work(self.database_url) as session:
            command = session.get_one(Command, job.command_id)
            command.state = "sent"
            command.attempts += 1
            command.sent_at = self.clock()

    def _retry_later(self, job: CommandJob, reason: str) -> None:
        log.warning("command %d (%s): %s", job.command_id, job.kind, reason)
        with unit_of_work(self.database_url) as session:
            command = session.get_one(Command, job.command_id)
            expired = self.clock() >= command.expires_at
            command.state = "expired" if expired else "queued"
            command.result = reason
            if expired:
                command.completed_at = self.clock()
                _command_failed(session, command, self.policy)
        self._not_before[job.command_id] = time.monotonic() + RETRY_COMMAND_AFTER_S

    def _finish(
        self, job: CommandJob, state: str, result: str, reading: MeterReading | None = None
    ) -> None:
        with unit_of_work(self.database_url) as session:
            command = session.get_one(Command, job.command_id)
            command.state = state
            command.result = result
            command.completed_at = self.clock()
            if state in ("failed", "expired"):
                _command_failed(session, command, self.policy)
            if reading is not None and reading.relay_closed is not None:
                meter = session.get_one(Meter, job.meter_id)
                meter.relay = "closed" if reading.relay_closed else "open"
        self._not_before.pop(job.command_id, None)


def _command_failed(session: Session, command: Command, policy: BillingPolicy) -> None:
    """A command that ended without being confirmed: an alarm the operator acknowledges, and
    the operators are told."""
    assert command.completed_at is not None
    session.add(
        Alarm(kind="command_failed", meter_id=command.meter_id, raised_at=command.completed_at,
              value=f"{command.kind} #{command.id}", detail=command.result)
    )
    notices.command_failed(
        session, command.id, session.get_one(Meter, command.meter_id).serial, command.kind,
        command.result, policy=policy, now=command.completed_at,
    )


async def read_values(client: GatewayClient, meter: MeterTarget) -> dict[str, Decimal]:
    """Read every register block of the meter's profile and decode them into field values."""
    profile = meter.profile
    registers = {
        block.name: await client.read(meter.bus_address, block.function, block.address,
                                      block.count)
        for block in profile.blocks
    }
    try:
        return profile.decode(registers)
    except DecodeError as exc:
        raise ModbusError(f"meter {meter.serial}: implausible registers: {exc}") from None


def _stored(value: Decimal | None) -> Decimal | None:
    """To the 4 places the stores keep (a float32 meter's extra digits are noise)."""
    return None if value is None else value.quantize(STORED_QUANTUM)


def reading_from(meter: MeterTarget, values: dict[str, Decimal], at: datetime) -> MeterReading:
    profile = meter.profile
    bands = profile.band_energy(values)
    energy = _stored(values["energy_kwh"])
    assert energy is not None
    return MeterReading(
        meter_id=meter.meter_id,
        at=at,
        energy_kwh=energy,
        band_energy_kwh={band: v.quantize(STORED_QUANTUM) for band, v in bands.items()}
        if bands else None,
        power_kw=_stored(values.get("power_kw")),
        voltage_v=_stored(values.get("voltage_v", values.get("voltage_l1_v"))),
        current_a=_stored(values.get("current_a", values.get("current_l1_a"))),
        relay_closed=profile.relay_closed(values),
        tags={m.TAG_METER: str(meter.meter_id), **meter.tags},
    )


async def read_meter(client: GatewayClient, meter: MeterTarget, at: datetime) -> MeterReading:
    return reading_from(meter, await read_values(client, meter), at)


class GatewayTask:
    """Everything one gateway does: connect, run its commands, read its meters each slot."""

    def __init__(self, collector: Collector, target: GatewayTarget) -> None:
        self.collector = collector
        self.target = target
        self.interval = target.interval_s or collector.interval_s
        self.client = GatewayClient(target.link)
        self.queue = collector._commands[target.gateway_id]
        self.health = {meter.meter_id: Health() for meter in target.meters}
        self.gateway = Health()
        self.reconnect_wait = RECONNECT_FIRST_S

    def _slot(self) -> int:
        return math.floor(self.collector.clock().timestamp() / self.interval)

    def _slot_start(self, slot: int) -> datetime:
        return datetime.fromtimestamp(slot * self.interval, UTC)

    async def run(self) -> None:
        next_slot = self._slot()
        try:
            while True:
                await self._run_queued_commands()
                now_slot = self._slot()
                if now_slot >= next_slot:
                    await self._read_cycle(self._slot_start(now_slot))
                    next_slot = max(now_slot, self._slot()) + 1  # an overrun skips slots
                    continue
                wait = (next_slot * self.interval) - self.collector.clock().timestamp()
                if not self.client.connected and self.gateway.failures:
                    wait = min(wait, self.reconnect_wait)
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                    # cancellation that races with the queue, and the collector never stops.
                    async with asyncio.timeout(max(wait, 0.0)):
                        job = await self.queue.get()
                except TimeoutError:
                    await self._reconnect_between_slots()
                    continue
                await self._execute(job)
        finally:
            self.client.close()

    async def _execute(self, job: CommandJob) -> None:
        if not self.client.connected and self.gateway.failures:
            # The gateway is down: the command waits for it, until it expires.
            if self.collector.clock() >= job.expires_at:
                await asyncio.to_thread(self.collector._finish, job, "expired",
                                        f"gateway {self.target.name} unreachable until expiry")
            self.collector._in_flight.discard(job.command_id)
            return
        await self.collector.execute(self.client, job)

    async def _run_queued_commands(self) -> None:
        while not self.queue.empty():
            await self._execute(self.queue.get_nowait())

    async def _reconnect_between_slots(self) -> None:
        if self.client.connected or not self.gateway.failures:
            return
        try:
            await self.client.connect()
        except GatewayUnreachable:
            self.reconnect_wait = min(self.reconnect_wait * 2, RECONNECT_MAX_S, self.interval)
            return
        log.info("gateway %s answers again", self.target.name)
        self.reconnect_wait = RECONNECT_FIRST_S
        # Contact is recorded with the next cycle's readings.

    async def _read_cycle(self, at: datetime) -> None:
        batch = Batch()
        try:
            await self.client.connect()
        except GatewayUnreachable as exc:
            self._gateway_failed(at, batch, exc)
            for meter in self.target.meters:
                self._meter_failed(meter, at, batch, None)
            await self._finish_cycle(batch)
            return
        if self.gateway.recovered():
            log.info("gateway %s answers again", self.target.name)
            self.reconnect_wait = RECONNECT_FIRST_S
        batch.gateways_seen[self.target.gateway_id] = at
        for meter in self.target.meters:
            await self._run_queued_commands()  # commands run ahead of the next read on the bus
            health = self.health[meter.meter_id]
            if health.skip > 0:  # backed off: a failing meter is probed every few cycles
                health.skip -= 1
                self._count_silent_cycle(meter, at, batch)
                continue
            try:
                batch.readings.append(await read_meter(self.client, meter, at))
            except GatewayUnreachable as exc:
                self._gateway_failed(at, batch, exc)
                self._meter_failed(meter, at, batch, None)
                break
            except ModbusError as exc:
                self._meter_failed(meter, at, batch, exc)
                continue
            if health.recovered():
                log.info("meter %s answers again", meter.serial)
        await self._finish_cycle(batch)

    async def _finish_cycle(self, batch: Batch) -> None:
        self.collector.cycles += 1
        await self.collector._sink.put(batch)

    def _gateway_failed(self, at: datetime, batch: Batch, error: ModbusError) -> None:
        failures = self.gateway.failed(at)
        if failures == 1:
            log.warning("%s", error)
        if failures >= self.collector.lost_after and self.gateway.since is not None:
            batch.gateways_lost[self.target.gateway_id] = self.gateway.since

    def _meter_failed(
        self, meter: MeterTarget, at: datetime, batch: Batch, error: ModbusError | None
    ) -> None:
        """Count a failed cycle; log it once while it lasts; mark the meter lost after N."""
        health = self.health[meter.meter_id]
        failures = health.failed(at)
        if failures == 1 and error is not None:
            log.warning("meter %s: %s", meter.serial, error)
        if failures >= self.collector.lost_after and health.since is not None:
            batch.lost[meter.meter_id] = health.since

    def _count_silent_cycle(self, meter: MeterTarget, at: datetime, batch: Batch) -> None:
        """A skipped cycle of a backed-off meter still counts toward losing contact."""
        health = self.health[meter.meter_id]
        health.failures += 1
        if health.failures >= self.collector.lost_after and health.since is not None:
            batch.lost[meter.meter_id] = health.since
