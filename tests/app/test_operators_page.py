"""Operators page (操作员管理): an administrator creates, disables, unlocks, resets and re-roles
operators; nobody without the operators permission can, even with the page in front of them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app import auth
from billing.operators import attempt_login
from schema.db import unit_of_work
from schema.models import AuditEntry, Operator, Role
from tests.app.support import TIMEOUT_S, Site


def operators_page() -> None:
    from app.screens.operators import render

    render()


def admin_on_page(site: Site) -> AppTest:
    return site.open_app("admin").switch_page("screens/operators.py").run()


def by_name(site: Site, username: str) -> Operator | None:
    with unit_of_work(site.url) as session:
        return session.scalars(select(Operator).where(Operator.username == username)).first()


def audit_actions(site: Site, target: str) -> list[str]:
    with unit_of_work(site.url) as session:
        return list(session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == target).order_by(AuditEntry.id)
        ))


def choose(at: AppTest, site: Site, username: str) -> AppTest:
    return at.selectbox(key="operators_target").set_value(site.operator_ids[username]).run()


def test_the_administrator_sees_every_operator_and_can_export_them(site: Site) -> None:
    at = admin_on_page(site)

    assert at.title[0].value == "Operators"
    table = at.dataframe[0].value
    assert list(table["username"]) == ["admin", "cashier", "viewer"]
    assert list(table["role"]) == ["administrator", "cashier", "viewer"]
    assert list(table["status"]) == ["active"] * 3
    (export,) = at.get("download_button")
    assert export.proto.label == "Export to Excel"


def test_a_new_operator_is_created_and_can_log_in(site: Site) -> None:
    at = admin_on_page(site)
    at.text_input(key="operators_new_username").input("li.na")
    at.text_input(key="operators_new_display_name").input("李娜")
    at.selectbox(key="operators_new_role").set_value("engineer")
    at.text_input(key="operators_new_password").input("first-day-pw")

    at.button(key="operators_new_submit").click().run()

    assert not at.error
    assert [s.value for s in at.success] == [
        "Operator li.na created. Give them the initial password; "
        "they can change it under Change password."
    ]
    assert "li.na" in list(at.dataframe[0].value["username"])
    assert at.text_input(key="operators_new_username").value == ""  # ready for the next one
    created = by_name(site, "li.na")
    assert created is not None and created.role == "engineer"
    with unit_of_work(site.url) as session:
        assert attempt_login(session, "li.na", "first-day-pw", now=auth.utcnow()).outcome == "ok"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("li.na", "short", "A password needs at least 8 characters"),
        ("cashier", "long enough", "Operator cashier already exists"),
        ("li na", "long enough",
         "A user name is at most 64 letters, digits or . _ @ - (no spaces), for example li.na"),
    ],
)
def test_a_bad_new_operator_shows_why_and_keeps_the_form(
    site: Site, username: str, password: str, message: str
) -> None:
    at = admin_on_page(site)
    at.text_input(key="operators_new_username").input(username)
    at.text_input(key="operators_new_password").input(password)

    at.button(key="operators_new_submit").click().run()

    assert [e.value for e in at.error] == [message]
    assert at.text_input(key="operators_new_username").value == username
    assert len(at.dataframe[0].value) == 3


def test_disable_then_enable_an_operator(site: Site) -> None:
    at = choose(admin_on_page(site), site, "cashier")

    at.button(key="operators_disable").click().run()

    assert [s.value for s in at.success] == ["cashier is disabled and cannot log in."]
    assert list(at.dataframe[0].value["status"]) == [
        "active", "disabled", "active",
    ]
    cashier = by_name(site, "cashier")
    assert cashier is not None and not cashier.is_active

    at.button(key="operators_enable").click().run()

    assert [s.value for s in at.success] == ["cashier is enabled and can log in again."]
    assert audit_actions(site, "cashier")[-2:] == ["operator.disable", "operator.enable"]


def test_the_administrator_cannot_disable_themselves(site: Site) -> None:
    at = choose(admin_on_page(site), site, "admin")

    at.button(key="operators_disable").click().run()

    assert [e.value for e in at.error] == ["You cannot disable your own account"]
    admin = by_name(site, "admin")
    assert admin is not None and admin.is_active


def test_a_locked_operator_is_shown_and_unlocked(site: Site) -> None:
    with unit_of_work(site.url) as session:
        for _ in range(5):
            attempt_login(session, "viewer", "guess", now=auth.utcnow())
    at = admin_on_page(site)
    assert list(at.dataframe[0].value["status"])[2].startswith(
        "locked until "
    )
    choose(at, site, "viewer")
    assert at.warning[0].value.startswith("Locked after 5 wrong passwords until ")

    at.button(key="operators_unlock").click().run()

    assert [s.value for s in at.success] == ["viewer is unlocked."]
    viewer = by_name(site, "viewer")
    assert viewer is not None and viewer.locked_until is None
    with unit_of_work(site.url) as session:
        assert attempt_login(session, "viewer", site.password, now=auth.utcnow()).outcome == "ok"


def test_reset_a_password(site: Site) -> None:
    at = choose(admin_on_page(site), site, "cashier")
    at.text_input(key="operators_reset_password").input("short")
    at.button(key="operators_reset_submit").click().run()
    assert [e.value for e in at.error] == ["A password needs at least 8 characters"]

    at.text_input(key="operators_reset_password").input("temporary-1")
    at.button(key="operators_reset_submit").click().run()

    assert [s.value for s in at.success] == [
        "Password of cashier reset. Give them the temporary password and ask them to change it."
    ]
    with unit_of_work(site.url) as session:
        now = auth.utcnow()
        assert attempt_login(session, "cashier", site.password, now=now).outcome == "wrong"
        assert attempt_login(session, "cashier", "temporary-1", now=now).outcome == "ok"
    table = at.dataframe[0].value
    assert list(table["password"])[1] == "set by an administrator"


def test_change_a_role(site: Site) -> None:
    at = choose(admin_on_page(site), site, "viewer")
    assert at.selectbox(key=f"operators_role_{site.operator_ids['viewer']}").value == "viewer"

    at.selectbox(key=f"operators_role_{site.operator_ids['viewer']}").set_value("cashier")
    at.button(key="operators_role_submit").click().run()

    assert [s.value for s in at.success] == ["viewer now has the role cashier."]
    viewer = by_name(site, "viewer")
    assert viewer is not None and viewer.role == "cashier"


def test_the_last_administrator_cannot_step_down(site: Site) -> None:
    at = choose(admin_on_page(site), site, "admin")

    at.selectbox(key=f"operators_role_{site.operator_ids['admin']}").set_value("viewer")
    at.button(key="operators_role_submit").click().run()

    assert at.error[0].value.startswith(
        "Refused: afterwards no active operator could manage operators and roles."
    )
    admin = by_name(site, "admin")
    assert admin is not None and admin.role == "administrator"


def test_a_cashier_has_no_operators_page(site: Site) -> None:
    at = site.open_app("cashier")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/operators.py")


def test_the_page_itself_refuses_a_cashier(site: Site) -> None:
    at = AppTest.from_function(operators_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to manage operators. "
        "Ask an administrator for the operators permission."
    ]
    assert not at.text_input
    assert not at.dataframe


def test_the_service_refuses_when_the_permission_goes_while_the_page_is_open(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.add(Role(name="manager", permissions=["operators"], builtin=False))
        session.flush()
        session.get_one(Operator, site.operator_ids["cashier"]).role = "manager"
    # The page on its own: the router would stop offering it once the permission is gone.
    at = AppTest.from_function(operators_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"
    at.run()
    at.text_input(key="operators_new_username").input("sneaky")
    at.text_input(key="operators_new_password").input("long enough")
    with unit_of_work(site.url) as session:
        session.get_one(Role, "manager").permissions = ["view"]

    at.button(key="operators_new_submit").click().run()

    assert [e.value for e in at.error] == [
        "You are not allowed to manage operators. "
        "Ask an administrator for the operators permission."
    ]
    assert by_name(site, "sneaky") is None


def test_the_page_in_chinese(site: Site) -> None:
    at = site.open_app("admin")
    at.radio(key="lang").set_value("zh").run()

    at.switch_page("screens/operators.py").run()

    assert at.title[0].value == "操作员管理"
    assert list(at.dataframe[0].value["status"]) == ["正常"] * 3


def test_a_session_idle_too_long_shows_nothing_even_on_the_page(site: Site) -> None:
    at = AppTest.from_function(operators_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["admin"]
    at.session_state["operator_username"] = "admin"
    at.session_state["last_activity_at"] = auth.utcnow() - timedelta(hours=1)

    at.run()

    assert at.error and not at.dataframe
