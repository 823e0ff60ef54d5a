"""Reading history: every reading of one meter, found by its serial or unit, in site time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from collector.readings import MeterReading
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import Meter
from tests.app.support import Site
from voltpay.settings import get_settings


def read_meter(site: Site, serial: str) -> list[datetime]:
    """Four readings of the meter today, every 15 minutes from 08:00 site time."""
    tz = get_settings().tz
    today = datetime.now(UTC).astimezone(tz).date()
    with unit_of_work(site.url) as session:
        meter_id = session.scalars(select(Meter.id).where(Meter.serial == serial)).one()
    times = [datetime.combine(today, time(8, 15 * k), tzinfo=tz) for k in range(4)]
    SqlReadingStore(site.url).write([
        MeterReading(meter_id, at.astimezone(UTC), Decimal(100 + k), power_kw=Decimal("4.000"),
                     voltage_v=Decimal("229.8"), current_a=Decimal("17.40"),
                     relay_closed=k < 3)
        for k, at in enumerate(times)
    ])
    return times


def readings_page(site: Site) -> AppTest:
    return site.open_app("viewer").switch_page("screens/readings.py").run()


def test_a_meter_found_by_unit_shows_its_readings_in_site_time(site: Site) -> None:
    times = read_meter(site, "M00002")
    at = readings_page(site)
    assert at.title[0].value == "Reading history"
    assert not at.dataframe  # nothing until a meter is chosen

    at.text_input(key="readings_search").input("a102").run()

    assert not at.exception
    assert at.selectbox(key="readings_meter").value is not None  # the only match is chosen
    table = at.dataframe[0].value
    assert [ts.to_pydatetime() for ts in table["at"]] == [t.replace(tzinfo=None) for t in times]
    assert [Decimal(str(v)) for v in table["energy_kwh"]] == [Decimal(100 + k) for k in range(4)]
    assert list(table["relay"]) == ["● closed"] * 3 + ["○ open (tripped)"]
    assert at.caption[0].value == "4 readings"
    assert len(at.get("plotly_chart")) == 1
    assert [b.proto.label for b in at.get("download_button")] == ["Export to Excel"]


def test_empty_states_say_what_to_try(site: Site) -> None:
    at = readings_page(site)

    at.text_input(key="readings_search").input("nothing-like-this").run()
    assert at.info[0].value.startswith("No meter matches “nothing-like-this”")

    at.text_input(key="readings_search").input("M00003").run()
    assert at.info[0].value.startswith("No readings of M00003 from")

    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    at.date_input(key="readings_range").set_value((today - timedelta(days=40), today)).run()
    assert [e.value for e in at.error] == ["Choose at most 31 days"]
