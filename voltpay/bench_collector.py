"""The collector at 10,000 meters, in its real process layout: `make bench` figures

- cycle_10k_s: seconds from a collection slot's start until the last reading of the slot is
  billed, for 10,000 meters on 313 simulated gateways (32 meters each), stored in a real
  influxd and billed in PostgreSQL. The first cycle is a warm-up (it creates the billing
  positions and InfluxDB's series); the second is measured.
- read_ratio_vs_pymodbus: meters read per second through the collector's read path (its
  GatewayTask read cycles, everything but the sink) divided by a bare pymodbus loop reading the
  same register blocks of the same meters (one AsyncModbusTcpClient per gateway, all gateways
  at once in one event loop), against the same simulators.
- collector_rss_mb: peak resident memory (VmHWM) of the collector process after the measured
  cycle.

Processes: two simulator processes (each serving half the gateways on loopback ports, like
`voltpay simulate`), the collector (`voltpay collect`, its own process), influxd, PostgreSQL and
this one, which sets up, watches the database and times. Every child is started in its own
process group and the group is killed at the end, however the benchmark ends.

`python -m voltpay.bench_collector` runs these figures alone (on a temporary database, like
`make bench`); `python -m voltpay.bench_collector simulate URL SHARD SHARDS SPEED` is the
simulator process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import selectinload

from billing.policy import BillingPolicy
from billing.tariffs import parse_spec, spec_to_data
from collector.profiles import load_profile
from collector.readings import ReadingStore
from schema.db import get_engine, unit_of_work
from schema.models import (
    Account,
    AccountMeter,
    Building,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    MeterBilling,
    Tariff,
    TariffVersionRow,
    Unit,
)
from voltpay.demo import DEMO_TARIFF
from voltpay.devservers import influx_server

ROOT = Path(__file__).resolve().parent.parent
METERS = 10_000
PER_GATEWAY = 32
SIMULATORS = 2  # processes, each serving every second gateway
INTERVAL_S = 60  # the collector's interval: one warm-up cycle, then the measured one
LATEST_START_S = 25  # the collector starts in the first 25 s of a slot, so its warm-up ends first
SIM_SPEED = 15.0  # a minute of wall time is a quarter hour on the meters
PROFILE = "acrel_dtsy1352"
FLAT_EVERY = 4  # every 4th meter on its own flat tariff, the rest on the site's TOU default
OPENING = Decimal("1000.00")
FLAT_SPEC: dict[str, object] = {"kind": "flat", "flat_price": "0.9500"}
CYCLE_TIMEOUT_S = 55.0
# The gateways' Modbus timeout. A real bus answers in ~0.1 s; here 313 "buses" are two simulator
# processes on a shared 2-core machine, and a stall of one of them (another job taking the CPU)
# must not pass for 157 dead meters: 3 s instead of the usual 1 s. It changes nothing while
# every answer comes in time.
TIMEOUT_S = 3.0
READ_PAIRS = 3


@dataclass(frozen=True)
class CollectorFigures:
    cycle_s: float
    read_ratio: float
    rss_mb: float
    collector_meters_per_s: float
    pymodbus_meters_per_s: float


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- the site ----------------------------------------------------------------------------------


def build_site(url: str, meters: int, ports: Sequence[int], t0: datetime) -> None:
    """`meters` meters (DTSY1352) on gateways of PER_GATEWAY at 127.0.0.1:`ports`, one per shop,
    each on its own open account with credit; TOU default tariff, every FLAT_EVERY-th meter on a
    flat one. Inserted in bulk; no billing positions yet (the first readings create them)."""
    gateways = (meters + PER_GATEWAY - 1) // PER_GATEWAY
    if len(ports) < gateways:
        raise ValueError(f"{gateways} gateways need as many ports, got {len(ports)}")
    buildings, floors_each = 10, 10
    units_each = (meters + buildings * floors_each - 1) // (buildings * floors_each)
    with get_engine(url).begin() as conn:
        conn.execute(insert(Tariff), [
            {"id": 1, "name": "Commercial TOU", "kind": "tou_tiered", "is_default": True,
             "created_at": t0},
            {"id": 2, "name": "Flat", "kind": "flat", "is_default": False, "created_at": t0},
        ])
        conn.execute(insert(TariffVersionRow), [
            {"tariff_id": 1, "effective_from": t0, "created_at": t0,
             "spec": spec_to_data(parse_spec(DEMO_TARIFF))},
            {"tariff_id": 2, "effective_from": t0, "created_at": t0,
             "spec": spec_to_data(parse_spec(FLAT_SPEC))},
        ])
        conn.execute(insert(Building), [
            {"id": b + 1, "code": f"B{b}", "name": f"Building {b}"} for b in range(buildings)
        ])
        conn.execute(insert(Floor), [
            {"id": b * floors_each + f + 1, "building_id": b + 1, "level": f + 1,
             "name": f"B{b}-{f + 1}F"}
            for b in range(buildings) for f in range(floors_each)
        ])
        conn.execute(insert(Unit), [
            {"id": i + 1, "floor_id": i // units_each + 1, "number": f"S{i:05d}",
             "name": f"Shop {i}"}
            for i in range(meters)
        ])
        conn.execute(insert(Gateway), [
            {"id": g + 1, "name": f"GW{g:04d}", "host": "127.0.0.1", "port": ports[g],
             "transport": "tcp", "timeout_s": Decimal(str(TIMEOUT_S)), "retries": 1, "gap_ms": 0,
             "baudrate": 9600, "enabled": True}
            for g in range(gateways)
        ])
        conn.execute(insert(Meter), [
            {"id": i + 1, "serial": f"M{i:05d}", "profile": PROFILE,
             "gateway_id": i // PER_GATEWAY + 1, "bus_address": i % PER_GATEWAY + 1,
             "unit_id": i + 1, "ct_ratio": 1, "power_protect": False, "relay": "closed",
             "tariff_id": 2 if i % FLAT_EVERY == FLAT_EVERY - 1 else None}
            for i in range(meters)
        ])
        conn.execute(insert(Account), [
            {"id": i + 1, "number": f"A{i:05d}", "tenant_name": f"Tenant {i}", "phone": "",
             "id_number": "", "notes": "", "status": "open", "balance": OPENING,
             "alarm_level": "normal", "opened_at": t0}
            for i in range(meters)
        ])
        conn.execute(insert(AccountMeter), [
            {"account_id": i + 1, "meter_id": i + 1, "attached_at": t0} for i in range(meters)
        ])
        conn.execute(insert(LedgerEntry), [
            {"account_id": i + 1, "kind": "transfer", "amount": OPENING,
             "balance_after": OPENING, "idempotency_key": f"bench-opening:{i + 1}",
             "note": "opening balance", "effective_at": t0, "recorded_at": t0}
            for i in range(meters)
        ])
        for table in ("tariffs", "tariff_versions", "buildings", "floors", "units", "gateways",
                      "meters", "accounts", "account_meters", "ledger_entries"):
            conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            ))
        conn.execute(text("ANALYZE"))


# --- the simulator process ---------------------------------------------------------------------


def serve_shard(url: str, shard: int, shards: int, speed: float) -> int:
    """Serve the gateways with id % shards == shard, as `voltpay simulate` serves them all;
    print "ready" once every one listens."""
    from collector.simulator import DEFAULT_TZ, GatewaySimulator, SimulatedMeter, serve_forever
    from voltpay.cli import run_until_signalled

    simulators = []
    with unit_of_work(url) as session:
        for gw in session.scalars(
            select(Gateway).options(selectinload(Gateway.meters)).order_by(Gateway.id)
        ):
            if gw.id % shards != shard:
                continue
            meters = [
                SimulatedMeter.create(
                    meter.bus_address, seed=meter.id, initial_kwh=meter.last_energy_kwh,
                    relay_closed=meter.relay != "open", power_protect=meter.power_protect,
                    profile=meter.profile,
                )
                for meter in gw.meters
            ]
            simulators.append(GatewaySimulator(meters, host=gw.host, port=gw.port, speed=speed,
                                               tz=DEFAULT_TZ, framer=gw.transport))
    get_engine(url).dispose()

    def started(_: object) -> None:
        print(f"ready {len(simulators)}", flush=True)

    run_until_signalled(serve_forever(simulators, on_started=started))
    return 0


# --- child processes ---------------------------------------------------------------------------


class Children:
    """Child processes, each the leader of its own process group; all groups are killed (TERM,
    then KILL) when the `with` block ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=self.logs, start_new_session=True, preexec_fn=die_with_parent,
            )
        self.started.append((name, process))
        return process

    def stop(self, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout_s)
        # Whatever the leader did, nothing of its group may outlive the benchmark.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            self.stop(process)

    def tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace").strip() if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or f"({name} wrote nothing)"


def listen_ports(count: int, low: int = 20_000, high: int = 32_000) -> list[int]:
    """`count` consecutive ports free to listen on, below Linux's ephemeral range (32768 on):
    a port picked there could be taken by any outgoing connection before a simulator binds it."""
    for start in random.Random().sample(range(low, high - count), 50):
        with contextlib.ExitStack() as stack:
            try:
                for port in range(start, start + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return list(range(start, start + count))
    raise RuntimeError(f"no {count} consecutive free ports between {low} and {high}")


def die_with_parent() -> None:
    """For `preexec_fn`: on Linux, the child gets SIGTERM when the thread that started it ends,
    so when the benchmark dies even by SIGKILL, when no `finally` can stop it. (The thread, not
    the process: start children from the main thread.)"""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (a CI timeout, `kill`) raises SystemExit, so `finally` blocks stop the children,
    influxd and drop the database; Python's default is to die on the spot."""

    def exit_on(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, exit_on)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _read_line(stream: IO[bytes], deadline: float) -> str:
    """One line from a child's stdout, or "" if it closes it; TimeoutError after `deadline`."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout=max(deadline - time.monotonic(), 0.0)):
            raise TimeoutError("no line in time")
    return stream.readline().decode(errors="replace").strip()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


# --- the cycle ---------------------------------------------------------------------------------


def _billed_count(url: str, at: datetime | None) -> int:
    with get_engine(url).connect() as conn:
        query = select(func.count()).select_from(MeterBilling)
        if at is not None:
            query = query.where(MeterBilling.billed_at >= at)
        return int(conn.execute(query).scalar_one())


def _wait_billed(url: str, at: datetime | None, meters: int, deadline: float,
                 collector: subprocess.Popen[bytes], children: Children) -> float:
    """Poll until `meters` billing positions stand at `at` (None: exist at all); the time.time()
    when they did."""
    while True:
        now = time.time()
        if _billed_count(url, at) >= meters:
            return now
        if collector.poll() is not None:
            raise RuntimeError(
                f"the collector exited with status {collector.returncode}:\n"
                + children.tail("collector")
            )
        if now > deadline:
            raise RuntimeError(
                f"{_billed_count(url, at)} of {meters} meters billed "
                f"{'at ' + at.isoformat() if at else 'at all'} in time:\n"
                + children.tail("collector")
            )
        time.sleep(0.05)


def run_collector_cycle(
    url: str, influx_url: str, children: Children, meters: int
) -> tuple[float, float]:
    """Start the collector so that its first (warm-up) cycle ends inside its slot, measure the
    next slot from its start to its last billed reading; (seconds, collector peak RSS in MB).
    Stops the collector before returning."""
    phase = time.time() % INTERVAL_S
    if phase > LATEST_START_S:
        time.sleep(INTERVAL_S - phase + 0.05)
    started = time.time()
    measured = datetime.fromtimestamp((started // INTERVAL_S + 1) * INTERVAL_S, UTC)
    collector = children.start(
        "collector",
        [sys.executable, "-m", "voltpay.cli", "collect"],
        _child_env(DATABASE_URL=url, TIMESERIES_URL=influx_url,
                   COLLECT_INTERVAL_S=str(INTERVAL_S),
                   SPOOL_DIR=str(children.logs / "spool")),
    )
    try:
        warm = _wait_billed(url, None, meters, measured.timestamp() + CYCLE_TIMEOUT_S,
                            collector, children)
        _say(f"warm-up cycle billed {warm - started:.1f} s after the collector started "
             f"({measured.timestamp() - warm:.1f} s before the measured slot); collector peak "
             f"RSS so far {_peak_rss_mb(collector.pid):.0f} MB")
        if warm > measured.timestamp():
            _say("the warm-up cycle overran into the measured slot: the figure includes it")
        done = _wait_billed(url, measured, meters, measured.timestamp() + CYCLE_TIMEOUT_S,
                            collector, children)
        rss = _peak_rss_mb(collector.pid)
    finally:
        children.stop(collector)
    with get_engine(url).connect() as conn:
        charges = conn.execute(
            select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.kind == "charge", LedgerEntry.effective_at == measured)
        ).scalar_one()
        from_registers = conn.execute(
            select(func.count()).select_from(Meter).where(Meter.band_source == "registers")
        ).scalar_one()
    log = (children.logs / "collector.log").read_text(errors="replace").splitlines()
    complaints = [line for line in log if " WARNING " in line or " ERROR " in line]
    _say(f"measured cycle: {charges} of {meters} meters charged ({from_registers} priced from "
         f"their band registers); the collector logged "
         f"{len(complaints)} warnings and errors"
         + (f", the first: {complaints[0]}" if complaints else ""))
    return done - measured.timestamp(), rss


# --- reads: the collector's read path and bare pymodbus ------------------------------------------


async def _collector_reads(url: str) -> tuple[int, float]:
    """One read cycle of every gateway through the collector's GatewayTask (no sink):
    (meters read, seconds from the first request to the last answer)."""
    from collector.service import Collector, GatewayTask

    collector = Collector(url, cast(ReadingStore, object()), interval_s=INTERVAL_S,
                          policy=BillingPolicy())
    targets = await asyncio.to_thread(collector._load_site)
    tasks = [GatewayTask(collector, target) for target in targets]
    try:
        await asyncio.gather(*(task.client.connect() for task in tasks))
        at = datetime.now(UTC).replace(microsecond=0)
        gc.collect()
        began = time.perf_counter()
        await asyncio.gather(*(task._read_cycle(at) for task in tasks))
        elapsed = time.perf_counter() - began
    finally:
        for task in tasks:
            task.client.close()
    read = 0
    while not collector._sink.empty():
        read += len(collector._sink.get_nowait().readings)
    return read, elapsed


async def _pymodbus_reads(gateways: Sequence[tuple[int, Sequence[int]]]) -> tuple[int, float]:
    """The same register blocks of the same meters, through bare pymodbus: one client per
    gateway, every gateway at once, each meter's blocks in turn."""
    from pymodbus.client import AsyncModbusTcpClient

    blocks = load_profile(PROFILE).blocks
    clients = [
        AsyncModbusTcpClient("127.0.0.1", port=port, timeout=TIMEOUT_S, retries=0,
                             reconnect_delay=0)
        for port, _ in gateways
    ]

    async def poll(client: AsyncModbusTcpClient, addresses: Sequence[int]) -> int:
        for address in addresses:
            for block in blocks:
                read = (client.read_holding_registers if block.function == 3
                        else client.read_input_registers)
                response = await read(block.address, count=block.count, device_id=address)
                if response.isError():
                    raise RuntimeError(f"device {address}: {response}")
        return len(addresses)

    try:
        await asyncio.gather(*(client.connect() for client in clients))
        gc.collect()
        began = time.perf_counter()
        counts = await asyncio.gather(
            *(poll(client, addresses) for client, (_, addresses) in zip(clients, gateways,
                                                                         strict=True))
        )
        elapsed = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    return sum(counts), elapsed


def measure_reads(url: str, meters: int, pairs: int = READ_PAIRS) -> tuple[float, float, float]:
    """(ratio, collector meters/s, bare pymodbus meters/s): `pairs` back-to-back pairs of one
    full read cycle each way, in alternating order; the ratio is the median of the pairs' ratios
    (what runs seconds apart shares the machine's background load), the rates their medians."""
    # As `voltpay collect` does: no pymodbus chatter; a meter that fails is counted below.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("collector").setLevel(logging.ERROR)
    with unit_of_work(url) as session:
        rows = session.execute(
            select(Gateway.port, Meter.bus_address)
            .join(Meter, Meter.gateway_id == Gateway.id)
            .order_by(Gateway.id, Meter.bus_address)
        ).all()
    by_port: dict[int, list[int]] = {}
    for port, address in rows:
        by_port.setdefault(port, []).append(address)
    gateways = list(by_port.items())

    def rate(run: Callable[[], Coroutine[Any, Any, tuple[int, float]]]) -> float | None:
        read, elapsed = asyncio.run(run())
        if read != meters:
            _say(f"{meters - read} meters did not answer in time; this pair is run again")
            return None
        return read / elapsed

    ours: list[float] = []
    bare: list[float] = []
    attempts = 0
    while len(ours) < pairs:
        attempts += 1
        if attempts > pairs + 2:
            raise RuntimeError("meters keep failing to answer: is the machine overloaded?")
        runs = [lambda: _pymodbus_reads(gateways), lambda: _collector_reads(url)]
        if attempts % 2 == 0:
            runs.reverse()
        first = rate(runs[0])
        second = rate(runs[1]) if first is not None else None
        if first is None or second is None:
            continue
        bare_rate, our_rate = (first, second) if attempts % 2 else (second, first)
        bare.append(bare_rate)
        ours.append(our_rate)
    _say("meters/s, collector read path: " + ", ".join(f"{r:.0f}" for r in ours)
         + "; bare pymodbus: " + ", ".join(f"{r:.0f}" for r in bare))
    ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    return ratio, statistics.median(ours), statistics.median(bare)


# --- the whole benchmark -----------------------------------------------------------------------


def bench_collector(url: str, meters: int = METERS) -> CollectorFigures:
    """All three figures on the migrated, empty PostgreSQL database at `url`."""
    with _terminate_as_exit():
        return _bench_collector(url, meters)


def _bench_collector(url: str, meters: int) -> CollectorFigures:
    gateways = (meters + PER_GATEWAY - 1) // PER_GATEWAY
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    _say(f"load average before the collector benchmark: {os.getloadavg()[0]:.1f} "
         "(this benchmark's own processes need both cores)")
    began = time.perf_counter()
    build_site(url, meters, listen_ports(gateways), t0)
    _say(f"{meters} meters on {gateways} gateways set up in {time.perf_counter() - began:.1f} s")
    # VOLTPAY_BENCH_LOGS=<dir> keeps the children's logs (collector.log, simulator*.log) there.
    keep = os.environ.get("VOLTPAY_BENCH_LOGS")
    with (
        tempfile.TemporaryDirectory(prefix="voltpay-bench-") as tmp,
        influx_server() as influx,
        Children(Path(keep) if keep else Path(tmp)) as children,
    ):
        deadline = time.monotonic() + 60
        simulators = [
            children.start(
                f"simulator{shard}",
                [sys.executable, "-m", "voltpay.bench_collector", "simulate", url, str(shard),
                 str(SIMULATORS), str(SIM_SPEED)],
                _child_env(),
            )
            for shard in range(SIMULATORS)
        ]
        for shard, process in enumerate(simulators):
            assert process.stdout is not None
            try:
                line = _read_line(process.stdout, deadline)
            except TimeoutError:
                line = ""
            if not line.startswith("ready"):
                raise RuntimeError(f"simulator {shard} did not start:\n"
                                   + children.tail(f"simulator{shard}"))
        _say(f"{SIMULATORS} simulator processes serve {gateways} gateways "
             f"({time.perf_counter() - began:.1f} s)")
        cycle_s, rss_mb = run_collector_cycle(url, f"{influx.url}/voltpay", children, meters)
        ratio, ours, bare = measure_reads(url, meters)
    return CollectorFigures(cycle_s, ratio, rss_mb, ours, bare)


def print_figures(figures: CollectorFigures) -> None:
    print(f"bench cycle_10k_s {figures.cycle_s:.1f} s", flush=True)
    print(f"bench read_ratio_vs_pymodbus {figures.read_ratio:.2f} ratio", flush=True)
    print(f"bench collector_rss_mb {figures.rss_mb:.0f} MB", flush=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["simulate"]:
        url, shard, shards, speed = argv[1:5]
        return serve_shard(url, int(shard), int(shards), float(speed))
    from voltpay.bench import NoPostgres, pg_database

    try:
        with pg_database() as url:
            print_figures(bench_collector(url))
    except NoPostgres as exc:
        _say(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
