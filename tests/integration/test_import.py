"""Bulk import on SQLite and PostgreSQL: a valid file imports everything, an invalid one nothing.

The database starts with tests.factories.make_site: building A (floor 1, units A101…A103),
gateway GW-01 with meters M00001…M00003 at bus addresses 1…3.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from decimal import Decimal

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import importer, site
from billing.importer import BUILDINGS, FLOORS, GATEWAYS, METERS, UNITS, ImportRejected, Kind
from schema.db import unit_of_work
from schema.models import (
    AuditEntry,
    Building,
    Floor,
    Gateway,
    Meter,
    Operator,
    Unit,
)
from tests.factories import T0, make_site

Cells = Mapping[str, object]
MODELS = (Building, Floor, Unit, Gateway, Meter, AuditEntry)


def workbook(sheets: Mapping[Kind, Sequence[Cells]]) -> bytes:
    book = Workbook()
    assert book.active is not None
    book.remove(book.active)
    for kind, rows in sheets.items():
        ws = book.create_sheet(kind.sheet)
        ws.append([c.header for c in kind.columns])
        for row in rows:
            ws.append([row.get(c.key) for c in kind.columns])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def meter(serial: str, address: int, gateway: str, **more: object) -> Cells:
    return {"serial": serial, "profile": "acrel_ddsy1352", "gateway": gateway,
            "bus_address": address, **more}


# A new building C, underground floor included, with a new gateway and a full bus of 32 meters;
# one more meter joins the existing GW-01 in the existing unit A101.
NEW_BLOCK: dict[Kind, Sequence[Cells]] = {
    BUILDINGS: [{"code": "C", "name": "Building C C栋"}],
    FLOORS: [{"building": "C", "level": 1, "name": "C1F"},
             {"building": "C", "level": -1, "name": "CB1"}],
    UNITS: [{"building": "C", "floor": 1, "number": f"C1{n:02d}", "name": f"Shop C1{n:02d}",
             "area_m2": "45.5"} for n in range(1, 17)]
    + [{"building": "C", "floor": -1, "number": f"CB{n:02d}"} for n in range(1, 17)],
    GATEWAYS: [{"name": "GW-02", "host": "10.0.0.2", "port": 4196, "transport": "rtu-over-tcp",
                "timeout_s": "1.5", "retries": 2, "gap_ms": 20, "interval_s": 900,
                "enabled": "yes"}],
    METERS: [meter(f"M2{n:04d}", n, "GW-02", unit=f"C1{n:02d}", ct_ratio=50,
                   alarm1_amount="80", alarm2_amount="30") for n in range(1, 17)]
    + [meter(f"M2{n + 16:04d}", n + 16, "GW-02", unit=f"CB{n:02d}") for n in range(1, 17)]
    + [meter("M20099", 4, "GW-01", unit="A101", price_per_kwh="0.9876")],
}


@pytest.fixture
def url(db_url: str) -> str:
    with unit_of_work(db_url) as session:
        make_site(session, meters=3)
    return db_url


def admin(session: Session) -> Operator:
    return session.scalars(select(Operator).where(Operator.username == "admin")).one()


def counts(url: str) -> dict[str, int]:
    with unit_of_work(url) as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in MODELS
        }


def test_a_valid_workbook_imports_everything(url: str) -> None:
    with unit_of_work(url) as session:
        result = importer.import_file(session, workbook(NEW_BLOCK), "mall-c.xlsx",
                                      operator=admin(session), now=T0)

    assert result.counts == {"buildings": 1, "floors": 2, "units": 32, "gateways": 1,
                             "meters": 33}
    with unit_of_work(url) as session:
        building = session.scalars(select(Building).where(Building.code == "C")).one()
        assert [(f.level, f.name, len(f.units)) for f in building.floors] == [
            (-1, "CB1", 16), (1, "C1F", 16),
        ]
        gateway = session.scalars(select(Gateway).where(Gateway.name == "GW-02")).one()
        assert (gateway.host, gateway.port, gateway.transport, gateway.timeout_s,
                gateway.retries, gateway.gap_ms, gateway.interval_s, gateway.enabled) == (
            "10.0.0.2", 4196, "rtu-over-tcp", Decimal("1.5000"), 2, 20, 900, True,
        )
        assert len(gateway.meters) == site.MAX_METERS_PER_GATEWAY
        first = gateway.meters[0]
        assert (first.serial, first.bus_address, first.unit and first.unit.number,
                first.ct_ratio, first.alarm1_amount, first.alarm2_amount) == (
            "M20001", 1, "C101", 50, Decimal("80.0000"), Decimal("30.0000"),
        )
        assert first.unit is not None and first.unit.area_m2 == Decimal("45.5000")
        extra = session.scalars(select(Meter).where(Meter.serial == "M20099")).one()
        assert (extra.gateway.name, extra.unit and extra.unit.number, extra.price_per_kwh) == (
            "GW-01", "A101", Decimal("0.9876"),
        )
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "import.apply"))
        assert (entry.actor, entry.target, entry.detail) == (
            "admin", "mall-c.xlsx",
            {"buildings": "1", "floors": "2", "units": "32", "gateways": "1", "meters": "33"},
        )


def test_one_bad_row_and_nothing_is_imported(url: str) -> None:
    before = counts(url)
    bad = {**NEW_BLOCK, METERS: [*NEW_BLOCK[METERS], meter("M20100", 3, "GW-01")]}

    with pytest.raises(ImportRejected) as refused, unit_of_work(url) as session:
        importer.import_file(session, workbook(bad), "mall-c.xlsx", operator=admin(session),
                             now=T0)

    assert [(e.sheet, e.row, e.column, e.message) for e in refused.value.plan.errors] == [
        ("电表 Meters", 35, "通讯地址 Bus address",
         "Bus address 3 on gateway GW-01 is already used by meter M00003"),
    ]
    assert str(refused.value) == "Nothing was imported: 1 problem(s) in mall-c.xlsx"
    assert counts(url) == before


def test_the_file_is_checked_again_when_it_is_imported(url: str) -> None:
    """Someone adds a meter between the preview and the confirmation: the import is refused."""
    data = workbook({METERS: [meter("M20001", 9, "GW-01")]})
    with unit_of_work(url) as session:
        assert importer.check(session, data, "one.xlsx", operator=admin(session)).ok
    with unit_of_work(url) as session:
        gateway = session.scalars(select(Gateway.id).where(Gateway.name == "GW-01")).one()
        site.create_meter(session, {"serial": "M20001", "profile": "acrel_dtsy1352",
                                    "gateway_id": gateway, "bus_address": "10"},
                          operator=admin(session), now=T0)
    before = counts(url)

    with pytest.raises(ImportRejected) as refused, unit_of_work(url) as session:
        importer.import_file(session, data, "one.xlsx", operator=admin(session), now=T0)

    assert [e.message for e in refused.value.plan.errors] == ["Meter M20001 already exists"]
    assert counts(url) == before


def test_a_csv_of_meters_imports(url: str) -> None:
    data = "\r\n".join([
        "表号,型号,网关名称,通讯地址,户号",
        "M30001,chint_ddsu666,GW-01,10,A102",
        "M30002,chint_ddsu666,GW-01,11,",
    ]).encode("utf-8-sig")

    with unit_of_work(url) as session:
        result = importer.import_file(session, data, "meters.csv", operator=admin(session),
                                      now=T0)

    assert result.counts["meters"] == 2
    with unit_of_work(url) as session:
        rows = session.execute(
            select(Meter.serial, Meter.bus_address, Unit.number)
            .outerjoin(Unit, Unit.id == Meter.unit_id).where(Meter.serial.like("M3%"))
            .order_by(Meter.serial)
        ).all()
    assert [tuple(r) for r in rows] == [("M30001", 10, "A102"), ("M30002", 11, None)]
