"""`make bench`: each figure on a line of its own, `bench <name> <value> <unit>`.

- billing_readings_per_s: interval readings billed per second (SQLite, batches of 1,000).
- meter_reads_per_s: meters read per second through the collector's Modbus client from one
  simulated gateway with 32 meters on loopback (two register blocks per meter).
- billing_charge_10k_s: seconds for one `charge_readings` call, in one transaction, billing one
  new reading on each of 10,000 meters (each on its own open account, time-of-use tariff) on
  PostgreSQL.
- sale_p99_ms: 99th-percentile latency of a sale (its own transaction, commit included) with 20
  cashiers (threads) selling at once on PostgreSQL, 1,000 sales in all, mostly to their own
  accounts and every fifth to one of three accounts they all share. Each cashier pauses a random
  0.5 s on average between two sales (VOLTPAY_BENCH_SALE_PAUSE_S; 0 posts back to back): some
  40 sales a second in all, twenty times what twenty people at the counter can take.
- cycle_10k_s, read_ratio_vs_pymodbus, collector_rss_mb: the collector at 10,000 meters on 313
  simulated gateways, in its real process layout (simulators, collector, influxd, PostgreSQL):
  one collection cycle from its slot's start to its last billed reading; its read path against
  a bare pymodbus loop; its peak memory. See voltpay/bench_collector.py.
- page_render_s.<page>, page_render_max_s: every dashboard page's first render for an
  administrator at 10,000 meters with a year of readings and ledger, on PostgreSQL, and the
  slowest of them. See voltpay/bench_pages.py.

PostgreSQL: the server at VOLTPAY_BENCH_PG_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres), where the benchmark creates a temporary
database (one per group of figures), migrates it and drops it afterwards. When it cannot, it says
so on stderr and exits 1. The collector figures also need influxd (/usr/bin/influxd), which the
benchmark starts in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from billing import accounts, operators, sales
from billing.charging import charge_readings
from billing.policy import BillingPolicy
from collector.modbus import GatewayClient, Link
from collector.profiles import load_profile
from collector.simulator import GatewaySimulator
from schema.db import get_engine, migrate, normalise_url, unit_of_work
from schema.models import (
    Account,
    AccountMeter,
    Building,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    MeterBilling,
    Operator,
    Tariff,
    TariffVersionRow,
    Unit,
)
from voltpay.bench_collector import bench_collector, print_figures
from voltpay.bench_pages import bench_pages
from voltpay.bench_pages import print_figures as print_page_figures

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
    client = GatewayClient(Link(host="127.0.0.1", port=sim.port, timeout_s=1.0))
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


# --- PostgreSQL ----------------------------------------------------------------------------

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# A time-of-use tariff whose peak starts at 10:10 local: the benched interval (10:00-10:15 in
# Shanghai) is split across two bands for every meter.
TOU_SPEC: dict[str, object] = {
    "kind": "tou",
    "band_prices": {"peak": "1.2345", "flat": "0.8765", "valley": "0.4321"},
    "plans": {"standard": [
        {"start": "00:00", "band": "valley"},
        {"start": "08:00", "band": "flat"},
        {"start": "10:10", "band": "peak"},
        {"start": "22:00", "band": "valley"},
    ]},
    "seasons": [{"name": "all year", "plan": "standard"}],
}
METERS_PER_GATEWAY = 32
OPENING = Decimal("1000.00")
LOW_OPENING = Decimal("0.10")  # every 50th account: this interval takes it into arrears


class NoPostgres(RuntimeError):
    pass


@contextmanager
def pg_database() -> Iterator[str]:
    """A migrated temporary database on the benchmark's PostgreSQL server, dropped after."""
    admin_url = normalise_url(os.environ.get("VOLTPAY_BENCH_PG_URL", PG_ADMIN_URL))
    shown = make_url(admin_url).render_as_string(hide_password=True)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"voltpay_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        raise NoPostgres(
            f"PostgreSQL is not reachable at {shown} ({' '.join(str(exc.orig).split())}); "
            "start it or set VOLTPAY_BENCH_PG_URL to a server where this user may create "
            "databases"
        ) from None
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _bulk_site(url: str, meters: int) -> list[int]:
    """`meters` meters on a time-of-use default tariff, each on its own open account with an
    opening balance (a ledger entry) and a billing position at T0, inserted in bulk: a site in
    its steady state, as after its first interval (relays closed, band source known)."""
    engine = get_engine(url)
    gateways = (meters + METERS_PER_GATEWAY - 1) // METERS_PER_GATEWAY
    with engine.begin() as conn:
        conn.execute(insert(Tariff), [{"id": 1, "name": "TOU", "kind": "tou",
                                      "is_default": True, "created_at": T0}])
        conn.execute(insert(TariffVersionRow), [{"tariff_id": 1, "effective_from": T0,
                                                "spec": TOU_SPEC, "created_at": T0}])
        conn.execute(insert(Gateway), [
            {"id": g + 1, "name": f"GW{g:04d}", "host": "127.0.0.1", "port": 1502,
             "transport": "tcp", "timeout_s": Decimal(1), "retries": 1, "enabled": True}
            for g in range(gateways)
        ])
        conn.execute(insert(Meter), [
            {"id": i + 1, "serial": f"M{i:05d}", "profile": "acrel_dtsy1352",
             "gateway_id": i // METERS_PER_GATEWAY + 1, "bus_address": i % METERS_PER_GATEWAY + 1,
             "ct_ratio": 1, "power_protect": False, "relay": "closed", "band_source": "time"}
            for i in range(meters)
        ])
        opening = [LOW_OPENING if i % 50 == 49 else OPENING for i in range(meters)]
        conn.execute(insert(Account), [
            {"id": i + 1, "number": f"A{i:05d}", "tenant_name": f"Tenant {i}", "phone": "",
             "id_number": "", "notes": "", "status": "open", "balance": opening[i],
             "alarm_level": "normal", "opened_at": T0}
            for i in range(meters)
        ])
        conn.execute(insert(AccountMeter), [
            {"account_id": i + 1, "meter_id": i + 1, "attached_at": T0} for i in range(meters)
        ])
        conn.execute(insert(LedgerEntry), [
            {"account_id": i + 1, "kind": "transfer", "amount": opening[i],
             "balance_after": opening[i], "idempotency_key": f"bench-opening:{i + 1}",
             "note": "opening balance", "effective_at": T0, "recorded_at": T0}
            for i in range(meters)
        ])
        conn.execute(insert(MeterBilling), [
            {"meter_id": i + 1, "billed_at": T0, "billed_energy_kwh": Decimal("100.00"),
             "period": "2026-11", "period_energy_kwh": Decimal(0),
             "period_cost_exact": Decimal(0), "period_charged": Decimal(0)}
            for i in range(meters)
        ])
        for table in ("tariffs", "tariff_versions", "gateways", "meters", "accounts"):
            conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            ))
        conn.execute(text("ANALYZE"))
    return list(range(1, meters + 1))


def bench_charge_10k(url: str, meters: int = 10_000) -> float:
    """Seconds for one charge_readings call (one transaction, commit included) billing one new
    reading on each of `meters` meters; every 50th account runs into arrears (a trip command)."""
    ids = _bulk_site(url, meters)
    at = T0 + timedelta(minutes=15)
    # 0.40 to 3.99 kWh in the quarter hour; readings registered to 0.01 kWh.
    batch = [Reading(m, at, Decimal("100.00") + Decimal(40 + m * 37 % 360) / 100) for m in ids]
    started = time.perf_counter()
    with unit_of_work(url) as s:
        result = charge_readings(s, batch, policy=POLICY, now=at)
    elapsed = time.perf_counter() - started
    if len(result.charges) != meters or len(result.commands) != meters // 50:
        raise AssertionError(
            f"{len(result.charges)} charges and {len(result.commands)} trips for {meters} meters"
        )
    with unit_of_work(url) as s:  # the invariant still holds for every account
        off = s.scalar(
            select(func.count()).select_from(Account).where(
                Account.balance != select(func.sum(LedgerEntry.amount))
                .where(LedgerEntry.account_id == Account.id).scalar_subquery()
            )
        )
        if off:
            raise AssertionError(f"{off} accounts' balances differ from their ledgers")
    return elapsed


def _cashiers(
    url: str, admin_id: int, tag: str, cashiers: int, sales_each: int, mean_pause_s: float
) -> list[float]:
    """`cashiers` threads posting `sales_each` sales each at once; every sale's latency (s),
    its own transaction from begin to commit.

    Cashier c sells to its own ten accounts in turn and every fifth sale to one of three accounts
    all cashiers share; between two sales it pauses for a random time (exponential, mean
    `mean_pause_s`; 0 posts back to back).
    """
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(cashiers)

    def cashier(c: int) -> None:
        pauses = random.Random(c)
        start.wait()
        for n in range(sales_each):
            if mean_pause_s:
                time.sleep(pauses.expovariate(1 / mean_pause_s))
            account_id = 1 + (c + n) % 3 if n % 5 == 4 else 4 + c * 10 + n % 10
            began = time.perf_counter()
            with unit_of_work(url) as s:
                sales.sell(s, account_id=account_id, amount="50.00", payment_method="cash",
                           idempotency_key=f"{tag}-{c}-{n}", operator=s.get(Operator, admin_id),
                           now=T0 + timedelta(hours=1), policy=POLICY)
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=cashier, args=(c,)) for c in range(cashiers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(latencies) != cashiers * sales_each:
        raise AssertionError(f"{len(latencies)} of {cashiers * sales_each} sales posted")
    return latencies


def bench_sale_p99(
    url: str, cashiers: int = 20, sales_each: int = 50, mean_pause_s: float = 0.5
) -> float:
    """The 99th-percentile latency (ms) of a sale with `cashiers` cashiers selling at once,
    after a warm-up round (the connection pool filled, statements compiled) that is not
    measured. Uses the accounts set up by _bulk_site."""
    with unit_of_work(url) as s:
        admin = s.scalar(select(Operator).where(Operator.username == "bench"))
        if admin is None:  # one operator only: argon2 hashing takes 0.3 s
            admin = operators.create_operator(
                s, username="bench", password="bench-password", role="administrator", now=T0
            )
        admin_id = admin.id
    run = uuid.uuid4().hex[:8]
    _cashiers(url, admin_id, f"warm-up-{run}", cashiers, 3, 0.0)
    latencies = sorted(
        _cashiers(url, admin_id, f"sale-{run}", cashiers, sales_each, mean_pause_s)
    )
    return latencies[-(-len(latencies) * 99 // 100) - 1] * 1000


def main() -> None:
    print(f"bench billing_readings_per_s {bench_billing():.0f} readings/s", flush=True)
    print(f"bench meter_reads_per_s {asyncio.run(_bench_reads()):.0f} meters/s", flush=True)
    try:
        with pg_database() as url:
            print(f"bench billing_charge_10k_s {bench_charge_10k(url):.2f} s", flush=True)
            pause = float(os.environ.get("VOLTPAY_BENCH_SALE_PAUSE_S", "0.5"))
            print(f"bench sale_p99_ms {bench_sale_p99(url, mean_pause_s=pause):.1f} ms",
                  flush=True)
        with pg_database() as url:
            print_figures(bench_collector(url))
        with pg_database() as url:
            print_page_figures(bench_pages(url))
    except (NoPostgres, RuntimeError) as exc:  # influxd, a child process or a page that failed
        print(f"bench: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
