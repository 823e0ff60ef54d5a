"""Energy analysis: an energy manager sees a week of consumption and cost, by place."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from billing.charging import charge_readings
from billing.policy import BillingPolicy
from collector.readings import MeterReading
from collector.tsdb_sql import SqlReadingStore
from schema.db import unit_of_work
from schema.models import ChargeDaily, Meter
from tests.app.support import Site
from voltpay.settings import get_settings


def local_noon(on: date) -> datetime:
    return datetime.combine(on, time(12), tzinfo=get_settings().tz).astimezone(UTC)


def use_energy(site: Site, serials: dict[str, int], days: int = 14) -> date:
    """Each meter's register rises by its kWh every local day for `days` days up to today, at
    noon, and billing charges its account for it at the meter's own price of 1.00 per kWh.
    Returns today."""
    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    readings = []
    with unit_of_work(site.url) as session:
        for serial, kwh in serials.items():
            meter = session.scalars(select(Meter).where(Meter.serial == serial)).one()
            meter.price_per_kwh = Decimal("1.00")
            for k in range(days + 1):
                at = local_noon(today - timedelta(days=days - k))
                readings.append(MeterReading(meter.id, at, Decimal(k * kwh)))
        charge_readings(session, readings, policy=BillingPolicy(tz=get_settings().tz),
                        now=datetime.now(UTC))
    SqlReadingStore(site.url).write(readings)
    return today


def energy_page(site: Site, username: str = "viewer") -> AppTest:
    return site.open_app(username).switch_page("screens/energy.py").run()


def test_a_week_of_energy_and_cost_with_the_previous_week(site: Site) -> None:
    # Shops A101 and A102 on floor A1F of building A, shop B101 in building B.
    use_energy(site, {"M00001": 3, "M00002": 2, "M00025": 5})

    at = energy_page(site)

    assert not at.exception
    assert at.title[0].value == "Energy analysis"
    metrics = {m.label: m for m in at.metric}
    # 7 days of 10 kWh a day, as much as the week before. Charges split each noon-to-noon
    # interval at midnight, and today's afternoon is not read yet: today's cost is half a day.
    assert metrics["Energy (kWh)"].value == "70.00"
    assert metrics["Cost (CNY)"].value == "65.00"
    assert metrics["Energy (kWh)"].delta == "+0.0%"
    assert metrics["Average per day (kWh)"].value == "10.00"
    assert len(at.get("plotly_chart")) == 1
    days, places = at.dataframe[0].value, at.dataframe[1].value
    assert list(days["energy_kwh"]) == [10.0] * 7
    assert list(days["cost"]) == [10.0] * 6 + [5.0]
    assert list(days["cost_"]) == list(days["cost"])  # all at the meters' one rate
    assert list(places["place"]) == ["Building A A栋", "Building B B栋"]
    assert list(places["energy_kwh"]) == [35.0, 35.0]
    assert [b.proto.label for b in at.get("download_button")] == [
        "Export days to Excel", "Export places to Excel"
    ]
    assert "stacked by tariff band" in at.caption[0].value
    at.radio(key="energy_stack").set_value("place").run()
    assert "stacked by building" in at.caption[0].value

    # Down to floor A1F: its shops side by side.
    at.selectbox(key="energy_building").select_index(1).run()
    at.selectbox(key="energy_floor").select_index(1).run()

    places = at.dataframe[1].value
    assert list(places["place"][:3]) == ["A101", "A102", "A103"]
    assert list(places["energy_kwh"][:3]) == [21.0, 14.0, 0.0]
    assert "stacked by unit" in at.caption[0].value


def test_a_longer_range_and_cost_in_chinese(site: Site) -> None:
    today = use_energy(site, {"M00001": 3})
    at = energy_page(site)

    at.date_input(key="energy_range").set_value((today - timedelta(days=2), today)).run()
    at.radio(key="energy_measure").set_value("cost").run()
    at.radio(key="lang").set_value("zh").run()

    assert not at.exception
    assert at.title[0].value == "能耗分析"
    assert {m.label: m.value for m in at.metric}["用电量 (kWh)"] == "9.00"
    assert len(at.dataframe[0].value) == 3


def test_a_range_without_readings_says_what_to_check(site: Site) -> None:
    at = energy_page(site)

    assert at.info[0].value.startswith("No readings or charges from")
    assert not at.get("download_button")


def test_a_site_without_meters_says_where_to_add_them(make_site: Callable[..., Site]) -> None:
    at = energy_page(make_site(seed=False), "admin")

    assert [i.value for i in at.info] == [
        "No meters here yet — add meters to units in settings, or choose another place."
    ]


def test_bars_stack_by_tariff_band_with_a_column_per_band(site: Site) -> None:
    """What billing charged yesterday on meter M00001: 2 kWh at peak (2.20) and 3 kWh in the
    valley (0.90), and 4 kWh M00002 used that nobody was charged for."""
    today = datetime.now(UTC).astimezone(get_settings().tz).date()
    yesterday = today - timedelta(days=1)
    with unit_of_work(site.url) as session:
        ids = {serial: meter_id for serial, meter_id in session.execute(
            select(Meter.serial, Meter.id))}
        session.add_all([
            ChargeDaily(meter_id=ids["M00001"], on_date=yesterday, band="peak",
                        energy_kwh=Decimal(2), cost=Decimal("2.20")),
            ChargeDaily(meter_id=ids["M00001"], on_date=yesterday, band="valley",
                        energy_kwh=Decimal(3), cost=Decimal("0.90")),
        ])
    SqlReadingStore(site.url).write([
        MeterReading(ids[serial], local_noon(on), Decimal(kwh))
        for serial, readings in {"M00001": [(today - timedelta(days=2), 0), (yesterday, 5)],
                                 "M00002": [(today - timedelta(days=2), 0), (yesterday, 4)]
                                 }.items()
        for on, kwh in readings
    ])

    at = energy_page(site)

    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = {trace["name"]: trace["y"] for trace in spec["data"] if trace["type"] == "bar"}
    assert {name: values[-2] for name, values in bars.items()} == {
        "Peak": 2.0, "Valley": 3.0, "Not charged": 4.0}
    at.radio(key="energy_measure").set_value("cost").run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = {trace["name"]: trace["y"] for trace in spec["data"] if trace["type"] == "bar"}
    assert {name: values[-2] for name, values in bars.items()} == {"Peak": 2.2, "Valley": 0.9}
    day = at.dataframe[0].value.set_index("date").iloc[-2]
    assert (day["kwh_peak"], day["cost_peak"], day["kwh_valley"], day["cost_valley"]) == (
        Decimal("2.00"), Decimal("2.20"), Decimal("3.00"), Decimal("0.90"))
    assert day["cost"] == Decimal("3.10")
