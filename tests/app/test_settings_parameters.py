"""Default parameters: the form shows what is in force; saving checks every value first."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from billing import parameters
from schema.db import unit_of_work
from schema.models import SiteParameter, Tariff
from tests.app.support import Site

FIELDS = ("overload_kw", "collect_interval_s", "alarm1_amount", "alarm2_amount",
          "hoarding_limit", "max_sale_amount", "alarm_sms_number")


def on_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/parameters.py").run()


def form(at: AppTest) -> dict[str, object]:
    values: dict[str, object] = {
        field: at.text_input(key=f"parameters_{field}").value for field in FIELDS
    }
    values["default_tariff_id"] = at.selectbox(key="parameters_default_tariff_id").value
    return values


def demo_tariff(site: Site) -> int:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Tariff.id).where(Tariff.is_default.is_(True))).one()


def test_the_form_shows_the_parameters_in_force(site: Site) -> None:
    at = on_page(site)

    assert at.title[0].value == "Default parameters"
    assert form(at) == {
        "overload_kw": "30.00", "collect_interval_s": "1800", "alarm1_amount": "50.00",
        "alarm2_amount": "20.00", "hoarding_limit": "100000.00", "max_sale_amount": "50000.00",
        "alarm_sms_number": "", "default_tariff_id": demo_tariff(site),
    }


def test_saving_stores_the_new_values_and_billing_uses_them(site: Site) -> None:
    at = on_page(site)

    at.text_input(key="parameters_hoarding_limit").input("20000")
    at.text_input(key="parameters_alarm1_amount").input("80")
    at.text_input(key="parameters_alarm_sms_number").input("138 0000 0000")
    at.selectbox(key="parameters_default_tariff_id").set_value(None)
    at.button(key="parameters_save").click().run()

    assert [s.value for s in at.success] == ["Parameters saved."]
    assert at.text_input(key="parameters_hoarding_limit").value == "20000.00"
    assert at.text_input(key="parameters_alarm_sms_number").value == "13800000000"
    with unit_of_work(site.url) as session:
        assert parameters.get(session, "hoarding_limit") == Decimal("20000.00")
        assert parameters.get(session, "alarm1_amount") == Decimal("80.00")
        assert not session.scalars(select(Tariff).where(Tariff.is_default.is_(True))).all()
        assert session.scalar(select(func.count()).select_from(SiteParameter)) == 4

    at.button(key="parameters_save").click().run()
    assert [s.value for s in at.success] == ["Nothing changed."]


def test_every_bad_value_is_named_and_nothing_is_saved(site: Site) -> None:
    at = on_page(site)

    at.text_input(key="parameters_collect_interval_s").input("1")
    at.text_input(key="parameters_alarm2_amount").input("70")
    at.text_input(key="parameters_max_sale_amount").input("ten")
    at.button(key="parameters_save").click().run()

    assert [e.value for e in at.error] == [
        "Collection interval (s) must be a whole number from 10 to 86400, not '1'",
        "Max sale amount must be a number, not 'ten'",
    ]
    at.text_input(key="parameters_collect_interval_s").input("600")
    at.text_input(key="parameters_max_sale_amount").input("10000")
    at.button(key="parameters_save").click().run()
    assert [e.value for e in at.error] == [
        "Alarm 2 amount (70.00) must be lower than alarm 1 amount (50.00): alarm 2 is the last "
        "warning before arrears"
    ]
    assert at.text_input(key="parameters_alarm2_amount").value == "70"
    with unit_of_work(site.url) as session:
        assert session.scalar(select(func.count()).select_from(SiteParameter)) == 0


def test_a_viewer_has_no_parameters_page(site: Site) -> None:
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        site.open_app("viewer").switch_page("screens/parameters.py")
