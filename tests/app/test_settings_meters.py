"""Meters: an engineer puts a meter on a bus, in a unit, with its own thresholds; the rules of
the bus (one meter per address, 32 per gateway) and of the ledger (a meter in use stays) hold."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing import site as site_service
from schema.db import unit_of_work
from schema.models import Gateway, Meter, Operator, Unit
from tests.app.support import Site


def on_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/meters.py").run()


def ids(site: Site) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Gateway, unit and meter ids by name."""
    with unit_of_work(site.url) as session:
        gateways = {name: id_ for name, id_ in session.execute(select(Gateway.name, Gateway.id))}
        units = {number: id_ for number, id_ in session.execute(select(Unit.number, Unit.id))}
        meters = {serial: id_ for serial, id_ in session.execute(select(Meter.serial, Meter.id))}
    return gateways, units, meters


def meter(site: Site, serial: str) -> Meter:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Meter).where(Meter.serial == serial)).one()


def test_an_engineer_adds_a_meter_with_its_own_thresholds(site: Site) -> None:
    gateways, units, _ = ids(site)
    at = on_page(site)
    assert at.title[0].value == "Meters"
    assert len(at.dataframe[0].value) == 48

    at.text_input(key="meters_serial").input("M00049")
    at.selectbox(key="meters_profile").set_value("acrel_ddsy1352")
    at.selectbox(key="meters_gateway_id").set_value(gateways["GW-01"])
    at.text_input(key="meters_bus_address").input("17")
    at.selectbox(key="meters_unit_id").set_value(units["A101"])
    at.text_input(key="meters_ct_ratio").input("20")
    at.text_input(key="meters_alarm1_amount").input("100")
    at.text_input(key="meters_alarm2_amount").input("40")
    at.text_input(key="meters_overload_kw").input("15")
    at.button(key="meters_save").click().run()

    assert not at.error
    assert [s.value for s in at.success] == ["Saved M00049."]
    added = meter(site, "M00049")
    assert (added.profile, added.bus_address, added.unit_id, added.ct_ratio,
            added.alarm1_amount, added.alarm2_amount, added.overload_kw, added.tariff_id) == (
        "acrel_ddsy1352", 17, units["A101"], 20, Decimal("100.0000"), Decimal("40.0000"),
        Decimal("15.0000"), None)
    row = at.dataframe[0].value.set_index("serial").loc["M00049"]
    assert (row["gateway"], row["bus_address"], row["unit"]) == ("GW-01", 17, "A101")


def test_one_meter_per_bus_address(site: Site) -> None:
    gateways, _, _ = ids(site)
    at = on_page(site)

    at.text_input(key="meters_serial").input("M00049")
    at.selectbox(key="meters_gateway_id").set_value(gateways["GW-01"])
    at.text_input(key="meters_bus_address").input("1")
    at.text_input(key="meters_price_per_kwh").input("0.12345")
    at.button(key="meters_save").click().run()
    assert [e.value for e in at.error] == [
        "Price per kWh can have at most 4 decimal places, not '0.12345'"
    ]

    at.text_input(key="meters_price_per_kwh").input("0.9")
    at.button(key="meters_save").click().run()
    assert [e.value for e in at.error] == [
        "Bus address 1 on gateway GW-01 is already used by meter M00001"
    ]
    with unit_of_work(site.url) as session:
        assert session.scalar(select(func.count()).select_from(Meter)) == 48


def test_a_full_bus_refuses_the_33rd_meter(site: Site) -> None:
    gateways, _, _ = ids(site)
    with unit_of_work(site.url) as session:
        admin = session.get_one(Operator, site.operator_ids["admin"])
        for address in range(17, 33):
            site_service.create_meter(
                session, {"serial": f"M1{address:04d}", "profile": "acrel_dtsy1352",
                          "gateway_id": gateways["GW-01"], "bus_address": address},
                operator=admin, now=admin.created_at,
            )
    at = on_page(site)

    at.text_input(key="meters_serial").input("M10033")
    at.selectbox(key="meters_gateway_id").set_value(gateways["GW-01"])
    at.text_input(key="meters_bus_address").input("33")
    at.button(key="meters_save").click().run()

    assert [e.value for e in at.error] == [
        "Gateway GW-01 already has 32 meters: an RS-485 bus takes at most 32; put this meter "
        "on another gateway"
    ]


def test_a_meter_on_an_account_stays_one_never_used_goes(site: Site) -> None:
    _, _, meters = ids(site)
    at = on_page(site)

    at.selectbox(key="meters_pick").set_value(meters["M00001"]).run()
    assert at.text_input(key="meters_serial").value == "M00001"
    at.button(key="meters_delete").click().run()
    assert [e.value for e in at.error] == [
        "Meter M00001 is on open account 10001: take it off the account (or close the account) "
        "first"
    ]

    # The demo leaves every ninth shop without an account: M00009 was never opened or read.
    at.selectbox(key="meters_pick").set_value(meters["M00009"]).run()
    at.button(key="meters_delete").click().run()
    assert [s.value for s in at.success] == ["Deleted M00009."]
    assert "M00009" not in list(at.dataframe[0].value["serial"])


def test_a_cashier_has_no_meters_settings_page(site: Site) -> None:
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        site.open_app("cashier").switch_page("screens/meters.py")


class TestASiteWithoutGateways:
    @pytest.fixture
    def site(self, make_site: Callable[..., Site]) -> Site:
        return make_site(seed=False)

    def test_asks_for_a_gateway_first(self, site: Site) -> None:
        at = on_page(site)

        assert [i.value for i in at.info] == [
            "Add a gateway first: every meter is on a gateway's bus."
        ]
        assert not at.text_input
