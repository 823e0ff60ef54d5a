"""Report queries (报表中心): energy and cost per day, metering meters, reading history, sales.

Read side only: nothing here writes. Every function that reads the database checks that the
operator may view. Money is summed in SQL over the stored integer minor units
(schema.types.ScaledDecimal), so every total is exact; days, months and years are the site's local
ones, turned into UTC bounds here so the same SQL runs on SQLite and PostgreSQL.

Reports that need the time-series store come in two steps: `*_query(session, ...)` reads the
database and returns a query object, and a function taking that object and the store reads the
store — after the caller's transaction has ended. The embedded store reads the same SQLite
database through its own connection, and a SQLite transaction holds the write lock from BEGIN
(schema.db), so reading the store inside the session's transaction would wait for itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    SQLColumnExpression,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from billing import operators
from billing.errors import BillingError, NotFound
from billing.tariffs import BANDS
from collector.profiles import ProfileError, load_profile
from collector.readings import EnergyGroup, MeterReading, ReadingStore
from schema.measurements import TAG_BUILDING, TAG_FLOOR, TAG_UNIT
from schema.models import (
    Account,
    Building,
    ChargeDaily,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    Operator,
    Unit,
)

ZERO = Decimal("0")
MAX_ANALYSIS_DAYS = 366
MAX_READING_DAYS = 31
TREND_DAYS = 7  # the trend line is the moving average of this many days
CHARGED = Decimal("0.0001")  # charges carry 4 places
BAND_ORDER = (*BANDS, "")  # sharp … deep valley, then one-rate charges


def local_midnight(on: date, tz: ZoneInfo) -> datetime:
    """The UTC instant where the local day `on` begins."""
    return datetime.combine(on, time(0), tzinfo=tz).astimezone(UTC)


def _check_range(start_on: date, end_on: date, max_days: int) -> None:
    if end_on < start_on:
        raise BillingError("The end date is before the start date")
    if (end_on - start_on).days + 1 > max_days:
        raise BillingError(f"Choose at most {max_days} days")


def _bucket(
    column: SQLColumnExpression[datetime], bounds: Sequence[datetime]
) -> ColumnElement[int]:
    """The index i of the span bounds[i] <= column < bounds[i + 1] (the caller keeps the column
    within bounds[0] .. bounds[-1]), as a balanced tree of CASEs: about log2(spans) comparisons
    per row instead of one per span, so a year of days stays cheap on millions of entries."""

    def span(low: int, high: int) -> ColumnElement[int]:
        if high - low == 1:
            return literal_column(str(low), Integer)
        middle = (low + high) // 2
        return case((column < bounds[middle], span(low, middle)), else_=span(middle, high))

    return span(0, len(bounds) - 1)


# --- places: buildings, floors, units ------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    id: int
    name: str
    parent_id: int | None  # the floor's building, the unit's floor


@dataclass(frozen=True)
class Places:
    buildings: list[Place]
    floors: list[Place]
    units: list[Place]


def places(session: Session, *, operator: Operator | None) -> Places:
    """Every building, floor and unit, in the order the site lists them."""
    operators.require(operator, "view")
    buildings = [
        Place(id_, name, None)
        for id_, name in session.execute(select(Building.id, Building.name).order_by(Building.code))
    ]
    floors = [
        Place(id_, name, parent)
        for id_, name, parent in session.execute(
            select(Floor.id, Floor.name, Floor.building_id).order_by(Floor.building_id, Floor.level)
        )
    ]
    units = [
        Place(id_, number, parent)
        for id_, number, parent in session.execute(
            select(Unit.id, Unit.number, Unit.floor_id).order_by(Unit.number)
        )
    ]
    return Places(buildings, floors, units)


@dataclass(frozen=True)
class Scope:
    """Where to look: the whole site, or a building, a floor or a unit. The deepest one given
    counts; the report is split by the level below it (a unit is split by its meters)."""

    building_id: int | None = None
    floor_id: int | None = None
    unit_id: int | None = None

    @property
    def group(self) -> EnergyGroup:
        if self.unit_id is not None:
            return "meter"
        if self.floor_id is not None:
            return "unit"
        if self.building_id is not None:
            return "floor"
        return "building"

    def filters(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.building_id is not None:
            found.append(Building.id == self.building_id)
        if self.floor_id is not None:
            found.append(Floor.id == self.floor_id)
        if self.unit_id is not None:
            found.append(Unit.id == self.unit_id)
        return found


# The id that keys each group, its label, and the order groups are listed in.
_GROUPS: dict[str, tuple[Any, Any, Any]] = {
    "building": (Building.id, Building.name, Building.code),
    "floor": (Floor.id, Floor.name, Floor.level),
    "unit": (Unit.id, Unit.number, Unit.number),
    "meter": (Meter.id, Meter.serial, Meter.serial),
}


def _placed(query: Any, base: Any = None, meter_id: Any = None) -> Any:
    """The query from `base` (whose `meter_id` names a meter), or from the meters, joined
    through each meter's unit and floor to its building."""
    if base is not None:
        query = query.select_from(base).join(Meter, Meter.id == meter_id)
    else:
        query = query.select_from(Meter)
    return (
        query.join(Unit, Unit.id == Meter.unit_id)
        .join(Floor, Floor.id == Unit.floor_id)
        .join(Building, Building.id == Floor.building_id)
    )


# --- energy analysis -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupTotal:
    key: int  # the building, floor, unit or meter id
    label: str
    energy_kwh: Decimal
    cost: Decimal
    previous_energy_kwh: Decimal
    previous_cost: Decimal


@dataclass(frozen=True)
class DayTotal:
    on: date
    energy_kwh: Decimal
    cost: Decimal
    trend_kwh: Decimal  # mean of this day and the TREND_DAYS - 1 before it
    trend_cost: Decimal
    # Per group id: (energy, cost) of this day; groups without either are left out.
    by_group: Mapping[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    # Per tariff band ('' for one-rate tariffs): charged (energy, cost), in BAND_ORDER.
    by_band: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True)
class EnergyAnalysis:
    group: EnergyGroup
    start_on: date
    end_on: date
    previous_start_on: date
    previous_end_on: date
    groups: list[GroupTotal]
    days: list[DayTotal]

    @property
    def energy_kwh(self) -> Decimal:
        return sum((g.energy_kwh for g in self.groups), ZERO)

    @property
    def cost(self) -> Decimal:
        return sum((g.cost for g in self.groups), ZERO)

    @property
    def previous_energy_kwh(self) -> Decimal:
        return sum((g.previous_energy_kwh for g in self.groups), ZERO)

    @property
    def previous_cost(self) -> Decimal:
        return sum((g.previous_cost for g in self.groups), ZERO)


def change_pct(current: Decimal, previous: Decimal) -> Decimal | None:
    """Percentage change from the previous period, one decimal; None when it had nothing."""
    if previous == 0:
        return None
    return ((current - previous) * 100 / previous).quantize(Decimal("0.1"))


def _scope_meters(
    session: Session, scope: Scope
) -> tuple[dict[int, dict[str, str]], dict[int, tuple[str, Any]]]:
    """The scope's meters tagged for the time-series store by group id, and each group's label
    and sort key. Meters outside any unit belong to no building and are left out."""
    key, label, order = _GROUPS[scope.group]
    rows = session.execute(
        _placed(select(Meter.id, Unit.id, Floor.id, Building.id, key, label, order))
        .where(*scope.filters())
    )
    meters: dict[int, dict[str, str]] = {}
    labels: dict[int, tuple[str, Any]] = {}
    for meter_id, unit_id, floor_id, building_id, group_id, group_label, sort in rows:
        meters[meter_id] = {
            TAG_UNIT: str(unit_id), TAG_FLOOR: str(floor_id), TAG_BUILDING: str(building_id)
        }
        labels[group_id] = (group_label, sort)
    return meters, labels


# Below this estimated share of the ledger, entries are reached through the (account, kind,
# effective_at) index; above it the ledger is read straight through (see _effective_at).
INDEX_SHARE = 0.1


def _ledger_share(session: Session, start_at: datetime, end_at: datetime) -> float:
    """Roughly what share of the ledger is effective in start_at .. end_at, taking entries as
    spread evenly between the first and the last (two primary-key lookups)."""
    first = session.scalar(select(LedgerEntry.effective_at).order_by(LedgerEntry.id).limit(1))
    last = session.scalar(select(LedgerEntry.effective_at).order_by(LedgerEntry.id.desc()).limit(1))
    if first is None or last is None:
        return 0.0
    first, last = min(first, last), max(first, last)
    span = max(last - first, timedelta(days=1))
    overlap = min(end_at, last + timedelta(days=1)) - max(start_at, first)
    return max(overlap / span, 0.0)


def _effective_at(indexed: bool) -> ColumnElement[datetime]:
    """LedgerEntry.effective_at for a WHERE clause, as a bare column the database may look up
    in an index (effective_at, or SQLite's skip-scan of (account, kind, effective_at)), or as
    an expression it cannot.

    Through an index each entry costs a table lookup: much faster for a day, several times
    slower than reading the table through once for a year. SQLite's statistics cannot tell the
    two apart, so the caller decides from _ledger_share.
    """
    column = LedgerEntry.effective_at
    if indexed:
        return column.expression
    return type_coerce(func.coalesce(column, column), column.type)


def daily_charges(
    session: Session, scope: Scope, first_on: date, end_on: date
) -> dict[tuple[int, date, str], tuple[Decimal, Decimal]]:
    """Charged energy and cost of the scope's meters per (group id, local day, tariff band),
    from the daily totals billing keeps as it charges (`charge_daily`): one indexed range,
    however long the ledger."""
    key = _GROUPS[scope.group][0]
    rows = session.execute(
        _placed(
            select(
                key, ChargeDaily.on_date, ChargeDaily.band,
                func.sum(ChargeDaily.energy_kwh), func.sum(ChargeDaily.cost),
            ),
            ChargeDaily,
            ChargeDaily.meter_id,
        )
        .where(ChargeDaily.on_date >= first_on, ChargeDaily.on_date <= end_on, *scope.filters())
        .group_by(key, ChargeDaily.on_date, ChargeDaily.band)
    )
    return {(group_id, on, band): (kwh, cost) for group_id, on, band, kwh, cost in rows}


@dataclass(frozen=True)
class EnergyQuery:
    """What energy_analysis reads from the time-series store, with the ledger's part already
    read: made by `energy_query`, which checks the operator may view."""

    group: EnergyGroup
    start_on: date
    end_on: date
    tz: ZoneInfo
    days: tuple[date, ...]  # the previous period (and the trend's lead-in), then the period
    meters: Mapping[int, Mapping[str, str]]  # meter id -> tags placing it by group id
    labels: Mapping[int, str]  # group id -> label, in the order the site lists them
    cost: Mapping[tuple[int, date], Decimal]  # charged per (group id, local day)
    # Charged energy and cost per (local day, tariff band), the scope's groups together.
    bands: Mapping[tuple[date, str], tuple[Decimal, Decimal]] = field(default_factory=dict)


def energy_query(
    session: Session,
    *,
    operator: Operator | None,
    scope: Scope,
    start_on: date,
    end_on: date,
    tz: ZoneInfo,
) -> EnergyQuery:
    """The ledger's part of an energy analysis of the local days start_on .. end_on and the
    same number of days before them (the previous period)."""
    operators.require(operator, "view")
    _check_range(start_on, end_on, MAX_ANALYSIS_DAYS)
    length = (end_on - start_on).days + 1
    # The previous period, and enough days before the start for the first days' trend window.
    first_on = start_on - timedelta(days=max(length, TREND_DAYS - 1))
    days = tuple(first_on + timedelta(days=k) for k in range((end_on - first_on).days + 1))
    meters, labels = _scope_meters(session, scope)
    cost: dict[tuple[int, date], Decimal] = defaultdict(lambda: ZERO)
    bands: dict[tuple[date, str], tuple[Decimal, Decimal]] = {}
    if meters:
        for (group_id, on, band), (kwh, money) in daily_charges(
            session, scope, days[0], end_on
        ).items():
            cost[group_id, on] += money
            band_kwh, band_money = bands.get((on, band), (ZERO, ZERO))
            bands[on, band] = (band_kwh + kwh, band_money + money)
    order = sorted(labels, key=lambda group_id: (labels[group_id][1], group_id))
    return EnergyQuery(
        group=scope.group, start_on=start_on, end_on=end_on, tz=tz, days=days, meters=meters,
        labels={group_id: labels[group_id][0] for group_id in order},
        cost={key: money.quantize(CHARGED) for key, money in cost.items()},
        bands={key: (kwh.quantize(CHARGED), money.quantize(CHARGED))
               for key, (kwh, money) in bands.items()},
    )


def energy_analysis(query: EnergyQuery, store: ReadingStore) -> EnergyAnalysis:
    """Energy (from the time-series store) and cost (from the charges) per local day of the
    scope, split by the level below it and by tariff band, with the previous period of the
    same length. A day without readings counts 0 kWh: its energy shows on the meter's next day
    with readings."""
    start_on, end_on = query.start_on, query.end_on
    length = (end_on - start_on).days + 1
    previous_start_on = start_on - timedelta(days=length)
    energy: dict[tuple[int, date], Decimal] = {}
    if query.meters:
        by_tag = store.daily_energy_by(
            query.group, query.days[0], end_on, query.tz, meters=query.meters
        )
        energy = {(int(key), on): kwh for (key, on), kwh in by_tag.items()}
    zero = (ZERO, ZERO)
    current: dict[int, tuple[Decimal, Decimal]] = defaultdict(lambda: zero)
    previous: dict[int, tuple[Decimal, Decimal]] = defaultdict(lambda: zero)
    cells: dict[date, dict[int, tuple[Decimal, Decimal]]] = defaultdict(dict)
    for group_id, on in set(energy) | set(query.cost):
        cell = (energy.get((group_id, on), ZERO), query.cost.get((group_id, on), ZERO))
        cells[on][group_id] = cell
        totals = current if on >= start_on else previous if on >= previous_start_on else None
        if totals is not None:
            kwh, money = totals[group_id]
            totals[group_id] = (kwh + cell[0], money + cell[1])
    groups = [
        GroupTotal(
            key=group_id,
            label=label,
            energy_kwh=current[group_id][0],
            cost=current[group_id][1],
            previous_energy_kwh=previous[group_id][0],
            previous_cost=previous[group_id][1],
        )
        for group_id, label in query.labels.items()
    ]
    day_energy = {on: sum((c[0] for c in cells[on].values()), ZERO) for on in query.days}
    day_cost = {on: sum((c[1] for c in cells[on].values()), ZERO) for on in query.days}
    shown = []
    for index, on in enumerate(query.days):
        if on < start_on:
            continue
        window = query.days[max(0, index - TREND_DAYS + 1) : index + 1]
        shown.append(
            DayTotal(
                on=on,
                energy_kwh=day_energy[on],
                cost=day_cost[on],
                trend_kwh=sum((day_energy[d] for d in window), ZERO) / len(window),
                trend_cost=sum((day_cost[d] for d in window), ZERO) / len(window),
                by_group={g: cells[on][g] for g in query.labels if g in cells[on]},
                by_band={band: query.bands[on, band] for band in BAND_ORDER
                         if (on, band) in query.bands},
            )
        )
    return EnergyAnalysis(
        group=query.group,
        start_on=start_on,
        end_on=end_on,
        previous_start_on=previous_start_on,
        previous_end_on=start_on - timedelta(days=1),
        groups=groups,
        days=shown,
    )


# --- meters: choosing one, metering meters ------------------------------------------------------


@dataclass(frozen=True)
class MeterChoice:
    id: int
    serial: str
    unit: str | None
    unit_name: str | None
    gateway: str
    profile: str


def _meter_choices(session: Session, *conditions: ColumnElement[bool]) -> list[MeterChoice]:
    rows = session.execute(
        select(Meter.id, Meter.serial, Unit.number, Unit.name, Gateway.name, Meter.profile)
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(*conditions)
        .order_by(Meter.serial)
    )
    return [MeterChoice(*row) for row in rows]


def find_meters(
    session: Session, *, operator: Operator | None, text: str, limit: int = 50
) -> list[MeterChoice]:
    """Meters whose serial, unit number or unit name contains `text` (any case), by serial."""
    operators.require(operator, "view")
    needle = f"%{text.strip().lower()}%"
    rows = session.execute(
        select(Meter.id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(
            or_(
                func.lower(Meter.serial).like(needle),
                func.lower(Unit.number).like(needle),
                func.lower(Unit.name).like(needle),
            )
        )
        .order_by(Meter.serial)
        .limit(limit)
    )
    ids = [meter_id for (meter_id,) in rows]
    return _meter_choices(session, Meter.id.in_(ids)) if ids else []


def is_metering(profile: str) -> bool:
    """Whether meters of this profile only measure (not prepaid); an unknown profile is not."""
    try:
        return load_profile(profile).kind == "metering"
    except (ProfileError, OSError):
        return False


def metering_meters(session: Session, *, operator: Operator | None) -> list[MeterChoice]:
    """The meters whose profile is a metering one (no prepaid control), by serial."""
    operators.require(operator, "view")
    profiles = [p for (p,) in session.execute(select(Meter.profile).distinct()) if is_metering(p)]
    return _meter_choices(session, Meter.profile.in_(profiles)) if profiles else []


@dataclass(frozen=True)
class MeteringRow:
    meter: MeterChoice
    model: str
    # The register when the range began (the last reading before it, or the first in it) and
    # at the last reading in the range; energy_kwh = end_kwh - start_kwh. Registers are None
    # when the range's last day has been archived (only its day total is kept).
    start_kwh: Decimal | None
    end_kwh: Decimal | None
    energy_kwh: Decimal | None  # None: no reading in the range
    last_reading_at: datetime | None


@dataclass(frozen=True)
class MeteringQuery:
    """The metering meters and the local days whose energy metering_energy reads from the
    time-series store: made by `metering_query`, which checks the operator may view."""

    meters: tuple[MeterChoice, ...]
    start_on: date
    end_on: date
    tz: ZoneInfo


def metering_query(
    session: Session, *, operator: Operator | None, start_on: date, end_on: date, tz: ZoneInfo
) -> MeteringQuery:
    _check_range(start_on, end_on, MAX_ANALYSIS_DAYS)
    meters = metering_meters(session, operator=operator)
    return MeteringQuery(tuple(meters), start_on, end_on, tz)


def metering_energy(query: MeteringQuery, store: ReadingStore) -> list[MeteringRow]:
    """Energy of every metering meter (circuit) over the local days start_on .. end_on: the
    store's daily energy added up, and the register at the range's last reading."""
    if not query.meters:
        return []
    tz = query.tz
    per_day = store.daily_energy([m.id for m in query.meters], query.start_on, query.end_on, tz)
    energy: dict[int, Decimal] = defaultdict(lambda: ZERO)
    last_day: dict[int, date] = {}
    for (meter_id, on), kwh in per_day.items():
        energy[meter_id] += kwh
        last_day[meter_id] = max(on, last_day.get(meter_id, on))
    rows = []
    for meter in query.meters:
        if meter.id not in last_day:
            rows.append(MeteringRow(meter, _model(meter.profile), None, None, None, None))
            continue
        on = last_day[meter.id]
        # Only the last day's readings: the energy is already known from the daily figures.
        day = store.readings(
            meter.id, local_midnight(on, tz), local_midnight(on + timedelta(days=1), tz)
        )
        last = day[-1] if day else None
        end_kwh = last.energy_kwh if last else None
        rows.append(
            MeteringRow(
                meter=meter,
                model=_model(meter.profile),
                start_kwh=None if end_kwh is None else end_kwh - energy[meter.id],
                end_kwh=end_kwh,
                energy_kwh=energy[meter.id],
                last_reading_at=last.at if last else None,
            )
        )
    return rows


def _model(profile: str) -> str:
    try:
        return load_profile(profile).model
    except (ProfileError, OSError):
        return profile


@dataclass(frozen=True)
class ReadingQuery:
    """One meter and the UTC instants bounding the local days asked for: made by
    `reading_query`, which checks the operator may view."""

    meter: MeterChoice
    start_at: datetime
    end_at: datetime


def reading_query(
    session: Session,
    *,
    operator: Operator | None,
    meter_id: int,
    start_on: date,
    end_on: date,
    tz: ZoneInfo,
) -> ReadingQuery:
    operators.require(operator, "view")
    _check_range(start_on, end_on, MAX_READING_DAYS)
    found = _meter_choices(session, Meter.id == meter_id)
    if not found:
        raise NotFound(f"Meter {meter_id} does not exist")
    return ReadingQuery(
        found[0], local_midnight(start_on, tz), local_midnight(end_on + timedelta(days=1), tz)
    )


def reading_history(query: ReadingQuery, store: ReadingStore) -> list[MeterReading]:
    """The meter's readings over the days asked for, oldest first. Days already archived
    (数据转存) keep only their day totals, so they have no readings here."""
    return store.readings(query.meter.id, query.start_at, query.end_at)


# --- sales reports -------------------------------------------------------------------------------

SalesPeriod = Literal["day", "month", "year"]
SALES_PERIODS: tuple[SalesPeriod, ...] = ("day", "month", "year")


def period_days(period: SalesPeriod, on: date) -> tuple[date, date]:
    """The first and last local day of the day, month or year that contains `on`."""
    if period == "day":
        return on, on
    if period == "month":
        first = on.replace(day=1)
        following = date(on.year + on.month // 12, on.month % 12 + 1, 1)
        return first, following - timedelta(days=1)
    if period == "year":
        return date(on.year, 1, 1), date(on.year, 12, 31)
    raise ValueError(f"a sales report is daily, monthly or yearly, not {period!r}")


def _sub_period_starts(period: SalesPeriod, start_on: date, end_on: date) -> list[date]:
    """Where the report's lines begin: the period itself for a day, its days for a month, its
    months for a year."""
    if period == "day":
        return [start_on]
    if period == "month":
        return [start_on + timedelta(days=k) for k in range((end_on - start_on).days + 1)]
    return [date(start_on.year, month, 1) for month in range(1, 13)]


@dataclass(frozen=True)
class SalesLine:
    """Money over the counter for one payment method or one operator. `refunds` is what was
    paid out (positive); `reversals` is signed: a reversed sale takes money back out."""

    key: str
    sales_count: int = 0
    sales: Decimal = ZERO
    refunds_count: int = 0
    refunds: Decimal = ZERO
    reversals_count: int = 0
    reversals: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        return self.sales - self.refunds + self.reversals


@dataclass(frozen=True)
class Movements:
    """Every ledger movement of a stretch of time, by kind; `charges` is what meters used
    (positive), `transfers` is signed."""

    sales: Decimal = ZERO
    refunds: Decimal = ZERO
    reversals: Decimal = ZERO
    charges: Decimal = ZERO
    transfers: Decimal = ZERO
    sales_count: int = 0
    refunds_count: int = 0
    reversals_count: int = 0
    charges_count: int = 0

    @property
    def net_sales(self) -> Decimal:
        return self.sales - self.refunds + self.reversals

    @property
    def change(self) -> Decimal:
        """What the balances moved by: sales - refunds ± reversals - charges ± transfers."""
        return self.net_sales - self.charges + self.transfers


@dataclass(frozen=True)
class SubPeriod:
    start_on: date  # a day of a monthly report, the first day of a month of a yearly one
    opening: Decimal
    movements: Movements

    @property
    def closing(self) -> Decimal:
        return self.opening + self.movements.change


@dataclass(frozen=True)
class SalesReport:
    period: SalesPeriod
    start_on: date
    end_on: date  # the last day, included
    # Σ of every account's ledger before the period, and after it.
    opening: Decimal
    totals: Movements
    by_method: list[SalesLine]
    by_operator: list[SalesLine]
    lines: list[SubPeriod]

    @property
    def closing(self) -> Decimal:
        return self.opening + self.totals.change


def _movements(rows: Sequence[tuple[str, int, Decimal]]) -> Movements:
    """Movements from (kind, count, Σ amount) rows."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for kind, count, amount in rows:
        counts[kind] += count
        sums[kind] += amount
    return Movements(
        sales=sums["sale"],
        refunds=-sums["refund"],
        reversals=sums["reversal"],
        charges=-sums["charge"],
        transfers=sums["transfer"],
        sales_count=counts["sale"],
        refunds_count=counts["refund"],
        reversals_count=counts["reversal"],
        charges_count=counts["charge"],
    )


def _lines(rows: Sequence[tuple[str, str, int, Decimal]]) -> list[SalesLine]:
    """SalesLines from (key, kind, count, Σ amount) rows of sales, refunds and reversals."""
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    for key, kind, count, amount in rows:
        line = values[key]
        if kind == "sale":
            line["sales_count"] = line.get("sales_count", 0) + count
            line["sales"] = line.get("sales", ZERO) + amount
        elif kind == "refund":
            line["refunds_count"] = line.get("refunds_count", 0) + count
            line["refunds"] = line.get("refunds", ZERO) - amount
        elif kind == "reversal":
            line["reversals_count"] = line.get("reversals_count", 0) + count
            line["reversals"] = line.get("reversals", ZERO) + amount
    return [SalesLine(key, **fields) for key, fields in sorted(values.items())]


def sales_report(
    session: Session,
    *,
    operator: Operator | None,
    period: SalesPeriod,
    on: date,
    tz: ZoneInfo,
) -> SalesReport:
    """The daily, monthly or yearly sales (financial) report of the period containing `on`.

    opening = Σ of every account's entries effective before the period; closing = opening + Σ
    of the period's entries, so opening + sales - refunds ± reversals - charges ± transfers =
    closing to the last 0.0001. Times are the entries' effective times in the site's zone.
    """
    operators.require(operator, "view")
    start_on, end_on = period_days(period, on)
    starts = _sub_period_starts(period, start_on, end_on)
    bounds = [local_midnight(d, tz) for d in [*starts, end_on + timedelta(days=1)]]
    original = aliased(LedgerEntry)
    in_period = _effective_at(_ledger_share(session, bounds[0], bounds[-1]) < INDEX_SHARE)
    # A reversal goes back over the counter the way the sale or refund it undoes came. Looked
    # up only for entries that reference one: a join made PostgreSQL hash the whole ledger.
    reversed_method = (
        select(original.payment_method)
        .where(original.id == LedgerEntry.reference_id)
        .scalar_subquery()
    )
    entries = (
        select(
            LedgerEntry.kind,
            case(
                (LedgerEntry.reference_id.is_(None), LedgerEntry.payment_method),
                else_=func.coalesce(LedgerEntry.payment_method, reversed_method),
            ).label("method"),
            LedgerEntry.operator_id,
            _bucket(LedgerEntry.effective_at, bounds).label("line"),
            LedgerEntry.amount,
        )
        .where(in_period >= bounds[0], in_period < bounds[-1])
        .subquery()
    )
    grouped = select(
        entries.c.kind,
        entries.c.method,
        entries.c.operator_id,
        entries.c.line,
        func.count().label("entries"),
        func.sum(entries.c.amount).label("amount"),
    ).group_by(entries.c.kind, entries.c.method, entries.c.operator_id, entries.c.line)
    # Σ balances - Σ entries from the start is Σ entries before the start (balance == Σ entries
    # holds for every account), read from the period onwards instead of the whole history.
    # In the same statement as the period's entries: one snapshot on PostgreSQL as well, so a
    # sale posted meanwhile is in both or in neither.
    later = _effective_at(_ledger_share(session, bounds[0], datetime.max.replace(tzinfo=UTC))
                          < INDEX_SHARE)
    after_start = (
        select(func.coalesce(func.sum(LedgerEntry.amount), 0))
        .where(later >= bounds[0])
        .scalar_subquery()
    )
    balances = select(func.coalesce(func.sum(Account.balance), 0)).scalar_subquery()
    opening_row = select(
        literal("opening").label("kind"),
        literal(None).label("method"),
        literal(None).label("operator_id"),
        literal(None).label("line"),
        literal(0).label("entries"),
        (balances - after_start).label("amount"),
    )
    rows = session.execute(union_all(grouped, opening_row)).all()
    opening = ZERO
    by_line: dict[int, list[tuple[str, int, Decimal]]] = defaultdict(list)
    by_method: list[tuple[str, str, int, Decimal]] = []
    by_operator: list[tuple[int | None, str, int, Decimal]] = []
    for kind, method, operator_id, line, count, amount in rows:
        if kind == "opening":
            opening = amount
            continue
        by_line[line].append((kind, count, amount))
        if kind in ("sale", "refund", "reversal"):
            by_method.append((method or "", kind, count, amount))
            by_operator.append((operator_id, kind, count, amount))
    lines = []
    running = opening
    for index, start in enumerate(starts):
        movements = _movements(by_line.get(index, []))
        lines.append(SubPeriod(start, running, movements))
        running += movements.change
    names = _operator_names(session, {oid for oid, *_ in by_operator if oid is not None})
    return SalesReport(
        period=period,
        start_on=start_on,
        end_on=end_on,
        opening=opening,
        totals=_movements([row for rows_ in by_line.values() for row in rows_]),
        by_method=_lines(by_method),
        by_operator=_lines(
            [(names.get(oid, "") if oid else "", kind, n, amount)
             for oid, kind, n, amount in by_operator]
        ),
        lines=lines,
    )


def _operator_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(Operator.id, Operator.username, Operator.display_name).where(Operator.id.in_(ids))
    )
    return {
        id_: username if not display or display == username else f"{display} ({username})"
        for id_, username, display in rows
    }

