"""Batch operations (遥控): every meter coloured by state, filtered, selected, sent a command whose
progress is watched live, and exported to Excel; only the control permission sends."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select, update
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Account, Building, Command, Floor, Meter, Operator
from tests.app.support import Downloads, Site


def open_page(site: Site, username: str = "admin") -> AppTest:
    at = site.open_app(username)
    return at.switch_page("screens/control.py").run()


def grid(at: AppTest) -> Any:
    return at.dataframe(key="control_grid").value


def select_rows(at: AppTest, *meters: str) -> AppTest:
    """Tick the rows of these meters, as a click in the table does."""
    shown = list(grid(at)["meter"])
    at.session_state["control_grid"] = {
        "selection": {"rows": [shown.index(m) for m in meters], "columns": [], "cells": []}
    }
    return at.run()


def commands(at: AppTest) -> Any:
    """The live table of the commands sent (below the grid; a table without selection has no
    key AppTest can find it by)."""
    (table,) = at.dataframe[1:]
    return table.value


def send(at: AppTest, kind: str, reason: str = "") -> AppTest:
    at.selectbox(key="control_kind").set_value(kind)
    at.text_input(key="control_reason").input(reason)
    return at.button(key="control_send").click().run()


def last_command(site: Site) -> int:
    with unit_of_work(site.url) as session:
        return session.scalar(select(func.max(Command.id))) or 0


def queued(site: Site, after: int) -> list[tuple[str, str, str]]:
    """(meter, kind, state) of the commands after command id `after`: those the test sent."""
    with unit_of_work(site.url) as session:
        return [
            (serial, kind, state)
            for serial, kind, state in session.execute(
                select(Meter.serial, Command.kind, Command.state)
                .join(Meter, Meter.id == Command.meter_id)
                .where(Command.id > after)
                .order_by(Meter.serial)
            )
        ]


def test_every_meter_is_coloured_by_its_state_with_a_legend(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.execute(update(Meter).where(Meter.serial == "M00002")
                        .values(lost_since=datetime(2026, 1, 31, 20, 30, tzinfo=UTC)))
        session.execute(update(Account).where(Account.number == "10001")
                        .values(balance=Decimal("-3"), alarm_level="arrears"))

    at = open_page(site, "viewer")

    assert at.title[0].value == "Batch operations"
    table = grid(at).set_index("meter")
    assert len(table) == 48
    states = {meter: list(state) for meter, state in table["state"].items()}
    assert states["M00001"] == ["arrears"]
    assert states["M00002"] == ["lost"]
    assert states["M00009"] == ["not_opened"]  # the demo leaves every 9th shop unopened
    assert str(table.loc["M00002", "lost_since"]) == "2026-02-01 04:30:00"  # site time
    assert table.loc["M00001", "balance"] == -3.0
    assert table.loc["M00001", "alarm_level"] == "Arrears"
    assert (table.loc["M00003", "unit"], table.loc["M00003", "building"],
            table.loc["M00003", "floor"]) == ("A103", "Building A A栋", "A1F")
    counts = {state: sum(1 for s in states.values() if s == [state])
              for state in ("lost", "arrears", "alarm2", "alarm1", "opened", "not_opened")}
    assert counts["not_opened"] == 5 and counts["lost"] == 1 and counts["arrears"] == 1
    legend = at.markdown[0].value
    assert legend == (
        f"States: :violet-badge[Lost contact · 1] :red-badge[Arrears · 1] "
        f":orange-badge[Alarm 2 · {counts['alarm2']}] :yellow-badge[Alarm 1 · {counts['alarm1']}] "
        f":green-badge[Opened · {counts['opened']}] :gray-badge[Not opened · 5]"
    )
    # The State column draws each state as a tag in the legend's colour.
    options = json.loads(at.dataframe(key="control_grid").proto.columns)["state"]["type_config"]
    assert [(o["value"], o["label"], o["color"]) for o in options["options"]] == [
        ("lost", "Lost contact", "violet"), ("arrears", "Arrears", "red"),
        ("alarm2", "Alarm 2", "orange"), ("alarm1", "Alarm 1", "yellow"),
        ("opened", "Opened", "green"), ("not_opened", "Not opened", "gray"),
    ]


def test_filters_narrow_the_grid_by_building_floor_state_and_text(site: Site) -> None:
    with unit_of_work(site.url) as session:
        building_b = session.scalars(select(Building.id).where(Building.code == "B")).one()
        floor_a2 = session.scalars(select(Floor.id).where(Floor.name == "A2F")).one()
    at = open_page(site)

    at.multiselect(key="control_building").set_value([building_b]).run()
    assert set(grid(at)["building"]) == {"Building B B栋"}
    assert len(grid(at)) == 24

    at.multiselect(key="control_building").set_value([]).run()
    at.multiselect(key="control_floor").set_value([floor_a2]).run()
    assert list(grid(at)["unit"]) == [f"A2{n:02d}" for n in range(1, 9)]

    at.multiselect(key="control_floor").set_value([]).run()
    at.multiselect(key="control_state").set_value(["not_opened"]).run()
    assert list(grid(at)["meter"]) == ["M00009", "M00018", "M00027", "M00036", "M00045"]
    assert at.caption[0].value.startswith("5 of 48 meters shown · 0 selected")

    at.multiselect(key="control_state").set_value([]).run()
    at.text_input(key="control_search").input("bakery").run()
    assert set(grid(at)["tenant"]) == {"Golden Bakery 金麦面包"}

    at.text_input(key="control_search").input("nothing like this").run()
    assert not at.dataframe
    assert [i.value for i in at.info] == [
        "No meter matches these filters — clear a filter to see more."
    ]


def test_a_filter_change_clears_the_selection(site: Site) -> None:
    at = select_rows(open_page(site), "M00001", "M00002")
    assert at.caption[0].value.startswith("48 of 48 meters shown · 2 selected")

    at.multiselect(key="control_state").set_value(["opened"]).run()

    assert " · 0 selected" in at.caption[0].value


def test_selected_meters_are_tripped_and_the_commands_are_watched_live(site: Site) -> None:
    before = last_command(site)
    at = select_rows(open_page(site), "M00001", "M00003")
    assert at.caption[1].value == "2 meter(s): M00001, M00003"

    send(at, "trip", "electrical inspection")

    assert not at.error
    assert [s.value for s in at.success] == ["2 command(s) queued. Follow them below."]
    assert queued(site, before) == [("M00001", "trip", "queued"), ("M00003", "trip", "queued")]
    with unit_of_work(site.url) as session:
        reasons = set(session.scalars(select(Command.reason).where(Command.id > before)))
    assert reasons == {"electrical inspection"}
    live = commands(at)
    assert list(live["meter"]) == ["M00003", "M00001"]
    assert list(live["kind"]) == ["Trip", "Trip"]
    assert [list(s) for s in live["state"]] == [["queued"], ["queued"]]

    # The collector writes the relay and reads it back; the table follows on its next refresh.
    with unit_of_work(site.url) as session:
        first = session.scalars(
            select(Command).where(Command.id > before).order_by(Command.id)
        ).first()
        assert first is not None
        first.state, first.attempts, first.result = "confirmed", 1, "relay open (read back)"
        first.completed_at = datetime.now(UTC)
    at.run()

    live = commands(at).set_index("meter")
    assert list(live.loc["M00001", "state"]) == ["confirmed"]
    assert live.loc["M00001", "attempts"] == 1
    assert live.loc["M00001", "result"] == "relay open (read back)"
    assert list(live.loc["M00003", "state"]) == ["queued"]
    assert ":green-badge[confirmed · 1]" in at.markdown[1].value

    at.button(key="control_commands_clear").click().run()
    assert len(at.dataframe) == 1  # the grid alone


def test_power_protect_for_every_meter_shown(site: Site) -> None:
    with unit_of_work(site.url) as session:
        floor_b3 = session.scalars(select(Floor.id).where(Floor.name == "B3F")).one()
    at = open_page(site)
    at.multiselect(key="control_floor").set_value([floor_b3]).run()
    at.checkbox(key="control_all_shown").check()

    send(at, "protect_on")

    assert [s.value for s in at.success] == ["8 command(s) queued. Follow them below."]
    with unit_of_work(site.url) as session:
        protected = session.scalars(
            select(Meter.serial).where(Meter.power_protect.is_(True)).order_by(Meter.serial)
        ).all()
    assert protected == [f"M{n:05d}" for n in range(41, 49)]
    at.run()  # the next look at the grid shows it
    assert set(grid(at)["protect"]) == {"on"}


def test_skipped_meters_are_named(site: Site) -> None:
    at = select_rows(open_page(site), "M00005")
    send(at, "trip")

    send(select_rows(at, "M00005", "M00006"), "trip")

    assert [s.value for s in at.success] == ["1 command(s) queued. Follow them below."]
    assert [w.value for w in at.warning] == ["Skipped: M00005: a trip is already waiting"]


def test_nothing_selected_sends_nothing(site: Site) -> None:
    before = last_command(site)
    at = open_page(site)

    send(at, "trip")

    assert [e.value for e in at.error] == ["Select meters in the table first."]
    assert queued(site, before) == []


def test_a_viewer_sees_the_grid_but_the_service_refuses_to_send(site: Site) -> None:
    before = last_command(site)
    at = open_page(site, "viewer")
    assert [i.value for i in at.info] == [
        "Sending commands needs the control permission — ask an administrator."
    ]

    send(select_rows(at, "M00001"), "trip")

    assert [e.value for e in at.error] == ["viewer is not allowed to do this (control)"]
    assert queued(site, before) == []
    assert len(at.dataframe) == 1  # the grid alone


def test_an_operator_demoted_meanwhile_is_refused(site: Site) -> None:
    before = last_command(site)
    at = select_rows(open_page(site), "M00001")
    with unit_of_work(site.url) as session:
        session.get_one(Operator, site.operator_ids["admin"]).role = "viewer"

    send(at, "close")

    assert [e.value for e in at.error] == ["admin is not allowed to do this (control)"]
    assert queued(site, before) == []


def test_the_grid_exports_to_excel_with_its_headers(site: Site, downloads: Downloads) -> None:
    at = open_page(site)
    assert at.get("download_button")[0].proto.label == "Export to Excel"

    (name,) = [n for n in downloads if n.startswith("meters-")]
    sheet = load_workbook(io.BytesIO(downloads[name]()))["Batch operations"]

    rows = list(sheet.values)
    assert rows[0] == (
        "State", "Unit", "Building", "Floor", "Meter", "Gateway", "Account", "Tenant",
        "Balance (CNY)", "Days left", "Runs out on", "Relay", "Power-protect", "Alarm level",
        "Last reading (Asia/Shanghai)", "Contact lost since (Asia/Shanghai)",
    )
    assert len(rows) == 49
    assert rows[1][:9] == ("Opened", "A101", "Building A A栋", "A1F", "M00001", "GW-01",
                           "10001", "Lucky Noodle House 福满面馆",
                           float(site.account("10001").balance))
    assert sheet["I2"].number_format == "#,##0.00"
    assert rows[9][0] == "Not opened"


def test_in_chinese(site: Site) -> None:
    at = site.open_app("admin")
    at.session_state["lang"] = "zh"
    at.switch_page("screens/control.py").run()

    assert at.title[0].value == "批量操作"
    assert at.markdown[0].value.startswith("状态：:violet-badge[失联 · 0] :red-badge[欠费 · 0]")
    assert at.selectbox(key="control_kind").options[0] == "拉闸——切断供电"


def test_an_empty_site_says_what_to_do(make_site: Callable[..., Site]) -> None:
    at = open_page(make_site(seed=False))

    assert [i.value for i in at.info] == [
        "No meters yet — add meters in settings, or run `make run` to seed the demo site."
    ]
    assert not at.dataframe
