"""The embedded time-series store: readings in the `ts_readings` table of the SQL database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Integer, case, func, literal, literal_column, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from collector.readings import MeterReading
from collector.tsdb import chunks, energy_per_day, local_day_starts
from schema.db import get_engine
from schema.models import Reading

# Rows per INSERT execution, and meters per query: well inside SQLite's 500-term compound SELECT
# and 32,766-variable limits and PostgreSQL's 65,535 parameters.
WRITE_BATCH = 1000
METER_BATCH = 200


class SqlReadingStore:
    """ReadingStore on the `ts_readings` table, for SQLite and PostgreSQL.

    The engine comes from `schema.db.get_engine`, shared with the rest of the process; every call
    checks a connection out and returns it, so nothing is held between calls.
    """

    def __init__(self, database_url: str) -> None:
        self._engine = get_engine(database_url)
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"the SQL reading store needs SQLite or PostgreSQL, not {dialect}")
        self._dialect = dialect

    def write(self, readings: Sequence[MeterReading]) -> None:
        """Insert readings; a (meter, at) already stored keeps its first values."""
        if not readings:
            return
        insert = sqlite.insert if self._dialect == "sqlite" else postgresql.insert
        statement = insert(Reading).on_conflict_do_nothing(index_elements=["meter_id", "at"])
        with self._engine.begin() as conn:
            for batch in chunks(readings, WRITE_BATCH):
                conn.execute(statement, [_row(reading) for reading in batch])

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
        bounds = local_day_starts(start_on, end_on, tz)
        result: dict[tuple[int, date], Decimal] = {}
        with self._engine.connect() as conn:
            for batch in chunks(sorted(set(meter_ids)), METER_BATCH):
                before = _last_before(conn, batch, bounds[0])
                spans = _day_spans(conn, batch, start_on, bounds)
                for meter_id in batch:
                    result.update(energy_per_day(meter_id, before.get(meter_id), spans[meter_id]))
        return result

    def close(self) -> None:
        """Nothing to release: the engine is shared (see the class docstring)."""


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


def _last_before(conn: Connection, meter_ids: Sequence[int], at: datetime) -> dict[int, Decimal]:
    """Each meter's last energy value before `at`.

    One index seek per meter (a LIMIT 1 subquery each) in a single statement: a GROUP BY with
    max(at) would read every earlier reading of the meter.
    """
    parts = [
        select(
            literal(meter_id, Integer).label("meter_id"),
            select(Reading.energy_kwh)
            .where(Reading.meter_id == meter_id, Reading.at < at)
            .order_by(Reading.at.desc())
            .limit(1)
            .scalar_subquery()
            .label("energy_kwh"),
        )
        for meter_id in meter_ids
    ]
    rows = conn.execute(union_all(*parts))
    return {row.meter_id: row.energy_kwh for row in rows if row.energy_kwh is not None}


def _day_spans(
    conn: Connection, meter_ids: Sequence[int], start_on: date, bounds: Sequence[datetime]
) -> dict[int, dict[date, tuple[Decimal, Decimal]]]:
    """Each meter's first and last energy value on each local day that has readings.

    `bounds` are the UTC instants where the days begin (and the last one ends), so the day of a
    reading is the number of boundaries it has passed: the zone's rules stay in Python and the
    same SQL runs on SQLite and PostgreSQL.
    """
    day: ColumnElement[int] = (
        case(
            *[
                (Reading.at < bound, literal_column(str(index), Integer))
                for index, bound in enumerate(bounds[1:-1])
            ],
            else_=literal_column(str(len(bounds) - 2), Integer),
        )
        if len(bounds) > 2
        else literal_column("0", Integer)
    )
    in_range = (
        select(Reading.meter_id, Reading.at, day.label("day"))
        .where(Reading.meter_id.in_(meter_ids), Reading.at >= bounds[0], Reading.at < bounds[-1])
        .subquery()
    )
    per_day = (
        select(
            in_range.c.meter_id,
            in_range.c.day,
            func.min(in_range.c.at).label("first_at"),
            func.max(in_range.c.at).label("last_at"),
        )
        .group_by(in_range.c.meter_id, in_range.c.day)
        .subquery()
    )
    first, last = aliased(Reading), aliased(Reading)
    query = (
        select(per_day.c.meter_id, per_day.c.day, first.energy_kwh, last.energy_kwh)
        .join_from(
            per_day,
            first,
            (first.meter_id == per_day.c.meter_id) & (first.at == per_day.c.first_at),
        )
        .join(last, (last.meter_id == per_day.c.meter_id) & (last.at == per_day.c.last_at))
    )
    spans: dict[int, dict[date, tuple[Decimal, Decimal]]] = {meter_id: {} for meter_id in meter_ids}
    for meter_id, index, first_kwh, last_kwh in conn.execute(query):
        spans[meter_id][date.fromordinal(start_on.toordinal() + index)] = (first_kwh, last_kwh)
    return spans
