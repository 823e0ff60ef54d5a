"""Each operator's language (English or 简体中文): applied when they log in, kept when they switch
it in the sidebar, and set by an administrator on the operators page."""

from __future__ import annotations

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from schema.db import unit_of_work
from schema.models import AuditEntry, Operator
from tests.app.support import Site


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="login_submit").click().run()


def language_of(site: Site, username: str) -> str:
    with unit_of_work(site.url) as session:
        return session.get_one(Operator, site.operator_ids[username]).language


def test_an_operator_logs_in_in_their_language_and_keeps_the_one_they_switch_to(
    site: Site,
) -> None:
    with unit_of_work(site.url) as session:
        session.get_one(Operator, site.operator_ids["cashier"]).language = "zh"
    at = site.open_app(None)
    assert at.title[0].value == "Log in"

    log_in(at, "cashier", site.password)

    assert at.title[0].value == "电表总览"
    assert "当前用户：**cashier**（收银员）" in [m.value for m in at.sidebar.markdown]
    assert at.radio(key="lang").value == "zh"

    at.radio(key="lang").set_value("en").run()
    assert at.title[0].value == "Meters"
    assert language_of(site, "cashier") == "en"
    at.button(key="logout").click().run()
    # Someone else's language on the same browser does not stick to the next login.
    at.radio(key="lang").set_value("zh").run()
    assert at.title[0].value == "登录"
    assert language_of(site, "cashier") == "en"

    log_in(at, "cashier", site.password)

    assert at.title[0].value == "Meters"
    assert "Signed in as **cashier** (cashier)" in [m.value for m in at.sidebar.markdown]
    with unit_of_work(site.url) as session:
        changes = session.execute(
            select(AuditEntry.actor, AuditEntry.detail)
            .where(AuditEntry.action == "operator.language").order_by(AuditEntry.id)
        ).all()
    assert [(actor, detail) for actor, detail in changes] == [
        ("cashier", {"before": "zh", "after": "en"}),
    ]


def test_an_administrator_sets_an_operator_s_language(site: Site) -> None:
    at = site.open_app("admin").switch_page("screens/operators.py").run()
    table = at.dataframe[0].value
    assert list(table["language"]) == ["English"] * 3
    at.selectbox(key="operators_target").set_value(site.operator_ids["viewer"]).run()
    viewer = site.operator_ids["viewer"]
    assert at.selectbox(key=f"operators_language_{viewer}").value == "en"

    at.selectbox(key=f"operators_language_{viewer}").set_value("zh")
    at.button(key="operators_language_submit").click().run()

    assert [s.value for s in at.success] == [
        "viewer will see the dashboard in 中文 from their next login."
    ]
    assert list(at.dataframe[0].value["language"]) == ["English", "English", "中文"]
    assert language_of(site, "viewer") == "zh"
    # The administrator's own dashboard stays in English.
    assert at.title[0].value == "Operators"

    login = site.open_app(None)
    log_in(login, "viewer", site.password)
    assert login.title[0].value == "电表总览"
