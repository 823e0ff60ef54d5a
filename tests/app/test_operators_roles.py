"""Roles page (权限分配): permission sets are edited, roles added and removed; the administrator
role keeps the operators permission; nobody without that permission gets anywhere."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from billing.operators import can
from schema.db import unit_of_work
from schema.models import Operator, Role
from tests.app.support import TIMEOUT_S, Site


def roles_page() -> None:
    from app.screens.roles import render

    render()


def admin_on_page(site: Site) -> AppTest:
    return site.open_app("admin").switch_page("screens/roles.py").run()


def permissions(site: Site, role: str) -> list[str] | None:
    with unit_of_work(site.url) as session:
        found = session.get(Role, role)
        return found.permissions if found else None


def test_the_roles_and_what_they_may_do(site: Site) -> None:
    at = admin_on_page(site)

    assert at.title[0].value == "Roles and permissions"
    table = at.dataframe[0].value
    assert list(table["role"]) == ["administrator", "cashier", "engineer", "viewer"]
    assert list(table["operators"]) == [1, 1, 0, 1]
    assert table["permissions"][1] == (
        "View meters and reports, Sell electricity, Refund, Open, change and close accounts"
    )
    assert [b.proto.label for b in at.get("download_button")] == ["Export to Excel"]
    assert at.checkbox(key="roles_cashier_sell").value
    assert not at.checkbox(key="roles_cashier_reverse").value


def test_giving_cashiers_the_reversal_permission(site: Site) -> None:
    at = admin_on_page(site)

    at.checkbox(key="roles_cashier_reverse").check()
    at.checkbox(key="roles_cashier_refund").uncheck()
    at.button(key="roles_cashier_save").click().run()

    assert [s.value for s in at.success] == ["Permissions of cashier saved."]
    assert permissions(site, "cashier") == ["view", "sell", "reverse", "accounts"]
    with unit_of_work(site.url) as session:
        cashier = session.get_one(Operator, site.operator_ids["cashier"])
        assert can(cashier, "reverse") and not can(cashier, "refund")


def test_the_administrator_role_keeps_the_operators_permission(site: Site) -> None:
    at = admin_on_page(site)

    at.checkbox(key="roles_administrator_operators").uncheck()
    at.button(key="roles_administrator_save").click().run()

    assert [e.value for e in at.error] == [
        "The administrator role must keep the operators permission, "
        "or nobody could manage operators and roles"
    ]
    assert "operators" in (permissions(site, "administrator") or [])


def test_a_new_role_is_created_and_an_unused_one_deleted(site: Site) -> None:
    at = admin_on_page(site)
    at.text_input(key="roles_new_name").input("meter reader")
    at.multiselect(key="roles_new_permissions").select("view").select("control")

    at.button(key="roles_new_submit").click().run()

    assert [s.value for s in at.success] == [
        "Role meter reader created. Give it to operators on the Operators page."
    ]
    assert permissions(site, "meter reader") == ["view", "control"]
    assert list(at.dataframe[0].value["role"])[-1] == "meter reader"
    assert at.text_input(key="roles_new_name").value == ""

    at.button(key="roles_meter reader_delete").click().run()

    assert [s.value for s in at.success] == ["Role meter reader deleted."]
    assert permissions(site, "meter reader") is None


def test_a_duplicate_role_name_is_refused(site: Site) -> None:
    at = admin_on_page(site)
    at.text_input(key="roles_new_name").input("Cashier")

    at.button(key="roles_new_submit").click().run()

    assert [e.value for e in at.error] == ["Role cashier already exists"]


def test_built_in_and_used_roles_offer_no_delete(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.add(Role(name="night", permissions=["view"], builtin=False))
        session.flush()
        session.get_one(Operator, site.operator_ids["viewer"]).role = "night"
    at = admin_on_page(site)

    assert [b.key for b in at.button if b.key and b.key.endswith("_delete")] == []


def test_a_viewer_has_no_roles_page(site: Site) -> None:
    at = site.open_app("viewer")

    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("screens/roles.py")


def test_the_page_itself_refuses_a_cashier(site: Site) -> None:
    at = AppTest.from_function(roles_page, default_timeout=TIMEOUT_S)
    at.session_state["operator_id"] = site.operator_ids["cashier"]
    at.session_state["operator_username"] = "cashier"

    at.run()

    assert [e.value for e in at.error] == [
        "You are not allowed to manage roles. Ask an administrator for the operators permission."
    ]
    assert not at.checkbox


def test_the_page_in_chinese(site: Site) -> None:
    at = site.open_app("admin")
    at.radio(key="lang").set_value("zh").run()

    at.switch_page("screens/roles.py").run()

    assert at.title[0].value == "角色与权限"
    assert list(at.dataframe[0].value["role"]) == ["管理员", "收银员", "工程师", "查看者"]
