"""Bulk import (批量导入) of buildings, floors, units, gateways and meters from .xlsx or .csv.

The template is one workbook with a sheet per kind (and a read-me sheet), or one CSV per kind;
headers are Chinese and English ("户号 Unit"), and either half alone is accepted too. Every row of
every sheet is validated before anything is written — each field by the same rules as the
settings forms (billing/site.py), then the rules between rows and against the database:
duplicates, references to buildings, floors, units, gateways and tariffs that exist neither in
the database nor in the file, one meter per bus address, at most 32 meters per gateway. Each
problem names the sheet, the row as Excel numbers it, and the column header. Only a file without
a single problem is imported, in one transaction, and only as new records: a row naming
something that already exists is an error, never an update.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, operators, site
from billing.errors import BillingError
from billing.site import (
    BAUDRATES,
    BUILDING_FIELDS,
    FLOOR_FIELDS,
    GATEWAY_FIELDS,
    MAX_METERS_PER_GATEWAY,
    METER_FIELDS,
    TRANSPORTS,
    UNIT_FIELDS,
    FieldSpec,
    Problem,
    is_blank,
    meter_rules,
    no_spaces,
    parse_fields,
    shown,
    text,
    whole,
)
from schema.models import Building, Floor, Gateway, Meter, Operator, Tariff, Unit

PERMISSION = "configure"
README_SHEET = "说明 Read me"
XLSX_SUFFIXES = (".xlsx", ".xlsm")


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    spec: FieldSpec
    help: str  # what goes in it, for the template (English; the header carries the Chinese)

    @property
    def header(self) -> str:
        return f"{self.zh} {self.en}"


@dataclass(frozen=True)
class Kind:
    key: str  # "meters"
    zh: str
    en: str
    columns: tuple[Column, ...]

    @property
    def sheet(self) -> str:
        return f"{self.zh} {self.en}"

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)

    @property
    def specs(self) -> dict[str, FieldSpec]:
        return {c.key: c.spec for c in self.columns}


def _col(key: str, zh: str, en: str, spec: FieldSpec, help: str) -> Column:
    return Column(key, zh, en, spec, help)


BUILDING_REF = FieldSpec("Building code", no_spaces(32), required=True)
FLOOR_REF = FieldSpec("Floor level", whole(-20, 300), required=True)

BUILDINGS = Kind("buildings", "楼栋", "Buildings", (
    _col("code", "楼栋编码", "Building code", BUILDING_FIELDS["code"],
         "Short code, unique, no spaces, e.g. A"),
    _col("name", "楼栋名称", "Building name", BUILDING_FIELDS["name"], "e.g. Building A A栋"),
))
FLOORS = Kind("floors", "楼层", "Floors", (
    _col("building", "楼栋编码", "Building code", BUILDING_REF,
         "A building on the Buildings sheet or already in Voltpay"),
    _col("level", "楼层", "Floor level", FLOOR_FIELDS["level"],
         "Whole number, unique in the building; below ground is negative (B1 = -1)"),
    _col("name", "楼层名称", "Floor name", FLOOR_FIELDS["name"], "e.g. A1F"),
))
UNITS = Kind("units", "户号", "Units", (
    _col("building", "楼栋编码", "Building code", BUILDING_REF, "The unit's building"),
    _col("floor", "楼层", "Floor level", FLOOR_REF,
         "A floor of that building, on the Floors sheet or already in Voltpay"),
    _col("number", "户号", "Unit", UNIT_FIELDS["number"], "Unit (shop) number, unique, e.g. A101"),
    _col("name", "商铺名称", "Unit name", UNIT_FIELDS["name"], "Optional, e.g. Shop A101"),
    _col("area_m2", "面积", "Area (m²)", UNIT_FIELDS["area_m2"], "Optional, square metres"),
))
GATEWAYS = Kind("gateways", "网关", "Gateways", (
    _col("name", "网关名称", "Gateway", GATEWAY_FIELDS["name"], "Unique name, e.g. GW-01"),
    _col("host", "地址", "Host", GATEWAY_FIELDS["host"],
         "IP address or host name; for a local serial port its device, e.g. /dev/ttyUSB0"),
    _col("port", "端口", "Port", GATEWAY_FIELDS["port"], "TCP port, 1-65535 (blank: 502)"),
    _col("transport", "传输方式", "Transport", GATEWAY_FIELDS["transport"],
         f"{' / '.join(TRANSPORTS)} (blank: tcp)"),
    _col("timeout_s", "超时", "Timeout (s)", GATEWAY_FIELDS["timeout_s"],
         "Seconds to wait for a reply (blank: 1)"),
    _col("retries", "重试次数", "Retries", GATEWAY_FIELDS["retries"], "0-10 (blank: 1)"),
    _col("gap_ms", "帧间隔", "Gap (ms)", GATEWAY_FIELDS["gap_ms"],
         "Silence between two requests, 0-10000 ms (blank: 0)"),
    _col("baudrate", "波特率", "Baud rate", GATEWAY_FIELDS["baudrate"],
         f"For serial: {', '.join(map(str, BAUDRATES))} (blank: 9600)"),
    _col("interval_s", "采集间隔", "Interval (s)", GATEWAY_FIELDS["interval_s"],
         "Seconds between reads of this bus, 10-86400 (blank: the site's interval)"),
    _col("enabled", "启用", "Enabled", GATEWAY_FIELDS["enabled"], "yes / no (blank: yes)"),
))
METERS = Kind("meters", "电表", "Meters", (
    _col("serial", "表号", "Meter serial", METER_FIELDS["serial"], "Unique, e.g. M00001"),
    _col("profile", "型号", "Profile", METER_FIELDS["profile"],
         "Device profile: one of the names on the read-me sheet"),
    _col("gateway", "网关名称", "Gateway", FieldSpec("Gateway", text(64), required=True),
         "A gateway on the Gateways sheet or already in Voltpay"),
    _col("bus_address", "通讯地址", "Bus address", METER_FIELDS["bus_address"],
         "Modbus address 1-247, unique on the gateway; at most 32 meters per gateway"),
    _col("unit", "户号", "Unit", FieldSpec("Unit", no_spaces(32)),
         "Optional: a unit on the Units sheet or already in Voltpay"),
    _col("ct_ratio", "CT变比", "CT ratio", METER_FIELDS["ct_ratio"], "1-10000 (blank: 1)"),
    _col("tariff", "电价方案", "Tariff", FieldSpec("Tariff", text(100)),
         "Optional: a tariff's name (blank: the site's default tariff)"),
    _col("price_per_kwh", "单价", "Price per kWh", METER_FIELDS["price_per_kwh"],
         "Optional flat price for this meter (一表一价), up to 4 decimals; not with a tariff"),
    _col("alarm1_amount", "一级报警金额", "Alarm 1 amount", METER_FIELDS["alarm1_amount"],
         "Optional (blank: site default)"),
    _col("alarm2_amount", "二级报警金额", "Alarm 2 amount", METER_FIELDS["alarm2_amount"],
         "Optional, lower than alarm 1 (blank: site default)"),
    _col("overload_kw", "过载阈值", "Overload (kW)", METER_FIELDS["overload_kw"],
         "Optional (blank: site default)"),
))
KINDS = (BUILDINGS, FLOORS, UNITS, GATEWAYS, METERS)
KIND_BY_KEY = {kind.key: kind for kind in KINDS}


@dataclass(frozen=True)
class RowError:
    sheet: str  # the sheet's name (or the CSV file's name)
    row: int | None  # as Excel numbers it: the header is row 1; None for the whole sheet/file
    column: str  # the header as the file has it ("" for a whole row or sheet)
    message: str


@dataclass(frozen=True)
class Row:
    """One valid-looking row: its typed values by column key."""

    sheet: str
    row: int
    values: dict[str, Any]


@dataclass(frozen=True)
class ImportPlan:
    filename: str
    rows: dict[str, list[Row]]  # by kind key, in file order
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {kind.key: len(self.rows.get(kind.key, [])) for kind in KINDS}


@dataclass(frozen=True)
class ImportResult:
    filename: str
    counts: dict[str, int]


class ImportRejected(BillingError):
    """The file has problems; nothing was imported. `plan.errors` lists them."""

    def __init__(self, plan: ImportPlan) -> None:
        self.plan = plan
        super().__init__(
            f"Nothing was imported: {len(plan.errors)} problem(s) in {plan.filename}"
        )


# --- Reading the file --------------------------------------------------------------------------


def _norm(text_: str) -> str:
    text_ = text_.replace("（", "(").replace("）", ")").replace("*", "")
    return re.sub(r"\s+", "", text_).lower()


def _names(zh: str, en: str, key: str) -> set[str]:
    return {_norm(f"{zh} {en}"), _norm(zh), _norm(en), _norm(key)}


@dataclass
class _Sheet:
    name: str
    kind: Kind | None
    headers: dict[int, str]  # column index → header text as in the file
    rows: list[tuple[int, list[object]]]  # Excel row number → cells
    errors: list[RowError] = field(default_factory=list)
    columns: dict[int, Column] = field(default_factory=dict)  # column index → our column


def _kind_of_sheet(name: str) -> Kind | None:
    return next((k for k in KINDS if _norm(name) in _names(k.zh, k.en, k.key)), None)


def _kind_from_headers(headers: Iterable[str], filename: str = "") -> Kind | None:
    """The one kind whose columns include every header (and all its required ones, when more
    than one kind fits); a kind named in the file name settles a tie."""
    wanted = {_norm(h) for h in headers}
    fits, complete = [], []
    for kind in KINDS:
        known = set().union(*(_names(c.zh, c.en, c.key) for c in kind.columns))
        if wanted and wanted <= known:
            fits.append(kind)
            if all(_names(c.zh, c.en, c.key) & wanted for c in kind.columns if c.spec.required):
                complete.append(kind)
    for candidates in (fits, complete):
        if len(candidates) == 1:
            return candidates[0]
    named = _kind_from_filename(filename)
    return named if named in (complete or fits) else None


def _kind_from_filename(filename: str) -> Kind | None:
    stem = _norm(filename.rsplit(".", 1)[0])
    found = [k for k in KINDS if k.key.rstrip("s") in stem or k.zh in stem]
    return found[0] if len(found) == 1 else None


def _blank_row(cells: Sequence[object]) -> bool:
    return all(is_blank(cell) for cell in cells)


def _read_xlsx(data: bytes) -> list[tuple[str, list[tuple[int, list[object]]]]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError):
        raise BillingError(
            "This file cannot be read as an Excel workbook (.xlsx). Save it from Excel as "
            "“Excel Workbook (.xlsx)” or as CSV UTF-8, or start from the template."
        ) from None
    sheets = []
    try:
        for ws in book.worksheets:
            rows = [
                (number, list(cells))
                for number, cells in enumerate(ws.iter_rows(values_only=True), start=1)
            ]
            sheets.append((ws.title, rows))
    finally:
        book.close()
    return sheets


def _decode(data: bytes) -> str:
    # Excel saves "CSV UTF-8" with a byte-order mark; on Chinese Windows plain "CSV" is GBK.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BillingError("This CSV file is neither UTF-8 nor GBK text: save it as CSV UTF-8")


def _read_csv(data: bytes) -> list[tuple[int, list[object]]]:
    content = _decode(data)
    first = content.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    return [(number, list(cells)) for number, cells in enumerate(reader, start=1)]


def _sheet(name: str, rows: list[tuple[int, list[object]]], kind: Kind | None) -> _Sheet:
    header_cells = rows[0][1] if rows else []
    headers = {i: shown(h) for i, h in enumerate(header_cells) if not is_blank(h)}
    body = [(number, cells) for number, cells in rows[1:] if not _blank_row(cells)]
    return _Sheet(name, kind, headers, body)


def read_file(data: bytes, filename: str) -> list[_Sheet]:
    """The file's sheets with their kind (None where it cannot be told) and non-blank rows."""
    if filename.lower().endswith(".csv"):
        rows = _read_csv(data)
        sheet = _sheet(filename, rows, None)
        sheet.kind = _kind_from_headers(sheet.headers.values(), filename)
        if sheet.kind is None and (sheet.headers or sheet.rows):
            sheet.errors.append(RowError(
                filename, 1, "",
                "Cannot tell what this CSV file holds: use the headers of one of the CSV "
                "templates (buildings, floors, units, gateways or meters)",
            ))
        return [sheet]
    if not filename.lower().endswith(XLSX_SUFFIXES):
        raise BillingError("Upload an Excel workbook (.xlsx) or a CSV file (.csv)")
    sheets = []
    for title, rows in _read_xlsx(data):
        if _norm(title) in _names("说明", "Read me", "readme"):
            continue
        sheet = _sheet(title, rows, _kind_of_sheet(title))
        if sheet.kind is None and (sheet.headers or sheet.rows):
            sheet.kind = _kind_from_headers(sheet.headers.values())
            if sheet.kind is None:
                names = ", ".join(k.sheet for k in KINDS)
                sheet.errors.append(RowError(
                    title, None, "",
                    f"Sheet “{title}” is not one of the template's sheets ({names}): rename it "
                    "or delete it",
                ))
        sheets.append(sheet)
    return sheets


def _map_columns(sheet: _Sheet) -> None:
    """Match the sheet's headers to the kind's columns; unknown, repeated or missing ones are
    errors (a misspelt optional column would otherwise be dropped without a word)."""
    assert sheet.kind is not None
    by_name: dict[str, Column] = {}
    for column in sheet.kind.columns:
        for name in _names(column.zh, column.en, column.key):
            by_name.setdefault(name, column)
    seen: dict[str, int] = {}
    for index, header in sheet.headers.items():
        match = by_name.get(_norm(header))
        if match is None:
            sheet.errors.append(RowError(
                sheet.name, 1, header,
                f"Unknown column “{header}”: use the template's headers, or delete the column",
            ))
        elif match.key in seen:
            sheet.errors.append(RowError(
                sheet.name, 1, header,
                f"Column “{header}” appears twice (also column "
                f"{get_column_letter(seen[match.key] + 1)})",
            ))
        else:
            seen[match.key] = index
            sheet.columns[index] = match
    for column in sheet.kind.columns:
        if column.spec.required and column.key not in seen:
            sheet.errors.append(RowError(
                sheet.name, 1, column.header,
                f"Column “{column.header}” is missing: it is required",
            ))
    for number, cells in sheet.rows:
        for index, cell in enumerate(cells):
            if index not in sheet.headers and not is_blank(cell):
                sheet.errors.append(RowError(
                    sheet.name, number, f"column {get_column_letter(index + 1)}",
                    "This cell has a value but its column has no header",
                ))


# --- Validating --------------------------------------------------------------------------------


@dataclass
class _Record:
    sheet: _Sheet
    row: int
    values: dict[str, Any]
    problems: list[Problem]

    def header(self, key: str) -> str:
        for index, column in self.sheet.columns.items():
            if column.key == key:
                return self.sheet.headers[index]
        assert self.sheet.kind is not None
        return self.sheet.kind.column(key).header

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(key, message))

    def where(self, other: _Record) -> str:
        if other.sheet is self.sheet:
            return f"row {other.row}"
        return f"row {other.row} of sheet {other.sheet.name}"


def _records(sheet: _Sheet) -> list[_Record]:
    assert sheet.kind is not None
    records = []
    for number, cells in sheet.rows:
        raw = {
            column.key: cells[index] if index < len(cells) else None
            for index, column in sheet.columns.items()
        }
        values, problems = parse_fields(sheet.kind.specs, raw)
        # A column the sheet leaves out reads as blank: its default, or "required".
        records.append(_Record(sheet, number, values, problems))
    return records


class _Unique:
    """First record seen for each key: a later one is a duplicate within the file."""

    def __init__(self) -> None:
        self.first: dict[object, _Record] = {}

    def check(self, record: _Record, key: object, field_key: str, what: str) -> None:
        first = self.first.setdefault(key, record)
        if first is not record:
            record.fail(field_key, f"{what} is also on {record.where(first)}")


@dataclass
class _Existing:
    """What the database already holds, read once."""

    buildings: set[str]
    floors: set[tuple[str, int]]
    units: set[str]
    gateways: dict[str, tuple[str, int, str]]  # name → host, port, transport
    endpoints: dict[str, str]  # endpoint (lower case) → gateway name
    serials: set[str]
    bus: dict[tuple[str, int], str]  # (gateway name, address) → serial
    on_gateway: Counter[str]
    tariffs: dict[str, int]  # name → id

    @classmethod
    def load(cls, session: Session) -> _Existing:
        gateways = {
            g.name: (g.host, g.port, g.transport)
            for g in session.execute(select(Gateway.name, Gateway.host, Gateway.port,
                                            Gateway.transport))
        }
        bus = {
            (name, address): serial
            for name, address, serial in session.execute(
                select(Gateway.name, Meter.bus_address, Meter.serial)
                .join(Gateway, Gateway.id == Meter.gateway_id)
            )
        }
        return cls(
            buildings=set(session.scalars(select(Building.code))),
            floors={
                (code, level) for code, level in session.execute(
                    select(Building.code, Floor.level).join(Building,
                                                            Building.id == Floor.building_id)
                )
            },
            units=set(session.scalars(select(Unit.number))),
            gateways=gateways,
            endpoints={site.endpoint(*g).lower(): name for name, g in gateways.items()},
            serials=set(session.scalars(select(Meter.serial))),
            bus=bus,
            on_gateway=Counter(name for name, _ in bus),
            tariffs={name: id_ for id_, name in session.execute(select(Tariff.id, Tariff.name))},
        )


def _unknown(what: str, name: object, kind: Kind) -> str:
    return f"Unknown {what} {name}: it is neither in Voltpay nor on the {kind.en} sheet"


def _check_buildings(records: list[_Record], db: _Existing) -> None:
    unique = _Unique()
    for r in records:
        code = r.values.get("code")
        if code is None:
            continue
        if code in db.buildings:
            r.fail("code", f"Building {code} already exists")
        else:
            unique.check(r, code, "code", f"Building code {code}")


def _check_floors(records: list[_Record], db: _Existing, buildings: set[str]) -> None:
    unique = _Unique()
    for r in records:
        code, level = r.values.get("building"), r.values.get("level")
        if code is not None and code not in buildings:
            r.fail("building", _unknown("building", code, BUILDINGS))
        if code is None or level is None:
            continue
        if (code, level) in db.floors:
            r.fail("level", f"Building {code} already has floor level {level}")
        else:
            unique.check(r, (code, level), "level", f"Floor level {level} of building {code}")


def _check_units(records: list[_Record], db: _Existing, floors: set[tuple[str, int]],
                 buildings: set[str]) -> None:
    unique = _Unique()
    for r in records:
        code, level, number = r.values.get("building"), r.values.get("floor"), r.values.get(
            "number")
        if code is not None and code not in buildings:
            r.fail("building", _unknown("building", code, BUILDINGS))
        elif code is not None and level is not None and (code, level) not in floors:
            r.fail("floor", f"Building {code} has no floor level {level}: it is neither in "
                            "Voltpay nor on the Floors sheet")
        if number is None:
            continue
        if number in db.units:
            r.fail("number", f"Unit {number} already exists")
        else:
            unique.check(r, number, "number", f"Unit {number}")


def _check_gateways(records: list[_Record], db: _Existing) -> None:
    names, endpoints = _Unique(), _Unique()
    for r in records:
        name = r.values.get("name")
        if name is not None:
            if name in db.gateways:
                r.fail("name", f"Gateway {name} already exists")
            else:
                names.check(r, name, "name", f"Gateway {name}")
        if all(k in r.values for k in ("host", "port", "transport")):
            where = site.endpoint(r.values["host"], r.values["port"], r.values["transport"])
            if where.lower() in db.endpoints:
                r.fail("host", f"Gateway {db.endpoints[where.lower()]} already uses {where}: one "
                               "bus, one gateway")
            else:
                endpoints.check(r, where.lower(), "host", f"Gateway address {where}")


def _check_meters(records: list[_Record], db: _Existing, gateways: set[str],
                  units: set[str]) -> None:
    serials, addresses = _Unique(), _Unique()
    on_gateway = Counter(db.on_gateway)
    for r in records:
        v = r.values
        serial, gateway = v.get("serial"), v.get("gateway")
        if serial is not None:
            if serial in db.serials:
                r.fail("serial", f"Meter {serial} already exists")
            else:
                serials.check(r, serial, "serial", f"Meter serial {serial}")
        if gateway is not None and gateway not in gateways:
            r.fail("gateway", _unknown("gateway", gateway, GATEWAYS))
            gateway = None
        if v.get("unit") is not None and v["unit"] not in units:
            r.fail("unit", _unknown("unit", v["unit"], UNITS))
        tariff = v.get("tariff")
        if tariff is not None and tariff not in db.tariffs:
            known = ", ".join(sorted(db.tariffs)) or "none yet"
            r.fail("tariff", f"Unknown tariff {tariff} (tariffs: {known})")
        for problem in meter_rules(v, has_tariff=tariff is not None):
            r.fail(problem.field, problem.message)
        if gateway is None:
            continue
        address = v.get("bus_address")
        if address is not None:
            taken = db.bus.get((gateway, address))
            if taken is not None:
                r.fail("bus_address", f"Bus address {address} on gateway {gateway} is already "
                                      f"used by meter {taken}")
            else:
                addresses.check(r, (gateway, address), "bus_address",
                                f"Bus address {address} on gateway {gateway}")
        on_gateway[gateway] += 1
        if on_gateway[gateway] > MAX_METERS_PER_GATEWAY:
            r.fail("gateway", f"Gateway {gateway} would have {on_gateway[gateway]} meters: an "
                              f"RS-485 bus takes at most {MAX_METERS_PER_GATEWAY}")


def check(
    session: Session, data: bytes, filename: str, *, operator: Operator | None
) -> ImportPlan:
    """Read and validate the whole file against the database; write nothing."""
    operators.require(operator, PERMISSION)
    sheets = read_file(data, filename)
    by_kind: dict[str, list[_Record]] = {kind.key: [] for kind in KINDS}
    for sheet in sheets:
        if sheet.kind is not None:
            _map_columns(sheet)
            by_kind[sheet.kind.key] += _records(sheet)
    errors = [e for sheet in sheets for e in sheet.errors]
    if not any(by_kind.values()) and not errors:
        errors.append(RowError(filename, None, "",
                               "The file has no rows to import: fill in the template's sheets"))
    db = _Existing.load(session)

    def known(kind: str, *keys: str) -> set[Any]:
        return {
            r.values[keys[0]] if len(keys) == 1 else tuple(r.values[k] for k in keys)
            for r in by_kind[kind] if all(k in r.values for k in keys)
        }

    buildings = db.buildings | known("buildings", "code")
    _check_buildings(by_kind["buildings"], db)
    _check_floors(by_kind["floors"], db, buildings)
    _check_units(by_kind["units"], db, db.floors | known("floors", "building", "level"),
                 buildings)
    _check_gateways(by_kind["gateways"], db)
    _check_meters(by_kind["meters"], db, set(db.gateways) | known("gateways", "name"),
                  db.units | known("units", "number"))
    for kind in KINDS:
        for r in by_kind[kind.key]:
            errors += [RowError(r.sheet.name, r.row, r.header(p.field), p.message)
                       for p in r.problems]
    rows = {
        kind: [Row(r.sheet.name, r.row, r.values) for r in records]
        for kind, records in by_kind.items()
    }
    return ImportPlan(filename, rows, _in_reading_order(errors, sheets))


def _in_reading_order(errors: list[RowError], sheets: list[_Sheet]) -> list[RowError]:
    """Sheet by sheet, row by row, left to right; each problem once."""
    order = {sheet.name: i for i, sheet in enumerate(sheets)}
    columns: dict[str, dict[str, int]] = {}
    for sheet in sheets:
        if sheet.kind is not None:
            columns[sheet.name] = {c.header: i for i, c in enumerate(sheet.kind.columns)}
            columns[sheet.name].update({h: i for i, h in sheet.headers.items()})
    ordered = sorted(errors, key=lambda e: (
        order.get(e.sheet, -1), e.row or 0, columns.get(e.sheet, {}).get(e.column, -1)
    ))
    return list(dict.fromkeys(ordered))


# --- Importing ---------------------------------------------------------------------------------


def import_file(
    session: Session, data: bytes, filename: str, *, operator: Operator | None, now: datetime
) -> ImportResult:
    """Validate the file again (the database may have changed since the preview) and create
    everything in it, or nothing: raises ImportRejected with the problems."""
    operators.require(operator, PERMISSION)
    # Queue behind anyone adding meters to these buses (PostgreSQL; SQLite locks at BEGIN).
    session.execute(select(Gateway.id).order_by(Gateway.id).with_for_update()).all()
    plan = check(session, data, filename, operator=operator)
    if not plan.ok:
        raise ImportRejected(plan)
    rows = plan.rows
    building_of = {b.code: b for b in session.scalars(select(Building))}
    for r in rows["buildings"]:
        building_of[r.values["code"]] = Building(code=r.values["code"], name=r.values["name"])
        session.add(building_of[r.values["code"]])
    floor_of = {
        (f.building.code, f.level): f
        for f in session.scalars(select(Floor).join(Building))
    }
    for r in rows["floors"]:
        floor = Floor(building=building_of[r.values["building"]], level=r.values["level"],
                      name=r.values["name"])
        floor_of[(r.values["building"], r.values["level"])] = floor
        session.add(floor)
    unit_of: dict[str, Unit | int] = {
        number: id_ for id_, number in session.execute(select(Unit.id, Unit.number))
    }
    for r in rows["units"]:
        unit = Unit(floor=floor_of[(r.values["building"], r.values["floor"])],
                    **{k: r.values[k] for k in UNIT_FIELDS})
        unit_of[unit.number] = unit
        session.add(unit)
    gateway_of: dict[str, Gateway | int] = {
        name: id_ for id_, name in session.execute(select(Gateway.id, Gateway.name))
    }
    for r in rows["gateways"]:
        gateway = Gateway(**{k: r.values[k] for k in GATEWAY_FIELDS})
        gateway_of[gateway.name] = gateway
        session.add(gateway)
    _flush(session)
    tariffs = {name: id_ for name, id_ in session.execute(select(Tariff.name, Tariff.id))}
    meters = []
    for r in rows["meters"]:
        v = r.values
        gateway_ref = gateway_of[v["gateway"]]
        unit_ref = unit_of.get(v["unit"]) if v.get("unit") is not None else None
        meters.append(Meter(
            **{k: v[k] for k in METER_FIELDS},
            gateway_id=gateway_ref if isinstance(gateway_ref, int) else gateway_ref.id,
            unit_id=None if unit_ref is None else (
                unit_ref if isinstance(unit_ref, int) else unit_ref.id
            ),
            tariff_id=tariffs[v["tariff"]] if v.get("tariff") is not None else None,
        ))
    session.add_all(meters)
    _flush(session)
    counts = plan.counts()
    audit.record(session, at=now, operator=operator, action="import.apply", target=filename,
                 **counts)
    return ImportResult(filename, counts)


def _flush(session: Session) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise BillingError(
            "Someone changed the same records while the file was being imported; nothing was "
            "imported. Check the file again and retry"
        ) from None


# --- Templates ---------------------------------------------------------------------------------

_HEADER_FILL = PatternFill("solid", fgColor="DDE7F0")
_REQUIRED_FILL = PatternFill("solid", fgColor="FCE4C4")
_TEXT_KEYS = {"code", "building", "number", "unit", "serial", "name", "gateway", "host"}


def template_xlsx(profiles: Sequence[str], tariffs: Sequence[str] = ()) -> bytes:
    """The import workbook: a read-me sheet, then one empty sheet per kind with its headers
    (required ones shaded), a note on every header, and drop-down lists where the values are
    fixed."""
    book = Workbook()
    readme = book.active
    assert readme is not None
    readme.title = README_SHEET
    _readme(readme, profiles, tariffs)
    lists: dict[str, Sequence[str]] = {
        "transport": TRANSPORTS, "enabled": ("yes", "no"), "profile": profiles,
    }
    for kind in KINDS:
        ws = book.create_sheet(kind.sheet)
        ws.append([c.header for c in kind.columns])
        for i, column in enumerate(kind.columns, start=1):
            cell = ws.cell(row=1, column=i)
            cell.font = Font(bold=True)
            cell.fill = _REQUIRED_FILL if column.spec.required else _HEADER_FILL
            required = "Required 必填. " if column.spec.required else "Optional 选填. "
            cell.comment = Comment(required + column.help, "Voltpay")
            letter = get_column_letter(i)
            ws.column_dimensions[letter].width = max(len(column.header) * 1.3 + 2, 12)
            if column.key in _TEXT_KEYS:
                # Text, so Excel keeps a code like 007 as typed.
                ws.column_dimensions[letter].number_format = "@"
            allowed = ",".join(lists.get(column.key, ()))
            if allowed and len(allowed) < 250:  # Excel's limit for an inline list
                check = DataValidation(type="list", formula1=f'"{allowed}"', allow_blank=True)
                check.add(f"{letter}2:{letter}5000")
                ws.add_data_validation(check)
        ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _readme(ws: Any, profiles: Sequence[str], tariffs: Sequence[str]) -> None:
    lines = [
        ("Voltpay bulk import 批量导入", ""),
        ("Fill in the sheets you need (empty sheets are fine) and upload the workbook. "
         "填写需要的工作表（可留空）后上传。", ""),
        ("Row 1 holds the headers; keep them. Shaded headers are required. "
         "第 1 行为表头，请勿修改；橙色表头为必填。", ""),
        ("Order: buildings → floors → units, gateways → meters. A row may refer to a row on "
         "another sheet of this file or to something already in Voltpay.", ""),
        ("Every row is checked first; if any row has a problem nothing is imported and each "
         "problem is listed by sheet, row and column. 任一行有误则全部不导入。", ""),
        ("", ""),
        ("Profiles 型号", ", ".join(profiles)),
        ("Tariffs 电价方案", ", ".join(tariffs) or "(none yet: leave blank)"),
        ("Transports 传输方式", ", ".join(TRANSPORTS)),
        ("", ""),
        ("Sheet 工作表", "Column 列 · what goes in it"),
    ]
    for kind in KINDS:
        for column in kind.columns:
            flag = "required 必填" if column.spec.required else "optional 选填"
            lines.append((kind.sheet, f"{column.header} ({flag}): {column.help}"))
    for line in lines:
        ws.append(list(line))
    ws["A1"].font = Font(bold=True, size=14)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 110
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=False, vertical="top")


def template_csv(kind_key: str) -> bytes:
    """One kind's CSV template: the header row, UTF-8 with a byte-order mark so that Excel
    shows the Chinese headers."""
    kind = KIND_BY_KEY[kind_key]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([c.header for c in kind.columns])
    return buffer.getvalue().encode("utf-8-sig")


def csv_file_name(kind_key: str) -> str:
    return f"voltpay-import-{kind_key}.csv"
