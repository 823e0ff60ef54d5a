"""Login: the only page until someone logs in; a wrong password is refused and recorded."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import Operator
from tests.app.support import Site


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="login_submit").click().run()


def test_wrong_password_is_refused(site: Site) -> None:
    at = site.open_app(None)
    assert at.title[0].value == "Log in"

    log_in(at, "admin", "not the password")

    assert [e.value for e in at.error] == ["Wrong user name or password"]
    assert "operator_id" not in at.session_state
    assert not at.dataframe
    with unit_of_work(site.url) as session:
        admin = session.scalars(select(Operator).where(Operator.username == "admin")).one()
        assert admin.failed_attempts == 1


def test_unknown_user_gets_the_same_answer_in_chinese(site: Site) -> None:
    at = site.open_app(None)
    at.radio(key="lang").set_value("zh").run()

    log_in(at, "nobody", site.password)

    assert [e.value for e in at.error] == ["用户名或密码错误"]
    assert at.title[0].value == "登录"


def test_right_password_opens_the_overview(site: Site) -> None:
    at = log_in(site.open_app(None), "admin", site.password)

    assert not at.error
    assert at.session_state["operator_id"] == site.operator_ids["admin"]
    assert at.session_state["operator_username"] == "admin"
    assert at.title[0].value == "Meters"
    assert [m.label for m in at.metric] == [
        "Meters", "Accounts in arrears", "Tripped meters", "Total balance (CNY)",
    ]
    assert len(at.dataframe[0].value) == 48
    assert "Signed in as **admin** (administrator)" in [m.value for m in at.sidebar.markdown]


def test_logout_returns_to_the_login_page(site: Site) -> None:
    at = site.open_app("cashier")
    assert at.title[0].value == "Meters"

    at.button(key="logout").click().run()

    assert "operator_id" not in at.session_state
    assert at.title[0].value == "Log in"
    assert not at.dataframe


def test_a_deactivated_operator_is_logged_out_on_the_next_click(site: Site) -> None:
    at = site.open_app("cashier")
    with unit_of_work(site.url) as session:
        session.get_one(Operator, site.operator_ids["cashier"]).is_active = False

    at.run()

    assert "operator_id" not in at.session_state
    assert at.title[0].value == "Log in"
