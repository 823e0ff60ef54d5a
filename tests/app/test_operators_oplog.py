"""Operation log page (操作日志): every change appears, filters narrow it, it exports to Excel."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from streamlit.testing.v1 import AppTest

from app import auth
from app.export import Column, xlsx_bytes
from billing import oplog
from billing.operators import attempt_login, reset_password
from schema.db import unit_of_work
from schema.models import Operator
from tests.app.support import TIMEOUT_S, Site


def oplog_page() -> None:
    from app.screens.oplog import render

    render()


def admin_on_page(site: Site) -> AppTest:
    return site.open_app("admin").switch_page("screens/oplog.py").run()


def search(at: AppTest, **filters: str) -> AppTest:
    for key, value in filters.items():
        at.text_input(key=f"oplog_{key}").input(value)
    return at.button(key="oplog_submit").click().run()


def test_the_log_shows_recent_changes_newest_first(site: Site) -> None:
    with unit_of_work(site.url) as session:
        admin = session.get_one(Operator, site.operator_ids["admin"])
        reset_password(session, operator=admin, operator_id=site.operator_ids["cashier"],
                       password="temporary-1", now=auth.utcnow())
    at = admin_on_page(site)

    assert at.title[0].value == "Operation log"
    table = at.dataframe[0].value
    assert (table["actor"][0], table["action"][0], table["target"][0]) == (
        "admin", "operator.reset_password", "cashier",
    )
    assert "sale" in set(table["action"])  # the demo site's opening sales
    assert at.caption[0].value == f"{len(table)} entries, newest first."
    assert [b.proto.label for b in at.get("download_button")] == ["Export to Excel"]


def test_filters_by_action_target_and_operator(site: Site) -> None:
    with unit_of_work(site.url) as session:
        attempt_login(session, "viewer", "guess", now=auth.utcnow())
    at = admin_on_page(site)

    search(at, action="login", target="VIEW")

    table = at.dataframe[0].value
    assert list(zip(table["actor"], table["action"], table["target"], strict=True)) == [
        ("system", "login.failed", "viewer"),
    ]
    assert table["detail"][0] == "reason=wrong password; attempt=1"

    at.selectbox(key="oplog_actor").set_value("cashier")
    search(at, action="", target="")
    assert not at.dataframe
    assert [i.value for i in at.info] == [
        "No entries match. Widen the date range or clear the filters."
    ]


def test_a_date_range_the_wrong_way_round_is_refused(site: Site) -> None:
    at = admin_on_page(site)
    today = auth.utcnow().astimezone(auth.get_settings().tz).date()
    at.date_input(key="oplog_start").set_value(today)
    at.date_input(key="oplog_end").set_value(today - timedelta(days=1))

    at.button(key="oplog_submit").click().run()

    assert [e.value for e in at.error] == ["The start date is after the end date"]


def test_older_entries_are_outside_the_default_week(site: Site) -> None:
    with unit_of_work(site.url) as session:
        admin = session.get_one(Operator, site.operator_ids["admin"])
        reset_password(session, operator=admin, operator_id=site.operator_ids["viewer"],
                       password="temporary-1", now=auth.utcnow() - timedelta(days=10))
    at = admin_on_page(site)
    search(at, target="viewer")
    assert "operator.reset_password" not in set(at.dataframe[0].value["action"])

    at.date_input(key="oplog_start").set_value(
        auth.utcnow().astimezone(auth.get_settings().tz).date() - timedelta(days=30)
    )
    at.button(key="oplog_submit").click().run()

    assert "operator.reset_password" in set(at.dataframe[0].value["action"])


def test_the_export_has_the_rows_with_real_headers(site: Site) -> None:
    tz = auth.get_settings().tz
    with unit_of_work(site.url) as session:
        page = oplog.search(session, operator=session.get_one(Operator, site.operator_ids["admin"]),
                            tz=tz)
    rows = [{"at": r.at.astimezone(tz).replace(tzinfo=None), "actor": r.actor,
             "action": r.action, "target": r.target, "detail": r.detail} for r in page.rows]
    columns = [Column("at", "Time (Asia/Shanghai)"), Column("actor", "Operator"),
               Column("action", "Action"), Column("target", "Target"),
               Column("detail", "Details", width=60)]

    sheet = load_workbook(io.BytesIO(xlsx_bytes(rows, columns, sheet="Operation log"))).active

    assert sheet is not None
    assert [c.value for c in sheet[1]] == [
        "Time (Asia/Shanghai)", "Operator", "Action", "Target", "Details",
    ]
    assert sheet.max_row == len(page.rows) + 1
    assert sheet["A2"].number_format == "yyyy-mm-dd hh:mm:ss"


def test_a_viewer_has_no_log_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/oplog.py")


def test_the_page_itself_refuses_a_cashier(site: Site) -> None:
    at = AppTest.from_function(oplog_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to read the operation log. "
        "Ask an administrator for the operators permission."
    ]
    assert not at.dataframe


def test_the_page_in_chinese(site: Site) -> None:
    at = site.open_app("admin")
    at.radio(key="lang").set_value("zh").run()

    at.switch_page("screens/oplog.py").run()

    assert at.title[0].value == "操作日志"
    assert at.caption[0].value.endswith("条，最新的在前。")
