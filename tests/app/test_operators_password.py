"""Change password page (修改密码): every operator, own password only, with the rules enforced."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app import auth
from billing.operators import attempt_login
from schema.db import unit_of_work
from schema.models import AuditEntry
from tests.app.support import TIMEOUT_S, Site


def password_page() -> None:
    from app.screens.password import render

    render()


def on_page(site: Site, username: str) -> AppTest:
    return site.open_app(username).switch_page("screens/password.py").run()


def change(at: AppTest, current: str, new: str, repeat: str | None = None) -> AppTest:
    at.text_input(key="password_current").input(current)
    at.text_input(key="password_new").input(new)
    at.text_input(key="password_repeat").input(new if repeat is None else repeat)
    return at.button(key="password_submit").click().run()


def login_outcome(site: Site, username: str, password: str) -> str:
    with unit_of_work(site.url) as session:
        return attempt_login(session, username, password, now=auth.utcnow()).outcome


def test_a_viewer_changes_their_password(site: Site) -> None:
    at = on_page(site, "viewer")
    assert at.title[0].value == "Change password"

    change(at, site.password, "a fresh password")

    assert [s.value for s in at.success] == [
        "Password changed. Use the new one next time you log in."
    ]
    assert login_outcome(site, "viewer", site.password) == "wrong"
    assert login_outcome(site, "viewer", "a fresh password") == "ok"
    with unit_of_work(site.url) as session:
        assert session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "operator.change_password")
        ).all() == ["viewer"]


@pytest.mark.parametrize(
    ("current", "new", "repeat", "message"),
    [
        ("wrong", "a fresh password", None, "The current password is wrong"),
        (None, "short", None, "A password needs at least 8 characters"),
        (None, None, None, "The new password must differ from the current one"),
        (None, "a fresh password", "a fresh pasword",
         "The two new passwords differ. Type the same one twice."),
    ],
)
def test_a_refused_change_says_why_and_keeps_the_old_password(
    site: Site, current: str | None, new: str | None, repeat: str | None, message: str
) -> None:
    at = on_page(site, "cashier")

    change(at, current or site.password, new or site.password, repeat)

    assert [e.value for e in at.error] == [message]
    assert login_outcome(site, "cashier", site.password) == "ok"


def test_the_previous_password_cannot_come_back(site: Site) -> None:
    at = on_page(site, "cashier")
    change(at, site.password, "a fresh password")

    change(at, "a fresh password", site.password)

    assert [e.value for e in at.error] == ["The new password must differ from the previous one"]
    assert login_outcome(site, "cashier", "a fresh password") == "ok"


def test_the_page_without_a_login_refuses(site: Site) -> None:
    at = AppTest.from_function(password_page, default_timeout=TIMEOUT_S).run()

    assert [e.value for e in at.error] == ["Log in first."]
    assert not at.text_input


def test_the_page_in_chinese(site: Site) -> None:
    at = site.open_app("viewer")
    at.radio(key="lang").set_value("zh").run()

    at.switch_page("screens/password.py").run()

    assert at.title[0].value == "修改密码"
    assert [t.label for t in at.text_input] == ["当前密码", "新密码", "再次输入新密码"]
