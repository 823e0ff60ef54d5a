"""Metering meters: the energy of circuits measured by meters that are not prepaid."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from collector.readings import MeterReading
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Gateway, Meter, Unit
from tests.app.support import Site
from voltpay.settings import get_settings


def local(on: date, hour: int) -> datetime:
    return datetime.combine(on, time(hour), tzinfo=get_settings().tz).astimezone(UTC)


def add_circuits(site: Site) -> date:
    """Two Chint DDSU666 meters on the first gateway: the lighting circuit of shop A101 reads
    100.00 kWh at the end of yesterday and 112.50 kWh at 08:00 today; the air-conditioning
    circuit has never been read. Returns today."""
    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    with unit_of_work(site.url) as session:
        gateway = session.scalars(select(Gateway).order_by(Gateway.id)).first()
        unit = session.scalars(select(Unit).where(Unit.number == "A101")).one()
        lighting = Meter(serial="C-LIGHT-1", profile="chint_ddsu666", gateway=gateway,
                         bus_address=200, unit=unit)
        cooling = Meter(serial="C-AC-1", profile="chint_ddsu666", gateway=gateway,
                        bus_address=201)
        session.add_all([lighting, cooling])
        session.flush()
        lighting_id = lighting.id
    SqlReadingStore(site.url).write([
        MeterReading(lighting_id, local(today, 0) - timedelta(minutes=5), Decimal("100.00")),
        MeterReading(lighting_id, local(today, 8), Decimal("112.50")),
    ])
    return today


def metering_page(site: Site) -> AppTest:
    return site.open_app("viewer").switch_page("screens/metering.py").run()


def test_each_circuit_with_its_registers_and_energy(site: Site) -> None:
    today = add_circuits(site)
    at = metering_page(site)
    at.date_input(key="metering_range").set_value((today, today)).run()

    assert not at.exception
    assert at.title[0].value == "Metering meters"
    table = at.dataframe[0].value.set_index("meter")
    assert list(table.index) == ["C-AC-1", "C-LIGHT-1"]  # the 48 prepaid meters are not here
    light = table.loc["C-LIGHT-1"]
    assert (light["model"], light["unit"], light["circuit"]) == ("Chint DDSU666", "A101",
                                                                   "Shop A101")
    assert (Decimal(str(light["start_kwh"])), Decimal(str(light["end_kwh"]))) == (
        Decimal("100.00"), Decimal("112.50")
    )
    assert Decimal(str(light["energy_kwh"])) == Decimal("12.50")
    assert table.loc["C-AC-1"].isna()["energy_kwh"]
    assert {m.label: m.value for m in at.metric} == {
        "Metering meters": "2", "Energy (kWh)": "12.50", "Without readings": "1"
    }
    assert [b.proto.label for b in at.get("download_button")] == ["Export to Excel"]

    at.text_input(key="metering_search").input("light").run()

    assert list(at.dataframe[0].value["meter"]) == ["C-LIGHT-1"]


def test_a_site_without_metering_meters_says_how_to_add_them(site: Site) -> None:
    at = metering_page(site)

    assert [i.value for i in at.info] == [
        "No metering meters yet — add meters with a metering profile (such as Acrel DTSD1352 "
        "or Chint DDSU666) in settings."
    ]
    assert not at.get("download_button")
