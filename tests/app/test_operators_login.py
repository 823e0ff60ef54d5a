"""Login beyond the basics: the lock after five wrong passwords, disabled operators, the idle
session timeout, and the operation log rows each of them writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app import auth
from schema.db import unit_of_work
from schema.models import AuditEntry, Operator
from tests.app.support import Site


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="login_submit").click().run()


def operator(site: Site, username: str) -> Operator:
    with unit_of_work(site.url) as session:
        return session.get_one(Operator, site.operator_ids[username])


def actions(site: Site, target: str) -> list[tuple[str, dict[str, object]]]:
    with unit_of_work(site.url) as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.id)
        ).all()
    return [(row.action, row.detail) for row in rows]


def test_five_wrong_passwords_lock_the_account_and_say_until_when(site: Site) -> None:
    at = site.open_app(None)
    for _ in range(4):
        log_in(at, "cashier", "not the password")
        assert [e.value for e in at.error] == ["Wrong user name or password"]

    log_in(at, "cashier", "not the password")

    locked_until = operator(site, "cashier").locked_until
    assert locked_until is not None
    shown = locked_until.astimezone(auth.get_settings().tz).strftime("%Y-%m-%d %H:%M")
    message = (f"Too many wrong passwords: this account is locked until {shown} "
               "(Asia/Shanghai). Try again then, or ask an administrator to unlock it.")
    assert [e.value for e in at.error] == [message]
    # The right password does not get past the lock either.
    log_in(at, "cashier", site.password)
    assert [e.value for e in at.error] == [message]
    assert "operator_id" not in at.session_state
    assert [action for action, _ in actions(site, "cashier")].count("operator.lock") == 1


def test_the_lock_message_in_chinese(site: Site) -> None:
    at = site.open_app(None)
    at.radio(key="lang").set_value("zh").run()
    for _ in range(5):
        log_in(at, "viewer", "nope")

    assert at.error[0].value.startswith("密码错误次数过多：该账号已锁定至 ")


def test_a_disabled_operator_is_told_after_giving_the_right_password(site: Site) -> None:
    with unit_of_work(site.url) as session:
        session.get_one(Operator, site.operator_ids["viewer"]).is_active = False
    at = site.open_app(None)

    log_in(at, "viewer", site.password)

    assert [e.value for e in at.error] == [
        "This account is disabled. Ask an administrator to enable it."
    ]
    assert "operator_id" not in at.session_state


def test_an_operator_disabled_while_logged_in_is_told_why(site: Site) -> None:
    at = site.open_app("cashier")
    with unit_of_work(site.url) as session:
        session.get_one(Operator, site.operator_ids["cashier"]).is_active = False

    at.run()

    assert at.title[0].value == "Log in"
    assert [w.value for w in at.warning] == ["Your account was disabled by an administrator."]


def test_an_idle_session_is_logged_out_on_the_next_click(site: Site) -> None:
    at = site.open_app("cashier")
    assert at.title[0].value == "Meters"
    assert operator(site, "cashier").last_seen_at is not None
    at.session_state["last_activity_at"] = auth.utcnow() - timedelta(minutes=31)

    at.run()

    assert "operator_id" not in at.session_state
    assert at.title[0].value == "Log in"
    assert [i.value for i in at.info] == [
        "You were logged out after 30 minutes without activity. Log in again to continue."
    ]
    assert ("logout", {"reason": "idle"}) in actions(site, "cashier")
    # The message is said once; logging in again works as always.
    log_in(at, "cashier", site.password)
    assert at.title[0].value == "Meters"
    assert not at.info


def test_activity_within_the_timeout_keeps_the_session(site: Site) -> None:
    at = site.open_app("cashier")
    at.session_state["last_activity_at"] = auth.utcnow() - timedelta(minutes=29)

    at.run()

    assert at.title[0].value == "Meters"
    assert auth.utcnow() - at.session_state["last_activity_at"] < timedelta(minutes=1)


def test_the_timeout_follows_the_setting(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TIMEOUT_MIN", "5")
    auth.get_settings.cache_clear()
    at = site.open_app("cashier")
    at.session_state["last_activity_at"] = auth.utcnow() - timedelta(minutes=6)

    at.run()

    assert at.info[0].value.startswith("You were logged out after 5 minutes")


def test_logging_out_and_in_again_is_in_the_operation_log(site: Site) -> None:
    at = site.open_app(None)
    log_in(at, "cashier", site.password)
    assert at.title[0].value == "Meters"

    at.button(key="logout").click().run()
    log_in(at, "cashier", site.password)

    assert at.title[0].value == "Meters"
    assert [action for action, _ in actions(site, "cashier")] == [
        "operator.create", "login", "logout", "login",
    ]
