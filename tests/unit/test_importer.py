"""Bulk import checks: every rule, each problem named by sheet, Excel row and column header.

The site already in the database (tests.factories.make_site): building A with floor 1 (A1F),
gateway GW-01 at 127.0.0.1:1502, and meters M00001… at bus addresses 1… in units A101….
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy.orm import Session

from billing import importer, site
from billing.errors import BillingError, PermissionDenied
from billing.importer import BUILDINGS, FLOORS, GATEWAYS, KINDS, METERS, UNITS, Kind
from billing.operators import create_operator
from schema.db import unit_of_work
from schema.models import Operator
from tests.factories import T0, make_site

Cells = Mapping[str, object]
METER = "电表 Meters"
UNIT_SHEET = "户号 Units"
GATEWAY_SHEET = "网关 Gateways"


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    with unit_of_work(sqlite_url) as session:
        yield session
        session.rollback()


@pytest.fixture
def admin(session: Session) -> Operator:
    return make_site(session, meters=3).admin


def workbook(
    sheets: Mapping[Kind, Sequence[Cells | None]], *, headers: Mapping[Kind, list[str]] = {}
) -> bytes:
    """A workbook with a sheet per kind: the template's headers (or `headers`), then the rows,
    each given by column key (None for a blank row)."""
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    for kind, rows in sheets.items():
        ws = book.create_sheet(kind.sheet)
        ws.append(headers.get(kind) or [c.header for c in kind.columns])
        for row in rows:
            ws.append([None if row is None else row.get(c.key) for c in kind.columns])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def problems(
    session: Session, admin: Operator, data: bytes, filename: str = "site.xlsx"
) -> list[tuple[str, int | None, str, str]]:
    plan = importer.check(session, data, filename, operator=admin)
    return [(e.sheet, e.row, e.column, e.message) for e in plan.errors]


def meter(serial: object, address: object, gateway: str = "GW-01", **more: object) -> Cells:
    return {"serial": serial, "profile": "acrel_dtsy1352", "gateway": gateway,
            "bus_address": address, **more}


def a_new_block() -> dict[Kind, list[Cells | None]]:
    return {
        BUILDINGS: [{"code": "C", "name": "Building C C栋"}],
        FLOORS: [{"building": "C", "level": 1, "name": "C1F"},
                 {"building": "C", "level": -1, "name": "CB1"}],
        UNITS: [{"building": "C", "floor": 1, "number": "C101", "name": "Shop C101",
                 "area_m2": 45.5},
                {"building": "C", "floor": -1, "number": "CB01"}],
        GATEWAYS: [{"name": "GW-02", "host": "10.0.0.2", "port": 502, "transport": "tcp"}],
        METERS: [meter("M10001", 1, "GW-02", unit="C101"), meter("M10002", 2, "GW-02",
                                                                   unit="CB01", ct_ratio=50)],
    }


def test_a_valid_workbook_plans_every_row_with_typed_values(
    session: Session, admin: Operator
) -> None:
    plan = importer.check(session, workbook(a_new_block()), "site.xlsx", operator=admin)

    assert plan.errors == []
    assert plan.counts() == {"buildings": 1, "floors": 2, "units": 2, "gateways": 1, "meters": 2}
    gateway = plan.rows["gateways"][0]
    assert (gateway.sheet, gateway.row) == (GATEWAY_SHEET, 2)
    assert gateway.values == {
        "name": "GW-02", "host": "10.0.0.2", "port": 502, "transport": "tcp",
        "timeout_s": Decimal("1.000"), "retries": 1, "gap_ms": 0, "baudrate": 9600,
        "interval_s": None, "enabled": True,
    }
    assert plan.rows["units"][0].values["area_m2"] == Decimal("45.50")
    assert plan.rows["meters"][1].values["ct_ratio"] == 50


def test_a_blank_required_cell_is_named_by_row_and_column(
    session: Session, admin: Operator
) -> None:
    data = workbook({METERS: [meter("M10001", 4), meter("", 5), meter("M10003", None)]})

    assert problems(session, admin, data) == [
        (METER, 3, "表号 Meter serial", "Meter serial is required"),
        (METER, 4, "通讯地址 Bus address", "Bus address is required"),
    ]


def test_blank_rows_are_skipped_and_rows_keep_their_excel_numbers(
    session: Session, admin: Operator
) -> None:
    data = workbook({METERS: [meter("M10001", 4), None, None, meter("M10002", 999)]})

    assert problems(session, admin, data) == [
        (METER, 5, "通讯地址 Bus address",
         "Bus address must be a whole number from 1 to 247, not '999'"),
    ]


def test_a_duplicate_within_the_file_points_at_the_first_row(
    session: Session, admin: Operator
) -> None:
    data = workbook({
        BUILDINGS: [{"code": "C", "name": "Building C"}, {"code": "D", "name": "Building D"},
                    {"code": "C", "name": "Building C again"}],
        METERS: [meter("M10001", 4), meter("M10001", 5)],
    })

    assert problems(session, admin, data) == [
        ("楼栋 Buildings", 4, "楼栋编码 Building code", "Building code C is also on row 2"),
        (METER, 3, "表号 Meter serial", "Meter serial M10001 is also on row 2"),
    ]


def test_what_already_exists_is_refused_never_updated(session: Session, admin: Operator) -> None:
    data = workbook({
        BUILDINGS: [{"code": "A", "name": "Building A again"}],
        FLOORS: [{"building": "A", "level": 1, "name": "A1F again"}],
        UNITS: [{"building": "A", "floor": 1, "number": "A101"}],
        GATEWAYS: [{"name": "GW-01", "host": "10.0.0.9"}],
        METERS: [meter("M00001", 9)],
    })

    assert problems(session, admin, data) == [
        ("楼栋 Buildings", 2, "楼栋编码 Building code", "Building A already exists"),
        ("楼层 Floors", 2, "楼层 Floor level", "Building A already has floor level 1"),
        (UNIT_SHEET, 2, "户号 Unit", "Unit A101 already exists"),
        (GATEWAY_SHEET, 2, "网关名称 Gateway", "Gateway GW-01 already exists"),
        (METER, 2, "表号 Meter serial", "Meter M00001 already exists"),
    ]


def test_unknown_buildings_floors_units_gateways_and_tariffs(
    session: Session, admin: Operator
) -> None:
    data = workbook({
        FLOORS: [{"building": "Z", "level": 1, "name": "Z1F"}],
        UNITS: [{"building": "A", "floor": 9, "number": "A901"},
                {"building": "Q", "floor": 1, "number": "Q101"}],
        METERS: [meter("M10001", 4, "GW-99"), meter("M10002", 5, unit="Z999"),
                 meter("M10003", 6, tariff="Night")],
    })

    assert problems(session, admin, data) == [
        ("楼层 Floors", 2, "楼栋编码 Building code",
         "Unknown building Z: it is neither in Voltpay nor on the Buildings sheet"),
        (UNIT_SHEET, 2, "楼层 Floor level",
         "Building A has no floor level 9: it is neither in Voltpay nor on the Floors sheet"),
        (UNIT_SHEET, 3, "楼栋编码 Building code",
         "Unknown building Q: it is neither in Voltpay nor on the Buildings sheet"),
        (METER, 2, "网关名称 Gateway",
         "Unknown gateway GW-99: it is neither in Voltpay nor on the Gateways sheet"),
        (METER, 3, "户号 Unit",
         "Unknown unit Z999: it is neither in Voltpay nor on the Units sheet"),
        (METER, 4, "电价方案 Tariff", "Unknown tariff Night (tariffs: none yet)"),
    ]


def test_an_unknown_profile_lists_the_shipped_ones(session: Session, admin: Operator) -> None:
    data = workbook({METERS: [{**meter("M10001", 4), "profile": "acrel_xyz"}]})

    assert problems(session, admin, data) == [
        (METER, 2, "型号 Profile", "Profile must be one of acrel_ddsy1352, acrel_dtsd1352, "
                                    "acrel_dtsy1352, chint_ddsu666, not 'acrel_xyz'"),
    ]


@pytest.mark.parametrize("address", [0, 248, -3, "abc", 2.5, "7a"])
def test_a_bus_address_outside_1_to_247_is_refused(
    session: Session, admin: Operator, address: object
) -> None:
    data = workbook({METERS: [meter("M10001", address)]})

    assert problems(session, admin, data) == [
        (METER, 2, "通讯地址 Bus address",
         f"Bus address must be a whole number from 1 to 247, not '{address}'"),
    ]


def test_two_meters_on_one_bus_address(session: Session, admin: Operator) -> None:
    data = workbook({
        GATEWAYS: [{"name": "GW-02", "host": "10.0.0.2"}],
        METERS: [meter("M10001", 5, "GW-02"), meter("M10002", 5, "GW-02"),
                 meter("M10003", 5, "GW-01"), meter("M10004", 1, "GW-01")],
    })

    assert problems(session, admin, data) == [
        (METER, 3, "通讯地址 Bus address", "Bus address 5 on gateway GW-02 is also on row 2"),
        (METER, 5, "通讯地址 Bus address",
         "Bus address 1 on gateway GW-01 is already used by meter M00001"),
    ]


def test_the_33rd_meter_on_a_new_gateway_is_refused(session: Session, admin: Operator) -> None:
    data = workbook({
        GATEWAYS: [{"name": "GW-02", "host": "10.0.0.2"}],
        METERS: [meter(f"M1{n:04d}", n, "GW-02") for n in range(1, 34)],
    })

    assert problems(session, admin, data) == [
        (METER, 34, "网关名称 Gateway",
         "Gateway GW-02 would have 33 meters: an RS-485 bus takes at most 32"),
    ]


def test_meters_already_on_a_gateway_count_towards_its_32(
    session: Session, admin: Operator
) -> None:
    # GW-01 holds 3 meters: 29 more fill it, the 30th row is one too many.
    data = workbook({METERS: [meter(f"M1{n:04d}", n, "GW-01") for n in range(4, 34)]})

    assert problems(session, admin, data) == [
        (METER, 31, "网关名称 Gateway",
         "Gateway GW-01 would have 33 meters: an RS-485 bus takes at most 32"),
    ]


def test_bad_numbers_say_what_is_expected(session: Session, admin: Operator) -> None:
    data = workbook({
        UNITS: [{"building": "A", "floor": 1, "number": "A150", "area_m2": -5}],
        GATEWAYS: [{"name": "GW-02", "host": "10.0.0.2", "port": "abc", "timeout_s": "fast",
                    "retries": 1.5, "baudrate": 9601, "transport": "udp", "enabled": "maybe"}],
        METERS: [meter("M10001", 4, ct_ratio=0, price_per_kwh="1.23456",
                       overload_kw="1,5x")],
    })

    assert problems(session, admin, data) == [
        (UNIT_SHEET, 2, "面积 Area (m²)", "Area (m²) must be greater than 0, not '-5'"),
        (GATEWAY_SHEET, 2, "端口 Port", "Port must be a whole number from 1 to 65535, not 'abc'"),
        (GATEWAY_SHEET, 2, "传输方式 Transport",
         "Transport must be one of tcp, rtu-over-tcp, serial, not 'udp'"),
        (GATEWAY_SHEET, 2, "超时 Timeout (s)", "Timeout (s) must be a number, not 'fast'"),
        (GATEWAY_SHEET, 2, "重试次数 Retries",
         "Retries must be a whole number from 0 to 10, not '1.5'"),
        (GATEWAY_SHEET, 2, "波特率 Baud rate",
         "Baud rate must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, "
         "not '9601'"),
        (GATEWAY_SHEET, 2, "启用 Enabled", "Enabled must be yes or no, not 'maybe'"),
        (METER, 2, "CT变比 CT ratio", "CT ratio must be a whole number from 1 to 10000, not '0'"),
        (METER, 2, "单价 Price per kWh",
         "Price per kWh can have at most 4 decimal places, not '1.23456'"),
        (METER, 2, "过载阈值 Overload (kW)", "Overload (kW) must be a number, not '1,5x'"),
    ]


def test_alarm_2_below_alarm_1_and_a_price_or_a_tariff(session: Session, admin: Operator) -> None:
    from billing import pricing

    pricing.create_tariff(session, name="Night", spec={"kind": "flat", "flat_price": "0.5"},
                          effective_from=T0, operator=admin, now=T0)
    data = workbook({METERS: [
        meter("M10001", 4, alarm1_amount=20, alarm2_amount=50),
        meter("M10002", 5, tariff="Night", price_per_kwh="1.1"),
        meter("M10003", 6, tariff="Night", alarm1_amount="50", alarm2_amount="20.5"),
    ]})

    assert problems(session, admin, data) == [
        (METER, 2, "二级报警金额 Alarm 2 amount",
         "Alarm 2 amount (50.00) must be lower than alarm 1 amount (20.00): alarm 2 is the "
         "last warning before arrears"),
        (METER, 3, "单价 Price per kWh",
         "Give either a tariff or a price per kWh, not both (a price on the meter would "
         "override the tariff)"),
    ]


def test_one_address_one_gateway(session: Session, admin: Operator) -> None:
    data = workbook({GATEWAYS: [
        {"name": "GW-02", "host": "127.0.0.1", "port": 1502},
        {"name": "GW-03", "host": "10.0.0.3", "port": 502},
        {"name": "GW-04", "host": "10.0.0.3", "port": 502},
        {"name": "GW-05", "host": "10.0.0.3", "port": 503},
        {"name": "GW-06", "host": "/dev/ttyUSB0", "transport": "serial", "port": 1},
        {"name": "GW-07", "host": "/dev/ttyUSB0", "transport": "serial", "port": 2},
    ]})

    assert problems(session, admin, data) == [
        (GATEWAY_SHEET, 2, "地址 Host",
         "Gateway GW-01 already uses 127.0.0.1:1502: one bus, one gateway"),
        (GATEWAY_SHEET, 4, "地址 Host", "Gateway address 10.0.0.3:502 is also on row 3"),
        (GATEWAY_SHEET, 7, "地址 Host", "Gateway address /dev/ttyUSB0 is also on row 6"),
    ]


def test_columns_the_template_does_not_have_are_refused(
    session: Session, admin: Operator
) -> None:
    headers = ["表号 Meter serial", "型号 Profile", "Gateway", "通讯地址", "备注 Notes",
               "Profile"]
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = METER
    ws.append(headers)
    ws.append(["M10001", "acrel_dtsy1352", "GW-01", 4, "corner shop", None, None, "stray"])
    buffer = io.BytesIO()
    book.save(buffer)

    assert problems(session, admin, buffer.getvalue()) == [
        (METER, 1, "备注 Notes",
         "Unknown column “备注 Notes”: use the template's headers, or delete the column"),
        (METER, 1, "Profile", "Column “Profile” appears twice (also column B)"),
        (METER, 2, "column H", "This cell has a value but its column has no header"),
    ]


def test_a_missing_required_column_is_named(session: Session, admin: Operator) -> None:
    data = workbook({METERS: [{"serial": "M10001", "profile": "acrel_dtsy1352"}]},
                    headers={METERS: ["表号 Meter serial", "型号 Profile"]})

    assert problems(session, admin, data) == [
        (METER, 1, "网关名称 Gateway", "Column “网关名称 Gateway” is missing: it is required"),
        (METER, 1, "通讯地址 Bus address",
         "Column “通讯地址 Bus address” is missing: it is required"),
        (METER, 2, "网关名称 Gateway", "Gateway is required"),
        (METER, 2, "通讯地址 Bus address", "Bus address is required"),
    ]


def test_english_or_chinese_headers_alone_are_understood(
    session: Session, admin: Operator
) -> None:
    english = [c.en for c in METERS.columns]
    chinese = [c.zh for c in METERS.columns]
    for headers in (english, chinese):
        data = workbook({METERS: [meter("M10001", 4)]}, headers={METERS: headers})
        assert problems(session, admin, data) == []


def test_a_sheet_that_is_not_in_the_template_is_refused(
    session: Session, admin: Operator
) -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = "Tenants"
    ws.append(["Name", "Phone"])
    ws.append(["Lucky Noodle", "138"])
    book.create_sheet("Empty")
    buffer = io.BytesIO()
    book.save(buffer)

    assert problems(session, admin, buffer.getvalue()) == [
        ("Tenants", None, "", "Sheet “Tenants” is not one of the template's sheets (楼栋 "
         "Buildings, 楼层 Floors, 户号 Units, 网关 Gateways, 电表 Meters): rename it or delete it"),
    ]


def test_an_empty_template_has_nothing_to_import(session: Session, admin: Operator) -> None:
    data = importer.template_xlsx(site.profiles())

    assert problems(session, admin, data, "template.xlsx") == [
        ("template.xlsx", None, "",
         "The file has no rows to import: fill in the template's sheets"),
    ]


def test_the_template_filled_in_is_valid(session: Session, admin: Operator) -> None:
    book = load_workbook(io.BytesIO(importer.template_xlsx(site.profiles(), ["Night"])))
    assert book.sheetnames == ["说明 Read me", *[kind.sheet for kind in KINDS]]
    for kind, rows in a_new_block().items():
        ws = book[kind.sheet]
        assert [c.value for c in ws[1]] == [c.header for c in kind.columns]
        for row in rows:
            assert row is not None
            ws.append([row.get(c.key) for c in kind.columns])
    buffer = io.BytesIO()
    book.save(buffer)

    plan = importer.check(session, buffer.getvalue(), "filled.xlsx", operator=admin)

    assert plan.errors == []
    assert sum(plan.counts().values()) == 8


def test_numbers_typed_where_text_belongs_keep_their_digits(
    session: Session, admin: Operator
) -> None:
    data = workbook({METERS: [meter(12345, 4.0)]})

    plan = importer.check(session, data, "site.xlsx", operator=admin)

    assert plan.errors == []
    assert plan.rows["meters"][0].values["serial"] == "12345"
    assert plan.rows["meters"][0].values["bus_address"] == 4


def csv_bytes(lines: list[str], encoding: str = "utf-8-sig") -> bytes:
    return "\r\n".join(lines).encode(encoding)


def test_a_csv_is_recognised_by_its_headers(session: Session, admin: Operator) -> None:
    data = csv_bytes([
        "Meter serial,Profile,Gateway,Bus address,Unit",
        "M10001,acrel_dtsy1352,GW-01,4,A101",
        ",,,,",
        "M10002,acrel_dtsy1352,GW-01,300,A101",
    ])

    plan = importer.check(session, data, "export.csv", operator=admin)

    assert [(e.sheet, e.row, e.column, e.message) for e in plan.errors] == [
        ("export.csv", 4, "Bus address",
         "Bus address must be a whole number from 1 to 247, not '300'"),
    ]
    assert plan.counts()["meters"] == 2


def test_a_gbk_csv_with_semicolons_from_chinese_excel(session: Session, admin: Operator) -> None:
    data = csv_bytes(["楼栋编码;楼栋名称", "C;C栋", "D;D栋"], encoding="gbk")

    plan = importer.check(session, data, "楼栋.csv", operator=admin)

    assert plan.errors == []
    assert [r.values["name"] for r in plan.rows["buildings"]] == ["C栋", "D栋"]


def test_the_csv_templates_have_the_bilingual_headers(session: Session, admin: Operator) -> None:
    data = importer.template_csv("units")
    assert data.startswith(b"\xef\xbb\xbf")  # Excel reads the Chinese right with the BOM
    assert data.decode("utf-8-sig").strip() == (
        "楼栋编码 Building code,楼层 Floor level,户号 Unit,商铺名称 Unit name,面积 Area (m²)"
    )
    assert importer.csv_file_name("units") == "voltpay-import-units.csv"


def test_a_csv_whose_kind_cannot_be_told(session: Session, admin: Operator) -> None:
    data = csv_bytes(["Gateway", "GW-01"])

    assert problems(session, admin, data, "list.csv") == [
        ("list.csv", 1, "", "Cannot tell what this CSV file holds: use the headers of one of "
                            "the CSV templates (buildings, floors, units, gateways or meters)"),
    ]


def test_a_file_that_is_no_spreadsheet(session: Session, admin: Operator) -> None:
    with pytest.raises(BillingError, match=r"cannot be read as an Excel workbook \(\.xlsx\)"):
        importer.check(session, b"not a zip", "site.xlsx", operator=admin)
    with pytest.raises(BillingError, match=r"Upload an Excel workbook \(\.xlsx\) or a CSV"):
        importer.check(session, b"hello", "site.txt", operator=admin)


def test_only_an_operator_who_may_configure_can_check_or_import(
    session: Session, admin: Operator
) -> None:
    viewer = create_operator(session, username="viewer", password="correct horse",
                             role="viewer", now=T0)
    data = workbook(a_new_block())

    with pytest.raises(PermissionDenied):
        importer.check(session, data, "site.xlsx", operator=viewer)
    with pytest.raises(PermissionDenied):
        importer.import_file(session, data, "site.xlsx", operator=viewer, now=T0)
