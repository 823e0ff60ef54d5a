"""Buildings → floors → units: an engineer adds, corrects and removes them; nobody else can."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Building, Floor, Unit
from tests.app.support import TIMEOUT_S, Site


def site_page() -> None:
    from app.screens.site import render

    render()


def on_page(site: Site, username: str = "admin") -> AppTest:
    return site.open_app(username).switch_page("screens/site.py").run()


def building_id(site: Site, code: str) -> int:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Building.id).where(Building.code == code)).one()


def test_an_engineer_adds_a_building_a_basement_and_a_shop(site: Site) -> None:
    at = on_page(site)
    assert at.title[0].value == "Buildings, floors and units"
    assert list(at.dataframe[0].value["code"]) == ["A", "B"]

    at.text_input(key="site_building_code").input("C")
    at.text_input(key="site_building_name").input("Building C C栋")
    at.button(key="site_building_save").click().run()

    assert [s.value for s in at.success] == ["Saved C."]
    assert list(at.dataframe[0].value["code"]) == ["A", "B", "C"]
    # The form now edits the building just added.
    assert at.selectbox(key="site_building_pick").value == building_id(site, "C")

    at.selectbox(key="site_floor_building").set_value(building_id(site, "C"))
    at.text_input(key="site_floor_level").input("-1")
    at.text_input(key="site_floor_name").input("C-B1")
    at.button(key="site_floor_save").click().run()
    assert [s.value for s in at.success] == ["Saved C-B1."]

    with unit_of_work(site.url) as session:
        floor_id = session.scalars(select(Floor.id).where(Floor.name == "C-B1")).one()
    at.selectbox(key="site_unit_floor").set_value(floor_id)
    at.text_input(key="site_unit_number").input("CB01")
    at.text_input(key="site_unit_area_m2").input("120.5")
    at.button(key="site_unit_save").click().run()

    assert [s.value for s in at.success] == ["Saved CB01."]
    units = at.dataframe[2].value.set_index("number")
    assert (units.loc["CB01", "building"], units.loc["CB01", "floor"],
            float(units.loc["CB01", "area_m2"])) == ("C", "C-B1", 120.5)
    assert [d.proto.label for d in at.get("download_button")] == ["Export to Excel"] * 3


def test_mistakes_are_explained_and_nothing_is_saved(site: Site) -> None:
    at = on_page(site)

    at.text_input(key="site_building_code").input("C 1")
    at.button(key="site_building_save").click().run()

    assert [e.value for e in at.error] == [
        "Building code cannot contain spaces, not 'C 1'",
        "Building name is required",
    ]
    assert at.text_input(key="site_building_code").value == "C 1"  # corrected in place

    at.selectbox(key="site_unit_floor").set_value(None)
    at.text_input(key="site_unit_number").input("A101")
    at.button(key="site_unit_save").click().run()
    assert [e.value for e in at.error] == ["Add a floor first: units belong to a floor."]

    with unit_of_work(site.url) as session:
        first_floor = session.scalars(select(Floor.id).order_by(Floor.id)).first()
    at.selectbox(key="site_unit_floor").set_value(first_floor)
    at.button(key="site_unit_save").click().run()
    assert [e.value for e in at.error] == ["Unit number A101 is already used"]
    with unit_of_work(site.url) as session:
        assert session.scalar(select(func.count()).select_from(Building)) == 2
        assert session.scalar(select(func.count()).select_from(Unit)) == 48


def test_a_building_in_use_is_not_deleted_and_its_form_is_filled(site: Site) -> None:
    at = on_page(site)

    at.selectbox(key="site_building_pick").set_value(building_id(site, "A")).run()
    assert at.text_input(key="site_building_name").value == "Building A A栋"
    at.text_input(key="site_building_name").input("Building A 东区")
    at.button(key="site_building_save").click().run()
    assert [s.value for s in at.success] == ["Saved A."]
    at.button(key="site_building_delete").click().run()

    assert [e.value for e in at.error] == [
        "Building A still has 3 floor(s): delete or move them first"
    ]
    with unit_of_work(site.url) as session:
        assert session.get_one(Building, building_id(site, "A")).name == "Building A 东区"


def test_nobody_without_the_configure_permission_gets_the_page(site: Site) -> None:
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        site.open_app("cashier").switch_page("screens/site.py")
    at = AppTest.from_function(site_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to change the site settings. Ask an administrator for the "
        "engineer role."
    ]
    assert not at.text_input


class TestAnEmptySite:
    @pytest.fixture
    def site(self, make_site: Callable[..., Site]) -> Site:
        return make_site(seed=False)

    def test_says_what_to_do_first_in_chinese_too(self, site: Site) -> None:
        at = on_page(site)

        assert [i.value for i in at.info] == [
            "No buildings yet — add the first one here, or import a sheet under Bulk import.",
            "Add a building first: floors belong to a building.",
            "Add a floor first: units belong to a floor.",
        ]
        at.radio(key="lang").set_value("zh").run()
        assert at.title[0].value == "楼栋、楼层与户号"
        assert at.info[1].value == "请先添加楼栋：楼层属于楼栋。"
