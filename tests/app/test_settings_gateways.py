"""Gateways: an engineer adds a serial server, corrects its timing, and cannot remove one that
still has meters on its bus."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import AuditEntry, Gateway
from tests.app.support import Site


def on_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/gateways.py").run()


def gateway(site: Site, name: str) -> Gateway:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Gateway).where(Gateway.name == name)).one()


def test_an_engineer_adds_a_gateway_with_sensible_defaults(site: Site) -> None:
    at = on_page(site)
    assert at.title[0].value == "Gateways"
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["GW-01", "meters"] == "16 / 32"

    at.text_input(key="gateways_name").input("GW-04")
    at.text_input(key="gateways_host").input("192.168.10.24")
    at.selectbox(key="gateways_transport").set_value("rtu-over-tcp")
    at.text_input(key="gateways_port").input("4196")
    at.text_input(key="gateways_interval_s").input("600")
    at.button(key="gateways_save").click().run()

    assert [s.value for s in at.success] == ["Saved GW-04."]
    added = gateway(site, "GW-04")
    assert (added.host, added.port, added.transport, added.timeout_s, added.retries,
            added.interval_s, added.enabled) == (
        "192.168.10.24", 4196, "rtu-over-tcp", Decimal("1.0000"), 1, 600, True)
    assert at.dataframe[0].value.set_index("name").loc["GW-04", "transport"] == (
        "RTU over TCP (transparent serial server)"
    )


def test_picking_a_gateway_fills_the_form_and_saves_only_what_changed(site: Site) -> None:
    at = on_page(site)

    at.selectbox(key="gateways_pick").set_value(gateway(site, "GW-02").id).run()
    assert at.text_input(key="gateways_host").value == "127.0.0.1"
    assert at.text_input(key="gateways_timeout_s").value == "1"
    at.text_input(key="gateways_gap_ms").input("25")
    at.checkbox(key="gateways_enabled").uncheck()
    at.button(key="gateways_save").click().run()

    assert [s.value for s in at.success] == ["Saved GW-02."]
    assert (gateway(site, "GW-02").gap_ms, gateway(site, "GW-02").enabled) == (25, False)
    with unit_of_work(site.url) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "gateway.update")
        ).one()
    assert entry.detail == {"gap_ms": "0 → 25", "enabled": "True → False"}


def test_bad_values_are_listed_and_nothing_is_saved(site: Site) -> None:
    at = on_page(site)

    at.text_input(key="gateways_name").input("GW-01")
    at.text_input(key="gateways_host").input("10.0.0.9")
    at.text_input(key="gateways_port").input("99999")
    at.text_input(key="gateways_retries").input("many")
    at.button(key="gateways_save").click().run()

    assert [e.value for e in at.error] == [
        "Port must be a whole number from 1 to 65535, not '99999'",
        "Retries must be a whole number from 0 to 10, not 'many'",
    ]
    at.text_input(key="gateways_port").input("502")
    at.text_input(key="gateways_retries").input("2")
    at.button(key="gateways_save").click().run()
    assert [e.value for e in at.error] == ["Gateway name GW-01 is already used"]
    with unit_of_work(site.url) as session:
        assert session.scalar(select(func.count()).select_from(Gateway)) == 3


def test_a_gateway_with_meters_stays_an_empty_one_goes(site: Site) -> None:
    at = on_page(site)
    at.selectbox(key="gateways_pick").set_value(gateway(site, "GW-01").id).run()

    at.button(key="gateways_delete").click().run()

    assert [e.value for e in at.error] == [
        "Gateway GW-01 still has 16 meter(s) on its bus: move them to another gateway or "
        "delete them first"
    ]
    at.selectbox(key="gateways_pick").set_value(0).run()
    at.text_input(key="gateways_name").input("GW-09")
    at.text_input(key="gateways_host").input("/dev/ttyUSB0")
    at.selectbox(key="gateways_transport").set_value("serial")
    at.button(key="gateways_save").click().run()
    at.button(key="gateways_delete").click().run()

    assert [s.value for s in at.success] == ["Deleted GW-09."]
    assert at.selectbox(key="gateways_pick").value == 0
    assert list(at.dataframe[0].value["name"]) == ["GW-01", "GW-02", "GW-03"]


def test_a_viewer_has_no_gateways_page(site: Site) -> None:
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        site.open_app("viewer").switch_page("screens/gateways.py")
