"""Every dashboard page at 10,000 meters with a year of readings: `make bench` figures

- page_render_s.<page>: seconds for the page's first render in a new session of an administrator
  (the router's run included), through Streamlit's AppTest, with the page's default inputs; the
  energy analysis page also with the last 30 days of the whole site (`energy_30d`).
- page_render_max_s: the slowest of them.

The site (see `build_site`) is inserted into a temporary PostgreSQL database with set-based SQL,
not through the collector or billing: 10,000 meters, 90 days of hourly readings and daily rows
for the 275 days before them (what the product's own archiving leaves after a year), a year of
ledger entries. The process is warmed first (every page rendered once: imports, the engine and
the store client), then Streamlit's data caches are cleared, so each measured render queries the
database as a new session's first look at the page does.

`python -m voltpay.bench_pages` runs these figures alone on a temporary database.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection, insert, text

from billing.operators import create_operator
from billing.reports import local_midnight
from billing.tariffs import parse_spec, spec_to_data
from schema.db import get_engine, unit_of_work
from schema.models import Building, Floor, Gateway, Meter, Operator, Tariff, TariffVersionRow, Unit
from voltpay.demo import DEMO_TARIFF
from voltpay.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
MAIN_SCRIPT = ROOT / "app" / "main.py"
METERS = 10_000
PER_GATEWAY = 32
BUILDINGS, FLOORS = 10, 10
METERING_EVERY = 20  # every 20th meter only measures (a landlord's circuit), the rest are prepaid
NOT_OPENED_EVERY = 100  # every 100th prepaid meter has no account yet
HOT_DAYS = 90  # ARCHIVE_AFTER_DAYS: raw readings of the last 90 local days, daily rows before
YEAR_DAYS = 365
HOURLY_CHARGE_DAYS = 7  # hourly charges for the last 7 days, one charge per meter-day before
CASHIERS = 4
LOST_EVERY = 250  # every 250th meter has lost contact
PRICE_TENTHS = 9  # charges at 0.90 per kWh
# A shop's load per local hour, in units of 0.0001 kWh per hour for a rate of 1/100: night,
# opening hours, evening. A meter's rate is 50..199, so a shop uses 9-35 kWh a day.
SHAPE = [30] * 8 + [100] * 14 + [60] * 2
SHAPE_DAY = sum(SHAPE)
CUMULATIVE = [sum(SHAPE[:h]) for h in range(24)]
TIMEOUT_S = 120
ENERGY_RANGE_DAYS = 30
SAY = "bench:"


@dataclass(frozen=True)
class Dataset:
    admin_id: int
    today: date
    readings: int
    daily_rows: int
    ledger_entries: int
    build_s: float


def _say(message: str) -> None:
    print(f"{SAY} {message}", file=sys.stderr, flush=True)


# --- the site ----------------------------------------------------------------------------------

# Per meter m (1-based): rate 50..199, a register that started the year at 1,000 × (m % 50) kWh.
RATE = "(50 + (m * 37) % 150)"
BASE = "(10000000::bigint * (m % 50))"


def _energy(day: str, hour: str) -> str:
    """The register (0.0001 kWh) of meter m at the start of local hour `hour` of year day `day`."""
    cumulative = ",".join(str(c) for c in CUMULATIVE)
    return (f"({BASE} + {RATE}::bigint * (({day}) * {SHAPE_DAY} "
            f"+ (ARRAY[{cumulative}])[({hour}) + 1]))")


def _shape(hour: str) -> str:
    return f"(ARRAY[{','.join(str(s) for s in SHAPE)}])[({hour}) + 1]"


def build_site(url: str, now: datetime) -> Dataset:
    """The site at `now` after a year of operation, in bulk (PostgreSQL only):

    - 10 buildings × 10 floors × 100 units, one meter each (10,000) on 313 gateways of 32;
      every 20th meter a metering one (DTSD1352, 500), the rest prepaid (DTSY1352, 9,500), of
      which every 100th is not opened yet; 9,405 open accounts, one meter each. A TOU + tiered
      default tariff. 40 meters and one gateway out of contact.
    - Readings (ts_readings): hourly (COLLECT_INTERVAL_S=3600) for the last 90 local days up to
      now, about 21.5 million rows; the 275 days before are in ts_daily, one row per meter and
      day, as the archiving leaves them (2.75 million); the day spans the store keeps
      (ts_day_spans) for all 365 days.
    - Ledger: per open account a first sale at the year's start and one every 30 days after,
      one charge per meter and day, and hourly charges for the last 7 days (in production every
      reading is charged: a year of hourly charges would be 83 million rows, too many to build
      here). Balances are the running sums; accounts that stopped buying three months ago run
      into arrears, alarm levels follow.
    - charge_daily from the charges, each meter-day in four tariff bands as a TOU site has them;
      an audit row per sale; alarms and trip commands for the
      accounts in arrears.
    """
    started = time.perf_counter()
    tz = get_settings().tz
    today = now.astimezone(tz).date()
    year_on = today - timedelta(days=YEAR_DAYS - 1)
    hot_on = today - timedelta(days=HOT_DAYS - 1)
    year_at = local_midnight(year_on, tz)
    hot_at = local_midnight(hot_on, tz)
    end_at = now.replace(minute=0, second=0, microsecond=0)  # the last hourly reading
    with unit_of_work(url) as session:
        admin = create_operator(session, username="admin", password="bench-password",
                                role="administrator", now=year_at)
        session.flush()
        admin_id = admin.id
        password_hash = admin.password_hash
    engine = get_engine(url)
    with engine.begin() as conn:
        _site(conn, year_at, password_hash)
    _say(f"site inserted in {time.perf_counter() - started:.0f} s")
    params = {"tz": tz.key, "year_on": year_on, "hot_on": hot_on, "today": today,
              "year_at": _naive(year_at), "hot_at": _naive(hot_at), "end_at": _naive(end_at),
              "meters": METERS}
    local_hour = "extract(hour FROM (t AT TIME ZONE 'UTC') AT TIME ZONE :tz)::int"
    local_day = "(((t AT TIME ZONE 'UTC') AT TIME ZONE :tz)::date - :year_on)"
    with engine.begin() as conn, _indexes_built_after(conn, "ts_readings", primary_key=True):
        conn.execute(text(
            "INSERT INTO ts_readings (meter_id, at, energy_kwh, power_kw, voltage_v, current_a,"
            " relay_closed)"
            f" SELECT m, t, {_energy(local_day, local_hour)},"
            f" {RATE} * {_shape(local_hour)}, 2200000 + (m * 7 + k) % 200 * 1000,"
            f" {RATE} * {_shape(local_hour)} * 1000 / 220, true"
            " FROM generate_series(1, :meters) AS m,"
            " LATERAL (SELECT :hot_at + k * interval '1 hour' AS t, k"
            "  FROM generate_series(0, (extract(epoch FROM :end_at - :hot_at) / 3600)::int) k) s"
            " ORDER BY m, t"
        ), params)
    _say(f"readings inserted at {time.perf_counter() - started:.0f} s")
    with engine.begin() as conn:
        day_start = "((d + :year_on)::timestamp AT TIME ZONE :tz AT TIME ZONE 'UTC')"
        conn.execute(text(
            "INSERT INTO ts_daily (meter_id, on_date, first_at, last_at, first_energy_kwh,"
            " last_energy_kwh, energy_kwh, readings, max_power_kw)"
            f" SELECT m, :year_on + d, {day_start}, {day_start} + interval '23 hours',"
            f" {_energy('d', '0')}, {_energy('d', '23')},"
            f" CASE WHEN d = 0 THEN {RATE} * {CUMULATIVE[23]} ELSE {RATE} * {SHAPE_DAY} END,"
            f" 24, {RATE} * {max(SHAPE)}"
            " FROM generate_series(1, :meters) AS m,"
            " generate_series(0, :hot_on - :year_on - 1) AS d ORDER BY m, d"
        ), params)
        # Every day's first reading is at its local midnight, the last at 23:00 or the last
        # hour so far: the spans the store keeps as it writes (collector.tsdb_sql).
        last_at = f"least({day_start} + interval '23 hours', :end_at)"
        last_hour = f"extract(hour FROM ({last_at} AT TIME ZONE 'UTC') AT TIME ZONE :tz)::int"
        # Rows in the order the store appends them: a day's rows when its first readings come.
        conn.execute(text(
            "INSERT INTO ts_day_spans (meter_id, on_date, first_at, first_energy_kwh, last_at,"
            " last_energy_kwh, energy_kwh)"
            f" SELECT m, :year_on + d, {day_start}, {_energy('d', '0')}, {last_at},"
            f" {_energy('d', last_hour)}, {_energy('d', last_hour)} - CASE WHEN d = 0"
            f" THEN {_energy('d', '0')} ELSE {_energy('d - 1', '23')} END"
            " FROM generate_series(0, :today - :year_on) AS d,"
            " generate_series(1, :meters) AS m ORDER BY d, m"
        ), params)
    _say(f"daily rows and day spans inserted at {time.perf_counter() - started:.0f} s")
    with engine.begin() as conn, _indexes_built_after(conn, "ledger_entries"):
        _ledger(conn, params)
    _say(f"ledger inserted at {time.perf_counter() - started:.0f} s")
    with engine.begin() as conn:
        _after_ledger(conn, params, end_at)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        counts = [conn.scalar(text(f"SELECT count(*) FROM {table}"))
                  for table in ("ts_readings", "ts_daily", "ledger_entries")]
    elapsed = time.perf_counter() - started
    return Dataset(admin_id, today, int(counts[0] or 0), int(counts[1] or 0),
                   int(counts[2] or 0), elapsed)


@contextmanager
def _indexes_built_after(
    conn: Connection, table: str, *, primary_key: bool = False
) -> Iterator[None]:
    """Drop the table's indexes and unique constraints (and its primary key) for a bulk load and
    build them again, as they were, afterwards: building an index once is several times faster
    than keeping it up to date row by row."""
    kinds = ["u", "p"] if primary_key else ["u"]
    constraints = conn.execute(text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = CAST(:table AS regclass) AND contype = ANY(:kinds)"
    ), {"table": table, "kinds": kinds}).all()
    indexes = conn.execute(text(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = CAST(:table AS regclass) AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    ), {"table": table}).all()
    for name, _ in constraints:
        conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        conn.execute(text(f'DROP INDEX "{name}"'))
    yield
    for name, definition in constraints:
        conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    for _, definition in indexes:
        conn.execute(text(definition))


def _naive(at: datetime) -> datetime:
    """UTCDateTime columns hold naive UTC; raw SQL binds them so."""
    return at.astimezone(UTC).replace(tzinfo=None)


def _site(conn: Connection, t0: datetime, password_hash: str) -> None:
    gateways = (METERS + PER_GATEWAY - 1) // PER_GATEWAY
    units_each = METERS // (BUILDINGS * FLOORS)
    conn.execute(insert(Operator), [
        {"username": f"cashier{c}", "display_name": f"Cashier {c}", "password_hash": password_hash,
         "role": "cashier", "language": "en", "is_active": True, "failed_attempts": 0,
         "created_at": t0}
        for c in range(1, CASHIERS + 1)
    ])
    conn.execute(insert(Tariff), [{"id": 1, "name": "Commercial TOU", "kind": "tou_tiered",
                                   "is_default": True, "created_at": t0}])
    conn.execute(insert(TariffVersionRow), [{"tariff_id": 1, "effective_from": t0,
                                             "created_at": t0,
                                             "spec": spec_to_data(parse_spec(DEMO_TARIFF))}])
    conn.execute(insert(Building), [
        {"id": b + 1, "code": f"B{b:02d}", "name": f"Building {b + 1}"} for b in range(BUILDINGS)
    ])
    conn.execute(insert(Floor), [
        {"id": b * FLOORS + f + 1, "building_id": b + 1, "level": f + 1,
         "name": f"B{b + 1}-{f + 1}F"}
        for b in range(BUILDINGS) for f in range(FLOORS)
    ])
    conn.execute(insert(Unit), [
        {"id": i + 1, "floor_id": i // units_each + 1, "number": f"S{i + 1:05d}",
         "name": f"Shop {i + 1}"}
        for i in range(METERS)
    ])
    conn.execute(insert(Gateway), [
        {"id": g + 1, "name": f"GW{g + 1:04d}", "host": f"10.0.{g // 250}.{g % 250 + 1}",
         "port": 502, "transport": "tcp", "timeout_s": 1, "retries": 1, "gap_ms": 0,
         "baudrate": 9600, "enabled": True}
        for g in range(gateways)
    ])
    conn.execute(insert(Meter), [
        {"id": m, "serial": f"M{m:05d}",
         "profile": "acrel_dtsd1352" if m % METERING_EVERY == 0 else "acrel_dtsy1352",
         "gateway_id": (m - 1) // PER_GATEWAY + 1, "bus_address": (m - 1) % PER_GATEWAY + 1,
         "unit_id": m, "ct_ratio": 1, "power_protect": False, "relay": "closed",
         "band_source": "time"}
        for m in range(1, METERS + 1)
    ])
    for table in ("tariffs", "tariff_versions", "buildings", "floors", "units", "gateways",
                  "meters"):
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                          f" (SELECT max(id) FROM {table}))"))


# Accounts: one per opened prepaid meter, numbered like the meter.
OPENED = f"m % {METERING_EVERY} <> 0 AND m % {NOT_OPENED_EVERY} <> 1"


def _ledger(conn: Connection, params: dict[str, object]) -> None:
    conn.execute(text(
        "INSERT INTO accounts (id, number, tenant_name, phone, id_number, notes, status, balance,"
        " alarm_level, opened_at)"
        " SELECT m, 'A' || lpad(m::text, 5, '0'), 'Tenant ' || m, '138' || lpad(m::text, 8, '0'),"
        " '', '', 'open', 0, 'normal', :year_at"
        f" FROM generate_series(1, :meters) AS m WHERE {OPENED}"
    ), params)
    conn.execute(text(
        "INSERT INTO account_meters (account_id, meter_id, attached_at)"
        " SELECT id, id, :year_at FROM accounts ORDER BY id"
    ), params)
    # Every account buys at the year's start and then once a month, at 10:00 local time; an
    # account with m % 50 = 7 stopped three months ago. A month's sale covers about 1.3 months.
    sale_at = ("(((:year_on + n * 30)::timestamp + interval '10 hours') AT TIME ZONE :tz"
               " AT TIME ZONE 'UTC' + (m % 240) * interval '1 minute')")
    methods = "(ARRAY['cash','card','transfer','online'])[m % 4 + 1]"
    conn.execute(text(
        "CREATE TEMP TABLE bench_entries ON COMMIT DROP AS"
        f" SELECT m AS account_id, 'sale' AS kind, {RATE} * {SHAPE_DAY} * 40 * {PRICE_TENTHS}"
        " / 10 / 10000 * 10000 + 1000000 AS amount, NULL::int AS meter_id, NULL::bigint AS energy,"
        f" {sale_at} AS at, 'sale:' || m || ':' || n AS key, {methods} AS method"
        " FROM accounts a, generate_series(0, 12) AS n, LATERAL (SELECT a.id AS m) x"
        " WHERE :year_on + n * 30 <= :today"
        "  AND NOT (m % 50 = 7 AND :year_on + n * 30 > :today - 90)"
        " UNION ALL"
        # One charge per meter and local day, at the day's last hour, until the hourly ones.
        f" SELECT m, 'charge', -{RATE} * {SHAPE_DAY} * {PRICE_TENTHS} / 10, m,"
        f" {RATE} * {SHAPE_DAY},"
        " ((:year_on + d)::timestamp + interval '23 hours') AT TIME ZONE :tz AT TIME ZONE 'UTC',"
        " 'charge:' || m || ':' || extract(epoch FROM ((:year_on + d)::timestamp"
        "  + interval '23 hours') AT TIME ZONE :tz)::bigint, NULL"
        " FROM accounts a, generate_series(0, :today - :year_on - 8) AS d,"
        " LATERAL (SELECT a.id AS m) x"
        " UNION ALL"
        f" SELECT m, 'charge', -{RATE} * {_shape('h')} * {PRICE_TENTHS} / 10, m,"
        f" {RATE} * {_shape('h')}, t, 'charge:' || m || ':' || extract(epoch FROM t)::bigint,"
        " NULL"
        " FROM accounts a, LATERAL (SELECT a.id AS m) x,"
        " LATERAL (SELECT :hot_at + k * interval '1 hour' AS t, k FROM generate_series("
        "  (extract(epoch FROM ((:today - 7)::timestamp AT TIME ZONE :tz AT TIME ZONE 'UTC')"
        "   - :hot_at) / 3600)::int + 1,"
        "  (extract(epoch FROM :end_at - :hot_at) / 3600)::int) AS k) s,"
        " LATERAL (SELECT extract(hour FROM (t AT TIME ZONE 'UTC') AT TIME ZONE :tz)::int - 1"
        "  AS h0) hh, LATERAL (SELECT (h0 + 24) % 24 AS h) hour"
    ), params)
    # Receipts are numbered per local day in the order of sale, as ledger.next_receipt_no does.
    conn.execute(text(
        "INSERT INTO ledger_entries (account_id, kind, amount, balance_after, idempotency_key,"
        " meter_id, energy_kwh, price_per_kwh, payment_method, receipt_no, operator_id, note,"
        " effective_at, recorded_at)"
        " SELECT account_id, kind, amount,"
        "  sum(amount) OVER (PARTITION BY account_id ORDER BY at, key ROWS UNBOUNDED PRECEDING),"
        f"  key, meter_id, energy, CASE WHEN kind = 'charge' THEN {PRICE_TENTHS * 1000} END,"
        "  method, CASE WHEN kind = 'sale' THEN to_char((at AT TIME ZONE 'UTC') AT TIME ZONE :tz,"
        "  'YYYYMMDD') || '-' || lpad(row_number() OVER (PARTITION BY kind,"
        "  ((at AT TIME ZONE 'UTC') AT TIME ZONE :tz)::date ORDER BY at, key)::text, 4, '0') END,"
        f"  CASE WHEN kind = 'sale' THEN 2 + account_id % {CASHIERS} END, '', at, at"
        " FROM bench_entries ORDER BY at, key"
    ), params)


def _after_ledger(conn: Connection, params: dict[str, object], end_at: datetime) -> None:
    """Balances, alarm levels and relays from the ledger; what goes with them."""
    conn.execute(text(
        "UPDATE accounts a SET balance = s.total,"
        " alarm_level = CASE WHEN s.total <= 0 THEN 'arrears' WHEN s.total < 200000 THEN 'alarm2'"
        "  WHEN s.total < 500000 THEN 'alarm1' ELSE 'normal' END"
        " FROM (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) s"
        " WHERE s.account_id = a.id"
    ))
    conn.execute(text(
        "UPDATE meters m SET relay = CASE WHEN a.alarm_level = 'arrears' THEN 'open'"
        " ELSE 'closed' END"
        " FROM account_meters am JOIN accounts a ON a.id = am.account_id WHERE am.meter_id = m.id"
    ))
    conn.execute(text(
        "UPDATE meters m SET last_reading_at = r.at, last_energy_kwh = r.energy_kwh,"
        " last_power_kw = r.power_kw FROM ts_readings r WHERE r.meter_id = m.id AND r.at = :end_at"
    ), params)
    lost = _naive(end_at - timedelta(days=2))
    conn.execute(text(
        f"UPDATE meters SET lost_since = :lost WHERE id % {LOST_EVERY} = 0"
    ), {"lost": lost})
    conn.execute(text("UPDATE gateways SET last_contact_at = :at"), {"at": _naive(end_at)})
    conn.execute(text("UPDATE gateways SET lost_since = :lost WHERE id = 7"), {"lost": lost})
    conn.execute(text(
        "INSERT INTO meter_billing (meter_id, billed_at, billed_energy_kwh, period,"
        " period_energy_kwh, period_cost_exact, period_charged)"
        " SELECT am.meter_id, m.last_reading_at, m.last_energy_kwh,"
        " to_char((:end_at AT TIME ZONE 'UTC') AT TIME ZONE :tz, 'YYYY-MM'), 0, 0, 0"
        " FROM account_meters am JOIN meters m ON m.id = am.meter_id"
    ), params)
    # A time-of-use site: each meter-day's charges in four bands (sharp 1, peak 3, flat 2 and
    # valley 4 tenths), four rows a meter and day as billing writes them.
    conn.execute(text(
        "INSERT INTO charge_daily (meter_id, on_date, band, energy_kwh, cost)"
        " SELECT c.meter_id, c.on_date, b.band, c.energy * b.tenths / 10, c.cost * b.tenths / 10"
        " FROM (SELECT meter_id, ((effective_at AT TIME ZONE 'UTC') AT TIME ZONE :tz)::date"
        "  AS on_date, sum(energy_kwh) * 1000000 AS energy, -sum(amount) * 1000000 AS cost"
        "  FROM ledger_entries WHERE kind = 'charge' GROUP BY 1, 2) c"
        " CROSS JOIN (VALUES ('sharp', 1), ('peak', 3), ('flat', 2), ('valley', 4))"
        "  AS b(band, tenths)"
    ), params)
    conn.execute(text(
        "INSERT INTO audit_log (at, operator_id, actor, action, target, detail)"
        " SELECT l.effective_at, l.operator_id, 'cashier' || (l.operator_id - 1), 'sale',"
        " a.number, json_build_object('amount', (l.amount / 10000.0)::text,"
        " 'receipt_no', l.receipt_no)"
        " FROM ledger_entries l JOIN accounts a ON a.id = l.account_id WHERE l.kind = 'sale'"
        " ORDER BY l.id"
    ))
    conn.execute(text(
        "INSERT INTO alarms (kind, meter_id, account_id, raised_at, value, detail, ack_note)"
        " SELECT 'arrears', am.meter_id, a.id, :end_at, (a.balance / 10000.0)::text, '', ''"
        " FROM accounts a JOIN account_meters am ON am.account_id = a.id"
        " WHERE a.alarm_level = 'arrears'"
    ), params)
    conn.execute(text(
        "INSERT INTO commands (meter_id, kind, state, reason, created_at, expires_at, attempts,"
        " sent_at, completed_at, result)"
        " SELECT am.meter_id, 'trip', 'confirmed', 'arrears', :end_at,"
        " :end_at + interval '10 minutes', 1, :end_at, :end_at, ''"
        " FROM accounts a JOIN account_meters am ON am.account_id = a.id"
        " WHERE a.alarm_level = 'arrears'"
    ), params)
    for table in ("accounts", "account_meters", "ledger_entries", "audit_log", "alarms",
                  "commands"):
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                          f" (SELECT max(id) FROM {table}))"))


# --- rendering ---------------------------------------------------------------------------------


@contextmanager
def dashboard_on(url: str) -> Iterator[None]:
    """The dashboard's settings pointed at `url`, with the embedded reading store."""
    saved = {key: os.environ.get(key) for key in ("DATABASE_URL", "TIMESERIES_URL")}
    os.environ["DATABASE_URL"] = url
    os.environ["TIMESERIES_URL"] = ""
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def _open(admin_id: int) -> object:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(MAIN_SCRIPT), default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = admin_id
    at.session_state["operator_username"] = "admin"
    return at.run()


def render_times(admin_id: int, today: date) -> dict[str, float]:
    """Seconds of each page's first render in a new administrator session, by page module."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.nav import screens

    # Session state set and caches cleared between runs, as here, warn that no script is
    # running, each time; it is meant.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").disabled = True

    pages = [screen.module for screen in screens()]

    def render(module: str) -> tuple[float, AppTest]:
        at = _open(admin_id)
        assert isinstance(at, AppTest)
        at.switch_page(f"screens/{module}.py")
        started = time.perf_counter()
        at.run()
        took = time.perf_counter() - started
        if at.exception:
            raise RuntimeError(f"page {module}: {at.exception[0].message}")
        return took, at

    def energy_30d(at: AppTest) -> float:
        start_on = today - timedelta(days=ENERGY_RANGE_DAYS - 1)
        at.date_input(key="energy_range").set_value((start_on, today))
        started = time.perf_counter()
        at.run()
        took = time.perf_counter() - started
        if at.exception:
            raise RuntimeError(f"energy, 30 days: {at.exception[0].message}")
        if len(at.dataframe[0].value) != ENERGY_RANGE_DAYS:
            raise RuntimeError("energy, 30 days: the page did not show 30 days")
        return took

    for module in pages:  # warm-up: imports, the engine, the store client
        _, at = render(module)
        if module == "energy":
            energy_30d(at)
    st.cache_data.clear()
    times: dict[str, float] = {}
    for module in pages:
        times[module], at = render(module)
        if module == "energy":
            st.cache_data.clear()  # the 30 days are not the default week's cached answer
            times["energy_30d"] = energy_30d(at)
    return times


def bench_pages(url: str) -> dict[str, float]:
    _say("pages: load average before the run " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    dataset = build_site(url, datetime.now(UTC))
    _say(f"dataset built in {dataset.build_s:.0f} s: {dataset.readings:,} readings, "
         f"{dataset.daily_rows:,} daily rows, {dataset.ledger_entries:,} ledger entries")
    with dashboard_on(url):
        return render_times(dataset.admin_id, dataset.today)


def print_figures(times: dict[str, float]) -> None:
    for page, took in times.items():
        print(f"bench page_render_s.{page} {took:.2f} s", flush=True)
    print(f"bench page_render_max_s {max(times.values()):.2f} s", flush=True)


def main() -> None:
    from voltpay.bench import NoPostgres, pg_database
    from voltpay.bench_collector import _terminate_as_exit

    try:
        with _terminate_as_exit(), pg_database() as url:
            print_figures(bench_pages(url))
    except (NoPostgres, RuntimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
