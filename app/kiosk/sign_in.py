"""Sign in: the only page until a tenant signs in with the account number and PIN."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app.i18n import STRINGS, register, t
from app.kiosk import session as kiosk
from billing import tenants
from schema.db import unit_of_work
from voltpay.settings import get_settings

NUMBER, PIN = "kiosk_number", "kiosk_pin"
REFUSED = "kiosk_sign_in_refused"  # the last attempt's message key and values, shown once

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "kiosk.sign_in.title" not in STRINGS["en"]:
    register({
        "en": {
            "kiosk.sign_in.title": "Your electricity account",
            "kiosk.sign_in.number": "Account number",
            "kiosk.sign_in.pin": "PIN (6 digits)",
            "kiosk.sign_in.submit": "Sign in",
            "kiosk.sign_in.wrong": "Wrong account number or PIN. No PIN yet? Ask the management "
            "office.",
            "kiosk.sign_in.locked": "Too many wrong PINs: this account is locked until {time} "
            "({tz}). Try again then, or ask the management office to reset the PIN.",
            "kiosk.sign_in.closed": "This account is closed.",
            "kiosk.sign_in.idle": "You were signed out after {idle} without activity.",
            "kiosk.sign_in.ended": "You were signed out: the PIN was changed or the account "
            "closed.",
            "kiosk.sign_in.pin_locked": "You were signed out after too many wrong PINs.",
            "kiosk.minutes": "{n} minutes",
            "kiosk.seconds": "{n} seconds",
        },
        "zh": {
            "kiosk.sign_in.title": "电费账户自助查询",
            "kiosk.sign_in.number": "账户号",
            "kiosk.sign_in.pin": "密码（6 位数字）",
            "kiosk.sign_in.submit": "登录",
            "kiosk.sign_in.wrong": "账户号或密码错误。还没有密码？请联系物业管理处。",
            "kiosk.sign_in.locked": "密码错误次数过多：该账户已锁定至 {time}（{tz}）。"
            "请届时再试，或请物业管理处重置密码。",
            "kiosk.sign_in.closed": "该账户已销户。",
            "kiosk.sign_in.idle": "您已超过 {idle}无操作，已自动退出。",
            "kiosk.sign_in.ended": "您已退出：密码已更改或账户已销户。",
            "kiosk.sign_in.pin_locked": "密码错误次数过多，您已退出。",
            "kiosk.minutes": "{n} 分钟",
            "kiosk.seconds": "{n} 秒",
        },
    })


def _idle_text() -> str:
    seconds = int(kiosk.idle_limit().total_seconds())
    if seconds % 60:
        return t("kiosk.seconds", n=seconds)
    return t("kiosk.minutes", n=seconds // 60)


def _submit() -> None:
    """The sign-in button: checked before the page runs again, so the PIN field is emptied
    whatever the outcome and a signed-in tenant lands on their account at once."""
    settings = get_settings()
    number = st.session_state.get(NUMBER, "")
    pin = st.session_state.get(PIN, "")
    st.session_state[PIN] = ""
    # A refused attempt is recorded (and may lock the account): the unit of work commits it.
    with unit_of_work(kiosk.database_url()) as session:
        attempt = tenants.sign_in(
            session, number, pin, now=kiosk.utcnow(), lock_after=settings.login_lock_attempts,
            lock_for=timedelta(minutes=settings.login_lock_minutes),
        )
    if attempt.outcome == "ok" and attempt.tenant is not None:
        st.session_state[NUMBER] = ""
        st.session_state.pop(REFUSED, None)
        kiosk.sign_in(attempt.tenant)
        return
    values: dict[str, str] = {}
    if attempt.outcome == "locked" and attempt.locked_until is not None:
        values = {"time": attempt.locked_until.astimezone(settings.tz).strftime("%H:%M"),
                  "tz": settings.site_tz}
    st.session_state[REFUSED] = (f"kiosk.sign_in.{attempt.outcome}", values)


def render() -> None:
    st.title(t("kiosk.sign_in.title"))
    reason = kiosk.pop_sign_out_reason()
    if reason == "idle":
        st.info(t("kiosk.sign_in.idle", idle=_idle_text()))
    elif reason == "ended":
        st.info(t("kiosk.sign_in.ended"))
    elif reason == "locked":
        st.warning(t("kiosk.sign_in.pin_locked"))
    with st.form("kiosk_sign_in", border=False):
        st.text_input(t("kiosk.sign_in.number"), key=NUMBER)
        st.text_input(t("kiosk.sign_in.pin"), type="password", max_chars=tenants.PIN_LENGTH,
                      key=PIN)
        st.form_submit_button(t("kiosk.sign_in.submit"), type="primary", on_click=_submit,
                              key="kiosk_sign_in_submit", use_container_width=True)
    refused = st.session_state.pop(REFUSED, None)
    if refused is not None:
        key, values = refused
        st.error(t(key, **values))


if __name__ == "__main__":
    render()
