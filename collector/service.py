"""The collector: one task and one client per gateway, reads on interval slots, commands first.

Gateways run in parallel; within a gateway every request is sequential, because the RS-485 bus
behind it carries one request at a time. Readings from all gateways flow into one sink task that
writes them to the time-series store and bills them in one database transaction per batch, so the
relational database sees one writer however many gateways there are.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from billing.charging import charge_readings
from billing.policy import BillingPolicy
from collector.modbus import GatewayClient, GatewayUnreachable, ModbusError
from collector.profiles import DeviceProfile, load_profile
from collector.readings import MeterReading, ReadingStore
from schema import measurements as m
from schema.db import unit_of_work
from schema.models import Command, Floor, Gateway, Meter, Unit

log = logging.getLogger(__name__)
RETRY_COMMAND_AFTER_S = 2.0


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
    host: str
    port: int
    transport: str
    timeout_s: float
    retries: int
    interval_s: float | None
    meters: tuple[MeterTarget, ...]


@dataclass(frozen=True)
class CommandJob:
    command_id: int
    meter_id: int
    kind: str
    expires_at: datetime


@dataclass
class Batch:
    readings: list[MeterReading] = field(default_factory=list)
    lost: dict[int, datetime] = field(default_factory=dict)  # meter id -> first failure


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
        targets.append(
            GatewayTarget(
                gateway_id=gw.id, name=gw.name, host=gw.host, port=gw.port,
                transport=gw.transport, timeout_s=float(gw.timeout_s), retries=gw.retries,
                interval_s=float(gw.interval_s) if gw.interval_s else None,
                meters=tuple(meters),
            )
        )
    return targets


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
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database_url = database_url
        self.store = store
        self.interval_s = interval_s
        self.policy = policy
        self.command_poll_s = command_poll_s
        self.lost_after = lost_after
        self.clock = clock
        self.cycles = 0
        self._sink: asyncio.Queue[Batch] = asyncio.Queue()
        self._commands: dict[int, asyncio.Queue[CommandJob]] = {}
        self._gateway_of_meter: dict[int, int] = {}
        self._meters: dict[int, MeterTarget] = {}
        self._in_flight: set[int] = set()
        self._not_before: dict[int, float] = {}
        self._failures: dict[int, tuple[int, datetime]] = {}
        self._unreachable: set[int] = set()

    async def run(self) -> None:
        """Collect until cancelled."""
        targets = await asyncio.to_thread(self._load_site)
        log.info("collecting %d meters on %d gateways", len(self._meters), len(targets))
        async with asyncio.TaskGroup() as group:
            group.create_task(self._sink_loop())
            group.create_task(self._command_loop())
            for target in targets:
                group.create_task(self._gateway_loop(target))

    def _load_site(self) -> list[GatewayTarget]:
        with unit_of_work(self.database_url) as session:
            targets = load_site(session)
        for target in targets:
            self._commands[target.gateway_id] = asyncio.Queue()
            for meter in target.meters:
                self._gateway_of_meter[meter.meter_id] = target.gateway_id
                self._meters[meter.meter_id] = meter
        return targets

    # --- reading -------------------------------------------------------------------------

    async def _gateway_loop(self, target: GatewayTarget) -> None:
        loop = asyncio.get_running_loop()
        interval = target.interval_s or self.interval_s
        client = GatewayClient(
            target.host, target.port, transport=target.transport,
            timeout_s=target.timeout_s, retries=target.retries,
        )
        queue = self._commands[target.gateway_id]
        next_slot = loop.time()
        try:
            while True:
                while not queue.empty():
                    await self._execute(client, queue.get_nowait())
                wait = next_slot - loop.time()
                if wait > 0:
                    try:
                        job = await asyncio.wait_for(queue.get(), timeout=wait)
                    except TimeoutError:
                        continue
                    await self._execute(client, job)
                    continue
                await self._read_cycle(client, target)
                # The next slot on the interval grid; a cycle that overran skips missed slots.
                next_slot = math.floor(loop.time() / interval + 1) * interval
        finally:
            client.close()

    async def _read_cycle(self, client: GatewayClient, target: GatewayTarget) -> None:
        at = self.clock()
        batch = Batch()
        queue = self._commands[target.gateway_id]
        unreachable: GatewayUnreachable | None = None
        for meter in target.meters:
            while not queue.empty():  # commands run ahead of the next read on their bus
                await self._execute(client, queue.get_nowait())
            if unreachable is None:
                try:
                    batch.readings.append(await self._read_meter(client, meter, at))
                except GatewayUnreachable as exc:
                    unreachable = exc  # every other meter behind it fails this cycle too
                except ModbusError as exc:
                    self._failed(meter, at, batch, exc)
                    continue
                else:
                    if self._failures.pop(meter.meter_id, None):
                        log.info("meter %s answers again", meter.serial)
                    continue
            self._failed(meter, at, batch, None)
        if unreachable is not None and target.gateway_id not in self._unreachable:
            log.warning("%s", unreachable)
            self._unreachable.add(target.gateway_id)
        elif unreachable is None and target.gateway_id in self._unreachable:
            log.info("gateway %s answers again", target.name)
            self._unreachable.discard(target.gateway_id)
        self.cycles += 1
        await self._sink.put(batch)

    def _failed(
        self, meter: MeterTarget, at: datetime, batch: Batch, error: ModbusError | None
    ) -> None:
        """Count a failed read; log it once while it lasts; mark the meter lost after N."""
        count, since = self._failures.get(meter.meter_id, (0, at))
        self._failures[meter.meter_id] = (count + 1, since)
        if count == 0 and error is not None:
            log.warning("meter %s: %s", meter.serial, error)
        if count + 1 >= self.lost_after:
            batch.lost[meter.meter_id] = since

    async def _read_meter(
        self, client: GatewayClient, meter: MeterTarget, at: datetime
    ) -> MeterReading:
        profile = meter.profile
        registers = {
            block.name: await client.read(
                meter.bus_address, block.function, block.address, block.count
            )
            for block in profile.blocks
        }
        values = profile.decode(registers)
        return MeterReading(
            meter_id=meter.meter_id,
            at=at,
            energy_kwh=values["energy_kwh"],
            band_energy_kwh=profile.band_energy(values),
            power_kw=values.get("power_kw"),
            voltage_v=values.get("voltage_v"),
            current_a=values.get("current_a"),
            relay_closed=profile.relay_closed(values),
            tags={m.TAG_METER: str(meter.meter_id), **meter.tags},
        )

    # --- storing and billing -------------------------------------------------------------

    async def _sink_loop(self) -> None:
        while True:
            batch = await self._sink.get()
            while not self._sink.empty():
                more = self._sink.get_nowait()
                batch.readings += more.readings
                batch.lost.update(more.lost)
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
            by_id = {r.meter_id: r for r in batch.readings}
            meters = session.scalars(
                select(Meter).where(Meter.id.in_(set(by_id) | set(batch.lost)))
            ).all()
            for meter in meters:
                reading = by_id.get(meter.id)
                if reading is None:
                    if meter.lost_since is None:
                        meter.lost_since = batch.lost[meter.id]
                    continue
                meter.last_reading_at = reading.at
                meter.last_energy_kwh = reading.energy_kwh
                meter.last_power_kw = reading.power_kw
                meter.lost_since = None
                if reading.relay_closed is not None:
                    meter.relay = "closed" if reading.relay_closed else "open"
            charge_readings(session, batch.readings, policy=self.policy, now=now)

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
            return [CommandJob(c.id, c.meter_id, c.kind, c.expires_at) for c in rows]

    async def _execute(self, client: GatewayClient, job: CommandJob) -> None:
        try:
            await self._run_command(client, job)
        finally:
            self._in_flight.discard(job.command_id)

    async def _run_command(self, client: GatewayClient, job: CommandJob) -> None:
        meter = self._meters[job.meter_id]
        control = meter.profile.controls.get(job.kind)
        if self.clock() >= job.expires_at:
            await asyncio.to_thread(self._finish, job, "expired", "expired before it could run")
            return
        if control is None:
            await asyncio.to_thread(
                self._finish, job, "failed", f"{meter.profile.model} has no '{job.kind}' control"
            )
            return
        await asyncio.to_thread(self._mark_sent, job)
        want_closed = job.kind == "close"
        try:
            await client.write(meter.bus_address, control.function, control.address, control.values)
            reading = await self._read_meter(client, meter, self.clock())
        except ModbusError as exc:
            await asyncio.to_thread(self._retry_later, job, str(exc))
            return
        if reading.relay_closed is want_closed:
            state = "closed" if want_closed else "open"
            await asyncio.to_thread(self._finish, job, "confirmed", f"relay {state}", reading)
        else:
            await asyncio.to_thread(self._retry_later, job, "read-back does not show the change")

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
        self._not_before[job.command_id] = time.monotonic() + RETRY_COMMAND_AFTER_S

    def _finish(
        self, job: CommandJob, state: str, result: str, reading: MeterReading | None = None
    ) -> None:
        with unit_of_work(self.database_url) as session:
            command = session.get_one(Command, job.command_id)
            command.state = state
            command.result = result
            command.completed_at = self.clock()
            if reading is not None and reading.relay_closed is not None:
                meter = session.get_one(Meter, job.meter_id)
                meter.relay = "closed" if reading.relay_closed else "open"
        self._not_before.pop(job.command_id, None)
