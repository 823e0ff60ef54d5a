"""The site as operators configure it (系统设置): buildings → floors → units (户号), gateways
(通讯管理机) and meters.

Every change is validated first — each field with a message naming it, then the rules between
records (unique names, one meter per bus address, at most 32 meters on a bus) — and written with
its audit row in the caller's transaction, so a refused change saves nothing. Something still in
use is never deleted: the refusal says what uses it.

The field rules (`*_FIELDS`) are shared with the bulk importer (billing/importer.py), so a value
refused in a form is refused in a sheet with the same words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, operators
from billing.errors import BillingError, NotFound
from collector.profiles import load_all_profiles
from schema.models import (
    Account,
    AccountMeter,
    Alarm,
    Building,
    Command,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    MeterBilling,
    MeterReplacement,
    Operator,
    Tariff,
    Unit,
)

PERMISSION = "configure"
MAX_METERS_PER_GATEWAY = 32  # RS-485: at most 32 unit loads on one bus
TRANSPORTS = ("tcp", "rtu-over-tcp", "serial")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_YES = ("yes", "y", "true", "1", "是", "启用", "on")
_NO = ("no", "n", "false", "0", "否", "停用", "off")


# --- Reading plain values (form text, spreadsheet cells) into typed ones -----------------------


@dataclass(frozen=True)
class Problem:
    """One field's problem: `field` is the field's key (the importer maps it to a column)."""

    field: str
    message: str


class InvalidInput(BillingError):
    """One or more fields are wrong; each problem names its field."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(" ".join(problem.message for problem in self.problems))


def is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def shown(value: object) -> str:
    """A value as the user typed it, for a message (Excel's 5.0 is the user's 5)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


Parser = Callable[[object], Any]


def text(max_length: int) -> Parser:
    def parse(value: object) -> str:
        result = shown(value)
        if len(result) > max_length:
            raise ValueError(f"can have at most {max_length} characters")
        return result

    return parse


def no_spaces(max_length: int) -> Parser:
    def parse(value: object) -> str:
        result = text(max_length)(value)
        if any(ch.isspace() for ch in result):
            raise ValueError(f"cannot contain spaces, not '{result}'")
        return result

    return parse


def whole(low: int, high: int) -> Parser:
    def parse(value: object) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str | Decimal):
            try:
                exact = Decimal(str(value).strip())
                if exact.is_finite() and exact == exact.to_integral_value():
                    number = int(exact)
            except InvalidOperation:
                pass
        if number is None or not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, not '{shown(value)}'")
        return number

    return parse


def one_of_numbers(choices: Sequence[int]) -> Parser:
    listed = ", ".join(map(str, choices))

    def parse(value: object) -> int:
        try:
            number = whole(min(choices), max(choices))(value)
        except ValueError:
            number = None
        if number not in choices:
            raise ValueError(f"must be one of {listed}, not '{shown(value)}'")
        return number

    return parse


def amount(places: int, *, high: Decimal | None = None, zero_allowed: bool = False) -> Parser:
    def parse(value: object) -> Decimal:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, not '{value}'")
        raw = repr(value) if isinstance(value, float) else str(value).strip().replace(",", "")
        try:
            number = Decimal(raw)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ValueError(f"must be a number, not '{shown(value)}'")
        if number != number.quantize(Decimal(1).scaleb(-places)):
            raise ValueError(f"can have at most {places} decimal places, not '{shown(value)}'")
        if number < 0 or (number == 0 and not zero_allowed):
            floor = "0 or more" if zero_allowed else "greater than 0"
            raise ValueError(f"must be {floor}, not '{shown(value)}'")
        if high is not None and number > high:
            raise ValueError(f"can be at most {high}, not '{shown(value)}'")
        return number.quantize(Decimal(1).scaleb(-places))

    return parse


def choice(choices: Sequence[str]) -> Parser:
    listed = ", ".join(choices)

    def parse(value: object) -> str:
        result = shown(value)
        folded = {c.lower(): c for c in choices}
        if result.lower() not in folded:
            raise ValueError(f"must be one of {listed}, not '{result}'")
        return folded[result.lower()]

    return parse


def flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    answer = shown(value).lower()
    if answer in _YES:
        return True
    if answer in _NO:
        return False
    raise ValueError(f"must be yes or no, not '{shown(value)}'")


@lru_cache(maxsize=1)
def _profile_names() -> tuple[str, ...]:
    # The shipped profile files do not change while the process runs (the collector caches
    # them too); a sheet of 10,000 meters asks 10,000 times.
    return tuple(sorted(load_all_profiles()))


def profile_choice(value: object) -> str:
    known = _profile_names()
    result = shown(value)
    if result not in known:
        raise ValueError(f"must be one of {', '.join(known)}, not '{result}'")
    return result


@dataclass(frozen=True)
class FieldSpec:
    label: str  # English, as messages use it
    parse: Parser
    required: bool = False
    default: object = None  # used when the value is left blank


def parse_fields(
    specs: Mapping[str, FieldSpec], values: Mapping[str, object]
) -> tuple[dict[str, Any], list[Problem]]:
    """The typed value of every field in `specs` (the default where blank), and the problems.
    A field with a problem is left out of the values."""
    parsed: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, spec in specs.items():
        raw = values.get(key)
        if is_blank(raw):
            if spec.required:
                problems.append(Problem(key, f"{spec.label} is required"))
            else:
                parsed[key] = spec.default
            continue
        try:
            parsed[key] = spec.parse(raw)
        except ValueError as exc:
            problems.append(Problem(key, f"{spec.label} {exc}"))
    return parsed, problems


BUILDING_FIELDS = {
    "code": FieldSpec("Building code", no_spaces(32), required=True),
    "name": FieldSpec("Building name", text(100), required=True),
}
FLOOR_FIELDS = {
    # Below ground is negative: B1 is -1.
    "level": FieldSpec("Floor level", whole(-20, 300), required=True),
    "name": FieldSpec("Floor name", text(100), required=True),
}
UNIT_FIELDS = {
    "number": FieldSpec("Unit number", no_spaces(32), required=True),
    "name": FieldSpec("Unit name", text(100), default=""),
    "area_m2": FieldSpec("Area (m²)", amount(2, high=Decimal("1000000"))),
}
GATEWAY_FIELDS = {
    "name": FieldSpec("Gateway name", text(64), required=True),
    "host": FieldSpec("Host", no_spaces(255), required=True),
    "port": FieldSpec("Port", whole(1, 65535), default=502),
    "transport": FieldSpec("Transport", choice(TRANSPORTS), default="tcp"),
    "timeout_s": FieldSpec("Timeout (s)", amount(3, high=Decimal(60)), default=Decimal("1.000")),
    "retries": FieldSpec("Retries", whole(0, 10), default=1),
    "gap_ms": FieldSpec("Gap (ms)", whole(0, 10000), default=0),
    "baudrate": FieldSpec("Baud rate", one_of_numbers(BAUDRATES), default=9600),
    "interval_s": FieldSpec("Collection interval (s)", whole(10, 86400)),  # blank: site default
    "enabled": FieldSpec("Enabled", flag, default=True),
}
METER_FIELDS = {
    "serial": FieldSpec("Meter serial", no_spaces(64), required=True),
    "profile": FieldSpec("Profile", profile_choice, required=True),
    "bus_address": FieldSpec("Bus address", whole(1, 247), required=True),
    "ct_ratio": FieldSpec("CT ratio", whole(1, 10000), default=1),
    "price_per_kwh": FieldSpec("Price per kWh", amount(4, high=Decimal(100))),
    "alarm1_amount": FieldSpec("Alarm 1 amount", amount(2, high=Decimal(1000000))),
    "alarm2_amount": FieldSpec("Alarm 2 amount", amount(2, high=Decimal(1000000))),
    "overload_kw": FieldSpec("Overload (kW)", amount(3, high=Decimal(100000))),
}


def meter_rules(values: Mapping[str, Any], *, has_tariff: bool) -> list[Problem]:
    """Rules between a meter's own fields."""
    problems = []
    alarm1, alarm2 = values.get("alarm1_amount"), values.get("alarm2_amount")
    if alarm1 is not None and alarm2 is not None and alarm2 >= alarm1:
        problems.append(Problem(
            "alarm2_amount",
            f"Alarm 2 amount ({alarm2}) must be lower than alarm 1 amount ({alarm1}): "
            "alarm 2 is the last warning before arrears",
        ))
    if has_tariff and values.get("price_per_kwh") is not None:
        problems.append(Problem(
            "price_per_kwh",
            "Give either a tariff or a price per kWh, not both (a price on the meter would "
            "override the tariff)",
        ))
    return problems


def profiles() -> list[str]:
    """The device profiles a meter can use (collector/profiles/*.yaml)."""
    return list(_profile_names())


def _valid(specs: Mapping[str, FieldSpec], values: Mapping[str, object]) -> dict[str, Any]:
    parsed, problems = parse_fields(specs, values)
    if problems:
        raise InvalidInput(problems)
    return parsed


def _apply(record: object, values: Mapping[str, Any]) -> dict[str, str]:
    """Set the values on the record; what changed, as the audit row keeps it."""
    changes = {}
    for key, value in values.items():
        before = getattr(record, key)
        if before != value:
            changes[key] = f"{'' if before is None else before} → {'' if value is None else value}"
            setattr(record, key, value)
    return changes


def _flush(session: Session) -> None:
    """Write now, so a clash someone else committed meanwhile is refused here, not at commit."""
    try:
        session.flush()
    except IntegrityError:
        raise BillingError(
            "Someone changed the same records at the same time; reload the page and try again"
        ) from None


def _get(session: Session, model: type[Any], record_id: int, what: str) -> Any:
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"{what} {record_id} does not exist (deleted meanwhile?)")
    return record


# --- Buildings ---------------------------------------------------------------------------------


def _check_building(session: Session, values: Mapping[str, Any], building_id: int | None) -> None:
    clash = session.scalar(
        select(Building.id).where(Building.code == values["code"], Building.id != building_id)
    )
    if clash is not None:
        raise InvalidInput([Problem("code", f"Building code {values['code']} is already used")])


def create_building(
    session: Session, values: Mapping[str, object], *, operator: Operator | None, now: datetime
) -> Building:
    operators.require(operator, PERMISSION)
    parsed = _valid(BUILDING_FIELDS, values)
    _check_building(session, parsed, None)
    building = Building(**parsed)
    session.add(building)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="building.create",
                 target=building.code, name=building.name)
    return building


def update_building(
    session: Session,
    building_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Building:
    operators.require(operator, PERMISSION)
    building: Building = _get(session, Building, building_id, "Building")
    parsed = _valid(BUILDING_FIELDS, values)
    _check_building(session, parsed, building.id)
    changes = _apply(building, parsed)
    _flush(session)
    if changes:
        audit.record(session, at=now, operator=operator, action="building.update",
                     target=building.code, **changes)
    return building


def delete_building(
    session: Session, building_id: int, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, PERMISSION)
    building: Building = _get(session, Building, building_id, "Building")
    floors = session.scalar(select(func.count()).where(Floor.building_id == building.id)) or 0
    if floors:
        raise BillingError(
            f"Building {building.code} still has {floors} floor(s): delete or move them first"
        )
    session.delete(building)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="building.delete",
                 target=building.code)


# --- Floors ------------------------------------------------------------------------------------


def _check_floor(
    session: Session, building: Building, values: Mapping[str, Any], floor_id: int | None
) -> None:
    clash = session.scalar(
        select(Floor.name).where(
            Floor.building_id == building.id, Floor.level == values["level"], Floor.id != floor_id
        )
    )
    if clash is not None:
        raise InvalidInput([Problem(
            "level", f"Building {building.code} already has floor level {values['level']} "
            f"({clash})",
        )])


def create_floor(
    session: Session,
    building_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Floor:
    operators.require(operator, PERMISSION)
    building: Building = _get(session, Building, building_id, "Building")
    parsed = _valid(FLOOR_FIELDS, values)
    _check_floor(session, building, parsed, None)
    floor = Floor(building_id=building.id, **parsed)
    session.add(floor)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="floor.create",
                 target=f"{building.code}/{floor.level}", name=floor.name)
    return floor


def update_floor(
    session: Session,
    floor_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Floor:
    operators.require(operator, PERMISSION)
    floor: Floor = _get(session, Floor, floor_id, "Floor")
    parsed = _valid(FLOOR_FIELDS, values)
    _check_floor(session, floor.building, parsed, floor.id)
    target = f"{floor.building.code}/{floor.level}"
    changes = _apply(floor, parsed)
    _flush(session)
    if changes:
        audit.record(session, at=now, operator=operator, action="floor.update", target=target,
                     **changes)
    return floor


def delete_floor(
    session: Session, floor_id: int, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, PERMISSION)
    floor: Floor = _get(session, Floor, floor_id, "Floor")
    units = session.scalar(select(func.count()).where(Unit.floor_id == floor.id)) or 0
    where = f"{floor.name} of building {floor.building.code}"
    if units:
        raise BillingError(f"Floor {where} still has {units} unit(s): delete or move them first")
    target = f"{floor.building.code}/{floor.level}"
    session.delete(floor)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="floor.delete", target=target)


# --- Units (户号) -------------------------------------------------------------------------------


def _check_unit(session: Session, values: Mapping[str, Any], unit_id: int | None) -> None:
    clash = session.scalar(
        select(Unit.id).where(Unit.number == values["number"], Unit.id != unit_id)
    )
    if clash is not None:
        raise InvalidInput([Problem("number", f"Unit number {values['number']} is already used")])


def _floor_name(floor: Floor) -> str:
    return f"{floor.building.code}/{floor.level}"


def create_unit(
    session: Session,
    floor_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Unit:
    operators.require(operator, PERMISSION)
    floor: Floor = _get(session, Floor, floor_id, "Floor")
    parsed = _valid(UNIT_FIELDS, values)
    _check_unit(session, parsed, None)
    unit = Unit(floor_id=floor.id, **parsed)
    session.add(unit)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="unit.create", target=unit.number,
                 floor=_floor_name(floor))
    return unit


def update_unit(
    session: Session,
    unit_id: int,
    values: Mapping[str, object],
    *,
    floor_id: int,
    operator: Operator | None,
    now: datetime,
) -> Unit:
    operators.require(operator, PERMISSION)
    unit: Unit = _get(session, Unit, unit_id, "Unit")
    floor: Floor = _get(session, Floor, floor_id, "Floor")
    parsed = _valid(UNIT_FIELDS, values)
    _check_unit(session, parsed, unit.id)
    target = unit.number
    changes = _apply(unit, parsed)
    if unit.floor_id != floor.id:
        changes["floor"] = f"{_floor_name(unit.floor)} → {_floor_name(floor)}"
        unit.floor = floor
    _flush(session)
    if changes:
        audit.record(session, at=now, operator=operator, action="unit.update", target=target,
                     **changes)
    return unit


def delete_unit(
    session: Session, unit_id: int, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, PERMISSION)
    unit: Unit = _get(session, Unit, unit_id, "Unit")
    serials = session.scalars(
        select(Meter.serial).where(Meter.unit_id == unit.id).order_by(Meter.serial)
    ).all()
    if serials:
        raise BillingError(
            f"Unit {unit.number} has meter(s) {', '.join(serials)}: move them to another unit "
            "first"
        )
    session.delete(unit)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="unit.delete", target=unit.number)


# --- Gateways (通讯管理机) -----------------------------------------------------------------------


def endpoint(host: str, port: int, transport: str) -> str:
    """Where the collector connects: a serial device path, or host:port."""
    return host if transport == "serial" else f"{host}:{port}"


def _check_gateway(session: Session, values: Mapping[str, Any], gateway_id: int | None) -> None:
    problems = []
    if session.scalar(
        select(Gateway.id).where(Gateway.name == values["name"], Gateway.id != gateway_id)
    ) is not None:
        problems.append(Problem("name", f"Gateway name {values['name']} is already used"))
    where = endpoint(values["host"], values["port"], values["transport"])
    for other in session.scalars(
        select(Gateway).where(func.lower(Gateway.host) == values["host"].lower(),
                              Gateway.id != gateway_id)
    ):
        if endpoint(other.host, other.port, other.transport).lower() == where.lower():
            problems.append(Problem(
                "host", f"Gateway {other.name} already uses {where}: one bus, one gateway"
            ))
            break
    if problems:
        raise InvalidInput(problems)


def create_gateway(
    session: Session, values: Mapping[str, object], *, operator: Operator | None, now: datetime
) -> Gateway:
    operators.require(operator, PERMISSION)
    parsed = _valid(GATEWAY_FIELDS, values)
    _check_gateway(session, parsed, None)
    gateway = Gateway(**parsed)
    session.add(gateway)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="gateway.create", target=gateway.name,
                 endpoint=endpoint(gateway.host, gateway.port, gateway.transport),
                 transport=gateway.transport)
    return gateway


def update_gateway(
    session: Session,
    gateway_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Gateway:
    operators.require(operator, PERMISSION)
    gateway: Gateway = _get(session, Gateway, gateway_id, "Gateway")
    parsed = _valid(GATEWAY_FIELDS, values)
    _check_gateway(session, parsed, gateway.id)
    target = gateway.name
    changes = _apply(gateway, parsed)
    _flush(session)
    if changes:
        audit.record(session, at=now, operator=operator, action="gateway.update", target=target,
                     **changes)
    return gateway


def delete_gateway(
    session: Session, gateway_id: int, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, PERMISSION)
    gateway: Gateway = _get(session, Gateway, gateway_id, "Gateway")
    meters = session.scalar(select(func.count()).where(Meter.gateway_id == gateway.id)) or 0
    if meters:
        raise BillingError(
            f"Gateway {gateway.name} still has {meters} meter(s) on its bus: move them to another "
            "gateway or delete them first"
        )
    if session.scalar(select(exists().where(Alarm.gateway_id == gateway.id))):
        raise BillingError(
            f"Gateway {gateway.name} has alarm history and cannot be deleted: the alarm records "
            "need it. Disable it instead"
        )
    session.delete(gateway)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="gateway.delete", target=gateway.name)


# --- Meters ------------------------------------------------------------------------------------


def _meter_references(
    session: Session, values: Mapping[str, object]
) -> tuple[Gateway | None, Unit | None, Tariff | None, list[Problem]]:
    problems: list[Problem] = []
    gateway_id = values.get("gateway_id")
    gateway = session.get(Gateway, gateway_id) if isinstance(gateway_id, int) else None
    if gateway is None:
        problems.append(Problem("gateway_id", "Choose the gateway whose bus the meter is on"))
    unit_id = values.get("unit_id")
    unit = session.get(Unit, unit_id) if isinstance(unit_id, int) else None
    if unit_id is not None and unit is None:
        problems.append(Problem("unit_id", f"Unit {unit_id} does not exist"))
    tariff_id = values.get("tariff_id")
    tariff = session.get(Tariff, tariff_id) if isinstance(tariff_id, int) else None
    if tariff_id is not None and tariff is None:
        problems.append(Problem("tariff_id", f"Tariff {tariff_id} does not exist"))
    return gateway, unit, tariff, problems


def _check_meter(
    session: Session, values: Mapping[str, Any], gateway: Gateway, meter_id: int | None
) -> list[Problem]:
    problems = []
    if session.scalar(
        select(Meter.id).where(Meter.serial == values["serial"], Meter.id != meter_id)
    ) is not None:
        problems.append(Problem("serial", f"Meter serial {values['serial']} is already used"))
    # The gateway row lock queues two engineers adding meters to one bus (the 32-meter cap).
    session.scalar(select(Gateway.id).where(Gateway.id == gateway.id).with_for_update())
    on_bus = session.execute(
        select(Meter.id, Meter.serial, Meter.bus_address).where(Meter.gateway_id == gateway.id)
    ).all()
    others = [row for row in on_bus if row.id != meter_id]
    taken = next((row.serial for row in others if row.bus_address == values["bus_address"]), None)
    if taken is not None:
        problems.append(Problem(
            "bus_address",
            f"Bus address {values['bus_address']} on gateway {gateway.name} is already used by "
            f"meter {taken}",
        ))
    if len(others) >= MAX_METERS_PER_GATEWAY:
        problems.append(Problem(
            "gateway_id",
            f"Gateway {gateway.name} already has {len(others)} meters: an RS-485 bus takes at most "
            f"{MAX_METERS_PER_GATEWAY}; put this meter on another gateway",
        ))
    return problems


def _meter_values(
    session: Session, values: Mapping[str, object], meter_id: int | None
) -> tuple[dict[str, Any], Gateway]:
    parsed, problems = parse_fields(METER_FIELDS, values)
    gateway, unit, tariff, missing = _meter_references(session, values)
    problems += missing
    problems += meter_rules(parsed, has_tariff=tariff is not None)
    if not problems and gateway is not None:
        problems += _check_meter(session, parsed, gateway, meter_id)
    if problems or gateway is None:
        raise InvalidInput(problems)
    parsed.update(
        gateway_id=gateway.id,
        unit_id=unit.id if unit else None,
        tariff_id=tariff.id if tariff else None,
    )
    return parsed, gateway


def create_meter(
    session: Session, values: Mapping[str, object], *, operator: Operator | None, now: datetime
) -> Meter:
    """A meter on a gateway's bus. `values` holds the METER_FIELDS as typed or as text, and
    gateway_id, unit_id (or None) and tariff_id (or None)."""
    operators.require(operator, PERMISSION)
    parsed, gateway = _meter_values(session, values, None)
    meter = Meter(**parsed)
    session.add(meter)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="meter.create", target=meter.serial,
                 gateway=gateway.name, bus_address=meter.bus_address, profile=meter.profile)
    return meter


def update_meter(
    session: Session,
    meter_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    now: datetime,
) -> Meter:
    operators.require(operator, PERMISSION)
    meter: Meter = _get(session, Meter, meter_id, "Meter")
    parsed, _ = _meter_values(session, values, meter.id)
    target = meter.serial
    changes = _apply(meter, parsed)
    _flush(session)
    if changes:
        audit.record(session, at=now, operator=operator, action="meter.update", target=target,
                     **changes)
    return meter


def account_holding(session: Session, meter_id: int) -> str | None:
    """The number of the open account the meter is on, if any."""
    return session.scalar(
        select(Account.number)
        .join(AccountMeter, AccountMeter.account_id == Account.id)
        .where(AccountMeter.meter_id == meter_id, AccountMeter.detached_at.is_(None),
               Account.status == "open")
    )


def _has_history(session: Session, meter: Meter) -> bool:
    if meter.last_reading_at is not None:
        return True
    return any(
        session.scalar(select(exists().where(column == meter.id)))
        for column in (
            AccountMeter.meter_id, LedgerEntry.meter_id, Command.meter_id,
            MeterBilling.meter_id, Alarm.meter_id, MeterReplacement.old_meter_id,
            MeterReplacement.new_meter_id,
        )
    )


def delete_meter(
    session: Session, meter_id: int, *, operator: Operator | None, now: datetime
) -> None:
    """Only a meter entered by mistake can go: one with an account, readings or billing keeps
    its record (the ledger and reports point at it)."""
    operators.require(operator, PERMISSION)
    meter: Meter = _get(session, Meter, meter_id, "Meter")
    holder = account_holding(session, meter.id)
    if holder is not None:
        raise BillingError(
            f"Meter {meter.serial} is on open account {holder}: take it off the account (or "
            "close the account) first"
        )
    if _has_history(session, meter):
        raise BillingError(
            f"Meter {meter.serial} has readings or billing history and cannot be deleted: the "
            "records and reports need it"
        )
    session.delete(meter)
    _flush(session)
    audit.record(session, at=now, operator=operator, action="meter.delete", target=meter.serial)


# --- Read side for the screens -----------------------------------------------------------------


@dataclass(frozen=True)
class BuildingRow:
    id: int
    code: str
    name: str
    floors: int
    units: int


@dataclass(frozen=True)
class FloorRow:
    id: int
    building_id: int
    building: str
    level: int
    name: str
    units: int


@dataclass(frozen=True)
class UnitRow:
    id: int
    floor_id: int
    building: str
    floor: str
    number: str
    name: str
    area_m2: Decimal | None
    meters: int


@dataclass(frozen=True)
class GatewayRow:
    id: int
    name: str
    host: str
    port: int
    transport: str
    timeout_s: Decimal
    retries: int
    gap_ms: int
    baudrate: int
    interval_s: int | None
    enabled: bool
    meters: int
    last_contact_at: datetime | None
    lost_since: datetime | None


@dataclass(frozen=True)
class MeterRow:
    id: int
    serial: str
    profile: str
    gateway_id: int
    gateway: str
    bus_address: int
    unit_id: int | None
    unit: str | None
    ct_ratio: int
    tariff_id: int | None
    tariff: str | None
    price_per_kwh: Decimal | None
    alarm1_amount: Decimal | None
    alarm2_amount: Decimal | None
    overload_kw: Decimal | None
    account: str | None


def buildings(session: Session) -> list[BuildingRow]:
    floors = (
        select(Floor.building_id, func.count(Floor.id).label("n"))
        .group_by(Floor.building_id).subquery()
    )
    units = (
        select(Floor.building_id, func.count(Unit.id).label("n"))
        .join(Unit, Unit.floor_id == Floor.id).group_by(Floor.building_id).subquery()
    )
    rows = session.execute(
        select(Building, floors.c.n, units.c.n)
        .outerjoin(floors, floors.c.building_id == Building.id)
        .outerjoin(units, units.c.building_id == Building.id)
        .order_by(Building.code)
    ).all()
    return [BuildingRow(b.id, b.code, b.name, f or 0, u or 0) for b, f, u in rows]


def floors(session: Session) -> list[FloorRow]:
    units = (
        select(Unit.floor_id, func.count(Unit.id).label("n")).group_by(Unit.floor_id).subquery()
    )
    rows = session.execute(
        select(Floor, Building.code, units.c.n)
        .join(Building, Building.id == Floor.building_id)
        .outerjoin(units, units.c.floor_id == Floor.id)
        .order_by(Building.code, Floor.level)
    ).all()
    return [FloorRow(f.id, f.building_id, code, f.level, f.name, n or 0) for f, code, n in rows]


def units(session: Session) -> list[UnitRow]:
    meters = (
        select(Meter.unit_id, func.count(Meter.id).label("n")).group_by(Meter.unit_id).subquery()
    )
    rows = session.execute(
        select(Unit, Floor.name, Building.code, meters.c.n)
        .join(Floor, Floor.id == Unit.floor_id)
        .join(Building, Building.id == Floor.building_id)
        .outerjoin(meters, meters.c.unit_id == Unit.id)
        .order_by(Building.code, Floor.level, Unit.number)
    ).all()
    return [
        UnitRow(u.id, u.floor_id, code, floor, u.number, u.name, u.area_m2, n or 0)
        for u, floor, code, n in rows
    ]


def gateways(session: Session) -> list[GatewayRow]:
    meters = (
        select(Meter.gateway_id, func.count(Meter.id).label("n"))
        .group_by(Meter.gateway_id).subquery()
    )
    rows = session.execute(
        select(Gateway, meters.c.n)
        .outerjoin(meters, meters.c.gateway_id == Gateway.id)
        .order_by(Gateway.name)
    ).all()
    return [
        GatewayRow(
            g.id, g.name, g.host, g.port, g.transport, g.timeout_s, g.retries, g.gap_ms,
            g.baudrate, g.interval_s, g.enabled, n or 0, g.last_contact_at, g.lost_since,
        )
        for g, n in rows
    ]


def meters(session: Session) -> list[MeterRow]:
    holder = (
        select(AccountMeter.meter_id, Account.number)
        .join(Account, Account.id == AccountMeter.account_id)
        .where(AccountMeter.detached_at.is_(None), Account.status == "open")
        .subquery()
    )
    rows = session.execute(
        select(Meter, Gateway.name, Unit.number, Tariff.name, holder.c.number)
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Tariff, Tariff.id == Meter.tariff_id)
        .outerjoin(holder, holder.c.meter_id == Meter.id)
        .order_by(Gateway.name, Meter.bus_address)
    ).all()
    return [
        MeterRow(
            m.id, m.serial, m.profile, m.gateway_id, gateway, m.bus_address, m.unit_id, unit,
            m.ct_ratio, m.tariff_id, tariff, m.price_per_kwh, m.alarm1_amount, m.alarm2_amount,
            m.overload_kw, account,
        )
        for m, gateway, unit, tariff, account in rows
    ]


def tariffs(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every tariff, for choosing one."""
    return [(row.id, row.name) for row in session.execute(
        select(Tariff.id, Tariff.name).order_by(Tariff.name)
    )]
