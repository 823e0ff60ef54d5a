"""Login: the only page offered until someone is logged in."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from billing.operators import attempt_login
from schema.db import unit_of_work
from voltpay.settings import get_settings

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "login.locked" not in STRINGS["en"]:
    register({
        "en": {
            "login.locked": "Too many wrong passwords: this account is locked until {time} "
            "({tz}). Try again then, or ask an administrator to unlock it.",
            "login.disabled": "This account is disabled. Ask an administrator to enable it.",
            "login.idle": "You were logged out after {minutes} minutes without activity. "
            "Log in again to continue.",
            "login.was_disabled": "Your account was disabled by an administrator.",
        },
        "zh": {
            "login.locked": "密码错误次数过多：该账号已锁定至 {time}（{tz}）。"
            "请届时再试，或联系管理员解锁。",
            "login.disabled": "该账号已停用，请联系管理员启用。",
            "login.idle": "您已超过 {minutes} 分钟无操作，已自动退出。请重新登录以继续。",
            "login.was_disabled": "您的账号已被管理员停用。",
        },
    })


def render() -> None:
    st.title(t("login.title"))
    settings = get_settings()
    reason = auth.pop_logout_reason()
    if reason == "idle":
        st.info(t("login.idle", minutes=settings.session_timeout_min))
    elif reason == "disabled":
        st.warning(t("login.was_disabled"))
    with st.form("login"):
        username = st.text_input(t("login.username"), key="login_username")
        password = st.text_input(t("login.password"), type="password", key="login_password")
        submitted = st.form_submit_button(t("login.submit"), type="primary", key="login_submit")
    if not submitted:
        return
    # A refused attempt is recorded (and may lock the account): the unit of work commits it.
    with unit_of_work(auth.database_url()) as session:
        attempt = attempt_login(
            session, username, password, now=auth.utcnow(),
            lock_after=settings.login_lock_attempts,
            lock_for=timedelta(minutes=settings.login_lock_minutes),
        )
    if attempt.outcome == "locked" and attempt.locked_until is not None:
        until = attempt.locked_until.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
        st.error(t("login.locked", time=until, tz=settings.site_tz))
        return
    if attempt.outcome == "disabled":
        st.error(t("login.disabled"))
        return
    if attempt.operator is None:
        st.error(t("login.failed"))
        return
    auth.log_in(attempt.operator)
    st.rerun()


if __name__ == "__main__":
    render()
