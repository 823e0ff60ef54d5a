"""The embedded time-series store: readings in the `ts_readings` table of the SQL database."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    case,
    delete,
    func,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from collector.archive import ARCHIVE_STEP_DAYS, DayRollup, archive_cut, merge_step
from collector.readings import EnergyGroup, MeterReading, StoreUnavailable
from collector.tsdb import (
    DaySpan,
    Mark,
    chunks,
    energy_by_group,
    energy_from_spans,
    group_value,
    later,
    local_day_starts,
)
from schema.db import get_engine
from schema.measurements import TAG_BUILDING, TAG_FLOOR, TAG_GATEWAY, TAG_UNIT
from schema.models import (
    Building,
    DailyReading,
    Floor,
    Gateway,
    Meter,
    Reading,
    ReadingDay,
    Unit,
)
from schema.types import Energy

# Rows per INSERT execution, and meters per query: well inside SQLite's 500-term compound SELECT
# and 32,766-variable limits and PostgreSQL's 65,535 parameters.
WRITE_BATCH = 1000
METER_BATCH = 200
# Meters per query of energy from day spans: within SQLite's 32,766 variables; more than this
# many are read through the days' index (ix_ts_day_spans_on_date) instead of meter by meter.
SPAN_BATCH = 30_000
SPAN_BY_METER = 2000


class SqlReadingStore:
    """ReadingStore on the `ts_readings` table, for SQLite and PostgreSQL.

    The engine comes from `schema.db.get_engine`, shared with the rest of the process; every call
    checks a connection out and returns it, so nothing is held between calls.

    Archived days live in `ts_daily` (see collector/archive.py). Every write also keeps each
    meter's first and last reading per local day of `tz` (the site's zone unless given) in
    `ts_day_spans`, which archiving leaves alone: energy per day in that zone is read from there,
    one row per meter and day. Energy in another zone reads ts_daily and the readings, so a day
    counts the same whether its readings are hot, archived, or partly each.
    """

    def __init__(self, database_url: str, *, tz: ZoneInfo | None = None) -> None:
        self._engine = get_engine(database_url)
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the SQL reading store needs SQLite or PostgreSQL, not {dialect}")
        self._dialect = dialect
        if tz is None:
            from voltpay.settings import get_settings

            tz = get_settings().tz
        self._tz = tz

    def write(self, readings: Sequence[MeterReading]) -> None:
        """Insert readings; a (meter, at) already stored keeps its first values.

        A database that cannot be reached or is busy raises StoreUnavailable."""
        if not readings:
            return
        insert = sqlite.insert if self._dialect == "sqlite" else postgresql.insert
        statement = insert(Reading).on_conflict_do_nothing(index_elements=["meter_id", "at"])
        try:
            with self._engine.begin() as conn:
                for batch in chunks(readings, WRITE_BATCH):
                    conn.execute(statement, [_row(reading) for reading in batch])
                _write_spans(conn, _spans_of(readings, self._tz))
        except (OperationalError, InterfaceError, DisconnectionError, PoolTimeout) as exc:
            reason = getattr(exc, "orig", None) or exc
            raise StoreUnavailable(f"the SQL reading store could not write: {reason}") from exc

    def readings(self, meter_id: int, start: datetime, end: datetime) -> list[MeterReading]:
        query = (
            select(
                Reading.meter_id,
                Reading.at,
                Reading.energy_kwh,
                Reading.power_kw,
                Reading.voltage_v,
                Reading.current_a,
                Reading.relay_closed,
            )
            .where(Reading.meter_id == meter_id, Reading.at >= start, Reading.at < end)
            .order_by(Reading.at)
        )
        with self._engine.connect() as conn:
            return [
                MeterReading(
                    meter_id=row.meter_id,
                    at=row.at,
                    energy_kwh=row.energy_kwh,
                    power_kw=row.power_kw,
                    voltage_v=row.voltage_v,
                    current_a=row.current_a,
                    relay_closed=row.relay_closed,
                )
                for row in conn.execute(query)
            ]

    def daily_energy(
        self, meter_ids: Sequence[int], start_on: date, end_on: date, tz: ZoneInfo
    ) -> dict[tuple[int, date], Decimal]:
        if end_on < start_on or not meter_ids:
            return {}
        if tz.key == self._tz.key:
            with self._engine.connect() as conn:
                return {
                    (meter_id, on): kwh
                    for batch in chunks(sorted(set(meter_ids)), SPAN_BATCH)
                    for meter_id, on, kwh in conn.execute(_span_energy(batch, start_on, end_on))
                }
        bounds = local_day_starts(start_on, end_on, tz)
        result: dict[tuple[int, date], Decimal] = {}
        with self._engine.connect() as conn:
            for batch in chunks(sorted(set(meter_ids)), METER_BATCH):
                before = _marks_before(conn, batch, bounds[0], start_on)
                spans = _day_spans(conn, batch, start_on, end_on, bounds)
                for meter_id in batch:
                    before_day = before.get(meter_id)
                    result.update(energy_from_spans(meter_id, before_day, spans[meter_id]))
        return result

    def daily_energy_by(
        self,
        group: EnergyGroup,
        start_on: date,
        end_on: date,
        tz: ZoneInfo,
        *,
        meters: Mapping[int, Mapping[str, str]] | None = None,
    ) -> dict[tuple[str, date], Decimal]:
        """Without `meters`, each meter is placed where the site tables put it now (its unit,
        the unit's floor and building), tagged as the collector tags its readings."""
        if meters is None:
            with self._engine.connect() as conn:
                meters = meter_tags(conn)
        if tz.key != self._tz.key or end_on < start_on:
            return energy_by_group(self, group, start_on, end_on, tz, meters)
        places = {
            meter_id: value
            for meter_id, tags in meters.items()
            if (value := group_value(group, meter_id, tags)) is not None
        }
        result: dict[tuple[str, date], Decimal] = {}
        with self._engine.connect() as conn:
            # Meters in batches, each summed per place and day in the database.
            for batch in chunks(sorted(places, key=lambda m: (places[m], m)), SPAN_BATCH):
                values = sorted({places[meter_id] for meter_id in batch})
                grouped: dict[str, list[int]] = {value: [] for value in values}
                for meter_id in batch:
                    grouped[places[meter_id]].append(meter_id)
                query = _span_energy_by(
                    list(grouped.values()), start_on, end_on, arrays=self._dialect == "postgresql"
                )
                for index, on, kwh in conn.execute(query):
                    key = (values[index], on)
                    result[key] = result.get(key, Decimal(0)) + kwh
        return result

    def archive(self, before: datetime, tz: ZoneInfo) -> int:
        """Move whole local days before `before` from ts_readings into ts_daily.

        Meters go in batches and days in steps, one transaction each: the step's readings are
        rolled up, merged with the step's archived rows (readings written since a day was
        archived), written to ts_daily and deleted, all or nothing. On PostgreSQL the step holds
        a lock that lets readers in but makes writers to ts_readings wait (SQLite's write lock
        does the same), so a reading written meanwhile is never deleted without being counted.
        """
        cut_on, cut_at = archive_cut(before, tz)
        removed = 0
        with self._engine.connect() as conn:
            meter_ids = _meters_with_readings(conn)
        for batch in chunks(meter_ids, METER_BATCH):
            with self._engine.connect() as conn:
                oldest = _marks(conn, batch, _oldest_reading)
                due = [m for m in batch if m in oldest and oldest[m].at < cut_at]
                if not due:
                    continue
                day = min(oldest[m].at for m in due).astimezone(tz).date()
                # Nothing of these meters before `day` is hot: the chain starts from ts_daily.
                last_archived = _marks(conn, due, partial(_last_archived, on_date=day))
                previous = {m: mark.energy_kwh for m, mark in last_archived.items()}
            while day < cut_on:
                last_day = min(day + timedelta(days=ARCHIVE_STEP_DAYS), cut_on) - timedelta(days=1)
                with self._engine.begin() as conn:
                    removed += self._archive_step(conn, due, day, last_day, tz, previous)
                day = last_day + timedelta(days=1)
        return removed

    def _archive_step(
        self,
        conn: Connection,
        meter_ids: Sequence[int],
        first_day: date,
        last_day: date,
        tz: ZoneInfo,
        previous: dict[int, Decimal],
    ) -> int:
        if self._dialect == "postgresql":
            conn.execute(text("LOCK TABLE ts_readings IN SHARE ROW EXCLUSIVE MODE"))
        bounds = local_day_starts(first_day, last_day, tz)
        fresh = {
            (rollup.meter_id, rollup.on_date): rollup
            for rollup in _raw_days(conn, meter_ids, first_day, bounds)
        }
        kept = {
            (rollup.meter_id, rollup.on_date): rollup
            for rollup in _archived_days(conn, meter_ids, first_day, last_day)
        }
        changed = merge_step(kept, fresh, previous)
        if changed:
            insert = sqlite.insert if self._dialect == "sqlite" else postgresql.insert
            statement = insert(DailyReading)
            statement = statement.on_conflict_do_update(
                index_elements=["meter_id", "on_date"],
                set_={
                    name: statement.excluded[name]
                    for name in DailyReading.__table__.columns.keys()  # noqa: SIM118
                    if name not in ("meter_id", "on_date")
                },
            )
            for batch in chunks(changed, WRITE_BATCH):
                conn.execute(statement, [_daily_row(rollup) for rollup in batch])
        conn.execute(
            delete(Reading).where(
                Reading.meter_id.in_(meter_ids), Reading.at >= bounds[0], Reading.at < bounds[-1]
            )
        )
        return sum(rollup.readings for rollup in fresh.values())

    def close(self) -> None:
        """Nothing to release: the engine is shared (see the class docstring)."""


def meter_tags(conn: Connection) -> dict[int, dict[str, str]]:
    """Every meter's place as the collector tags its readings: gateway, and unit, floor and
    building when the meter is in a unit. The `meters` argument of daily_energy_by."""
    query = (
        select(Meter.id, Gateway.name, Unit.number, Floor.name, Building.name)
        .join(Gateway, Meter.gateway_id == Gateway.id)
        .outerjoin(Unit, Meter.unit_id == Unit.id)
        .outerjoin(Floor, Unit.floor_id == Floor.id)
        .outerjoin(Building, Floor.building_id == Building.id)
    )
    result: dict[int, dict[str, str]] = {}
    for meter_id, gateway, unit, floor, building in conn.execute(query):
        tags = {TAG_GATEWAY: gateway}
        if unit is not None:
            tags.update({TAG_UNIT: unit, TAG_FLOOR: floor, TAG_BUILDING: building})
        result[meter_id] = tags
    return result


def rebuild_day_spans(conn: Connection, tz: ZoneInfo) -> None:
    """Fill ts_day_spans afresh in `tz` from what is stored: archived days, then the readings.

    For a database whose readings were written without it (the migration that adds the table,
    a site loaded in bulk)."""
    conn.execute(delete(ReadingDay))
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    conn.execute(
        insert(ReadingDay).from_select(
            [
                "meter_id",
                "on_date",
                "first_at",
                "first_energy_kwh",
                "last_at",
                "last_energy_kwh",
                "energy_kwh",
            ],
            select(
                DailyReading.meter_id,
                DailyReading.on_date,
                DailyReading.first_at,
                DailyReading.first_energy_kwh,
                DailyReading.last_at,
                DailyReading.last_energy_kwh,
                DailyReading.energy_kwh,
            ),
        )
    )
    for batch in chunks(_meters_with_readings(conn), METER_BATCH):
        first, last = conn.execute(
            select(func.min(Reading.at), func.max(Reading.at)).where(Reading.meter_id.in_(batch))
        ).one()
        start_on, end_on = first.astimezone(tz).date(), last.astimezone(tz).date()
        bounds = local_day_starts(start_on, end_on, tz)
        _write_spans(
            conn,
            {
                (rollup.meter_id, rollup.on_date): rollup.span
                for rollup in _raw_days(conn, batch, start_on, bounds)
            },
        )


def _spans_of(readings: Sequence[MeterReading], tz: ZoneInfo) -> dict[tuple[int, date], DaySpan]:
    """Each meter's first and last reading per local day; of readings at the same instant the
    first one counts, as it does in ts_readings."""
    spans: dict[tuple[int, date], DaySpan] = {}
    for reading in readings:
        key = (reading.meter_id, reading.at.astimezone(tz).date())
        mark = Mark(reading.at, reading.energy_kwh)
        span = spans.get(key)
        spans[key] = DaySpan(mark, mark) if span is None else span.merged(DaySpan(mark, mark))
    return spans


def _write_spans(conn: Connection, spans: Mapping[tuple[int, date], DaySpan]) -> None:
    """Widen the stored day spans to cover `spans` (new rows for new days), then count again
    the energy of each meter's days from the earliest one touched: a day's energy depends on
    its previous day's last value, so a late reading changes the next day's energy too."""
    if not spans:
        return
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    statement = insert(ReadingDay)
    new, old = statement.excluded, ReadingDay.__table__.c
    earlier, later_ = new.first_at < old.first_at, new.last_at > old.last_at
    statement = statement.on_conflict_do_update(
        index_elements=["meter_id", "on_date"],
        set_={
            "first_at": case((earlier, new.first_at), else_=old.first_at),
            "first_energy_kwh": case((earlier, new.first_energy_kwh), else_=old.first_energy_kwh),
            "last_at": case((later_, new.last_at), else_=old.last_at),
            "last_energy_kwh": case((later_, new.last_energy_kwh), else_=old.last_energy_kwh),
        },
    )
    rows = [
        {
            "meter_id": meter_id,
            "on_date": on_date,
            "first_at": span.first.at,
            "first_energy_kwh": span.first.energy_kwh,
            "last_at": span.last.at,
            "last_energy_kwh": span.last.energy_kwh,
            "energy_kwh": Decimal(0),  # counted below
        }
        for (meter_id, on_date), span in sorted(spans.items())
    ]
    for batch in chunks(rows, WRITE_BATCH):
        conn.execute(statement, list(batch))
    earliest: dict[int, date] = {}
    for meter_id, on_date in spans:
        earliest[meter_id] = min(on_date, earliest.get(meter_id, on_date))
    by_day: dict[date, list[int]] = {}
    for meter_id, on_date in sorted(earliest.items()):
        by_day.setdefault(on_date, []).append(meter_id)
    for on_date, meter_ids in by_day.items():
        for batch_ids in chunks(meter_ids, SPAN_BATCH):
            _count_energy(conn, batch_ids, on_date)


def _count_energy(conn: Connection, meter_ids: Sequence[int], from_on: date) -> None:
    """Each day's energy of these meters from `from_on` on, from the spans (one index seek per
    day for the previous one)."""
    earlier = aliased(ReadingDay)
    previous = (
        select(earlier.last_energy_kwh)
        .where(earlier.meter_id == ReadingDay.meter_id, earlier.on_date < ReadingDay.on_date)
        .order_by(earlier.on_date.desc())
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(
        update(ReadingDay)
        .where(ReadingDay.meter_id.in_(meter_ids), ReadingDay.on_date >= from_on)
        .values(
            energy_kwh=ReadingDay.last_energy_kwh
            - func.coalesce(previous, ReadingDay.first_energy_kwh)
        )
    )


def _span_energy(
    meter_ids: Sequence[int], start_on: date, end_on: date
) -> Select[int, date, Decimal]:
    """Energy per meter and day (meter id, day, kWh) from the day spans."""
    spans = ReadingDay
    return select(spans.meter_id, spans.on_date, spans.energy_kwh).where(
        spans.meter_id.in_(meter_ids), spans.on_date >= start_on, spans.on_date <= end_on
    )


def _span_energy_by(
    groups: Sequence[Sequence[int]], start_on: date, end_on: date, *, arrays: bool
) -> Select[int, date, Decimal]:
    """Energy per group of meters and day (the group's index, day, kWh) from the day spans.

    Many meters are read through the days' index (ix_ts_day_spans_on_date) rather than meter
    by meter. With `arrays` (PostgreSQL) which group each meter is in comes as two arrays,
    joined by hash; otherwise (SQLite) as a CASE of IN lists.
    """
    spans = ReadingDay
    in_range: list[ColumnElement[bool]] = [spans.on_date >= start_on, spans.on_date <= end_on]
    meter_ids = [meter_id for ids in groups for meter_id in ids]
    if len(meter_ids) <= SPAN_BY_METER:
        in_range.append(spans.meter_id.in_(meter_ids))
    kwh = type_coerce(func.sum(spans.energy_kwh), Energy())
    if arrays:
        places = (
            func.unnest(
                literal(meter_ids, ARRAY(Integer)),
                literal([index for index, ids in enumerate(groups) for _ in ids], ARRAY(Integer)),
            )
            .table_valued("meter_id", "place")
            .render_derived()
        )
        return (
            select(places.c.place, spans.on_date, kwh)
            .join_from(spans, places, places.c.meter_id == spans.meter_id)
            .where(*in_range)
            .group_by(places.c.place, spans.on_date)
        )
    group: ColumnElement[int] = case(
        *[
            (spans.meter_id.in_(ids), literal_column(str(index), Integer))
            for index, ids in enumerate(groups)
        ]
    )
    # Grouped in an outer query by the CASE's label; meters in no group are NULL there.
    days = select(group.label("place"), spans.on_date, spans.energy_kwh).where(*in_range).subquery()
    return (
        select(days.c.place, days.c.on_date, type_coerce(func.sum(days.c.energy_kwh), Energy()))
        .where(days.c.place.is_not(None))
        .group_by(days.c.place, days.c.on_date)
    )


def _row(reading: MeterReading) -> dict[str, Any]:
    return {
        "meter_id": reading.meter_id,
        "at": reading.at,
        "energy_kwh": reading.energy_kwh,
        "power_kw": reading.power_kw,
        "voltage_v": reading.voltage_v,
        "current_a": reading.current_a,
        "relay_closed": reading.relay_closed,
    }


def _daily_row(rollup: DayRollup) -> dict[str, Any]:
    return {
        "meter_id": rollup.meter_id,
        "on_date": rollup.on_date,
        "first_at": rollup.span.first.at,
        "last_at": rollup.span.last.at,
        "first_energy_kwh": rollup.span.first.energy_kwh,
        "last_energy_kwh": rollup.span.last.energy_kwh,
        "energy_kwh": rollup.energy_kwh,
        "readings": rollup.readings,
        "max_power_kw": rollup.max_power_kw,
    }


# --- one mark per meter -------------------------------------------------------------------------

# A query for one meter's mark: (at, energy_kwh), at most one row.
MarkQuery = Callable[[int], Select[datetime, Decimal]]


def _marks(conn: Connection, meter_ids: Sequence[int], query: MarkQuery) -> dict[int, Mark]:
    """One mark per meter, each found by `query` in a single statement.

    One index seek per meter (a LIMIT 1 subquery each): a GROUP BY with max(at) would read every
    earlier reading of the meter.
    """
    parts = []
    for meter_id in meter_ids:
        one = query(meter_id).subquery()
        parts.append(
            select(
                literal(meter_id, Integer).label("meter_id"),
                select(one.c[0]).scalar_subquery().label("at"),
                select(one.c[1]).scalar_subquery().label("energy_kwh"),
            )
        )
    rows = conn.execute(union_all(*parts))
    return {row.meter_id: Mark(row.at, row.energy_kwh) for row in rows if row.at is not None}


def _last_reading(meter_id: int, at: datetime) -> Select[datetime, Decimal]:
    return (
        select(Reading.at, Reading.energy_kwh)
        .where(Reading.meter_id == meter_id, Reading.at < at)
        .order_by(Reading.at.desc())
        .limit(1)
    )


def _oldest_reading(meter_id: int) -> Select[datetime, Decimal]:
    return (
        select(Reading.at, Reading.energy_kwh)
        .where(Reading.meter_id == meter_id)
        .order_by(Reading.at)
        .limit(1)
    )


def _last_archived(meter_id: int, on_date: date) -> Select[datetime, Decimal]:
    return (
        select(DailyReading.last_at, DailyReading.last_energy_kwh)
        .where(DailyReading.meter_id == meter_id, DailyReading.on_date < on_date)
        .order_by(DailyReading.on_date.desc())
        .limit(1)
    )


def _marks_before(
    conn: Connection, meter_ids: Sequence[int], at: datetime, on_date: date
) -> dict[int, Mark]:
    """Each meter's last register value before `at` (where the local day `on_date` begins),
    from its readings or its archived days, whichever is later."""
    hot = _marks(conn, meter_ids, partial(_last_reading, at=at))
    archived = _marks(conn, meter_ids, partial(_last_archived, on_date=on_date))
    result = {}
    for meter_id in meter_ids:
        mark = later(hot.get(meter_id), archived.get(meter_id))
        if mark is not None:
            result[meter_id] = mark
    return result


def _meters_with_readings(conn: Connection) -> list[int]:
    """The meters in ts_readings, by a loose index scan: one primary-key seek per meter instead
    of reading every row (neither database skips through an index by itself here)."""
    rows = conn.execute(
        text(
            "WITH RECURSIVE m(meter_id) AS ("
            " SELECT min(meter_id) FROM ts_readings"
            " UNION ALL"
            " SELECT (SELECT min(meter_id) FROM ts_readings WHERE meter_id > m.meter_id)"
            " FROM m WHERE m.meter_id IS NOT NULL"
            ") SELECT meter_id FROM m WHERE meter_id IS NOT NULL"
        )
    )
    return [int(meter_id) for (meter_id,) in rows]


# --- per-day spans ------------------------------------------------------------------------------


def _day_index(bounds: Sequence[datetime]) -> ColumnElement[int]:
    """The index i of the day bounds[i] <= Reading.at < bounds[i + 1], as a balanced tree of
    CASEs: about log2(days) comparisons per reading instead of one per day."""

    def span(low: int, high: int) -> ColumnElement[int]:
        if high - low == 1:
            return literal_column(str(low), Integer)
        middle = (low + high) // 2
        return case((Reading.at < bounds[middle], span(low, middle)), else_=span(middle, high))

    return span(0, len(bounds) - 1)


def _raw_days(
    conn: Connection, meter_ids: Sequence[int], start_on: date, bounds: Sequence[datetime]
) -> list[DayRollup]:
    """Each meter's readings on each local day that has some, rolled up.

    `bounds` are the UTC instants where the days begin (and the last one ends), so the day of a
    reading is the number of boundaries it has passed: the zone's rules stay in Python and the
    same SQL runs on SQLite and PostgreSQL.
    """
    in_range = (
        select(Reading.meter_id, Reading.at, Reading.power_kw, _day_index(bounds).label("day"))
        .where(Reading.meter_id.in_(meter_ids), Reading.at >= bounds[0], Reading.at < bounds[-1])
        .subquery()
    )
    per_day = (
        select(
            in_range.c.meter_id,
            in_range.c.day,
            func.min(in_range.c.at).label("first_at"),
            func.max(in_range.c.at).label("last_at"),
            func.count().label("readings"),
            func.max(in_range.c.power_kw).label("max_power_kw"),
        )
        .group_by(in_range.c.meter_id, in_range.c.day)
        .subquery()
    )
    first, last = aliased(Reading), aliased(Reading)
    query = (
        select(
            per_day.c.meter_id,
            per_day.c.day,
            per_day.c.first_at,
            first.energy_kwh,
            per_day.c.last_at,
            last.energy_kwh,
            per_day.c.readings,
            per_day.c.max_power_kw,
        )
        .join_from(
            per_day,
            first,
            (first.meter_id == per_day.c.meter_id) & (first.at == per_day.c.first_at),
        )
        .join(last, (last.meter_id == per_day.c.meter_id) & (last.at == per_day.c.last_at))
    )
    return [
        DayRollup(
            meter_id=meter_id,
            on_date=start_on + timedelta(days=index),
            span=DaySpan(Mark(first_at, first_kwh), Mark(last_at, last_kwh)),
            readings=readings,
            max_power_kw=max_power_kw,
        )
        for meter_id, index, first_at, first_kwh, last_at, last_kwh, readings, max_power_kw in (
            conn.execute(query)
        )
    ]


def _archived_days(
    conn: Connection, meter_ids: Sequence[int], start_on: date, end_on: date
) -> list[DayRollup]:
    query = select(DailyReading).where(
        DailyReading.meter_id.in_(meter_ids),
        DailyReading.on_date >= start_on,
        DailyReading.on_date <= end_on,
    )
    return [
        DayRollup(
            meter_id=row.meter_id,
            on_date=row.on_date,
            span=DaySpan(
                Mark(row.first_at, row.first_energy_kwh), Mark(row.last_at, row.last_energy_kwh)
            ),
            readings=row.readings,
            max_power_kw=row.max_power_kw,
            energy_kwh=row.energy_kwh,
        )
        for row in conn.execute(query)
    ]


def _day_spans(
    conn: Connection,
    meter_ids: Sequence[int],
    start_on: date,
    end_on: date,
    bounds: Sequence[datetime],
) -> dict[int, dict[date, DaySpan]]:
    """Each meter's first and last reading on each local day that has any, hot or archived."""
    spans: dict[int, dict[date, DaySpan]] = {meter_id: {} for meter_id in meter_ids}
    for rollup in _archived_days(conn, meter_ids, start_on, end_on):
        spans[rollup.meter_id][rollup.on_date] = rollup.span
    for rollup in _raw_days(conn, meter_ids, start_on, bounds):
        days = spans[rollup.meter_id]
        days[rollup.on_date] = rollup.span.merged(days.get(rollup.on_date))
    return spans
