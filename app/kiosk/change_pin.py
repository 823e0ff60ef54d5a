"""Change PIN: the tenant proves it is them with the current PIN; wrong ones count toward the
lock like wrong sign-ins."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app.i18n import STRINGS, register, t
from app.kiosk import session as kiosk
from billing import tenants
from billing.tenants import SignedOut
from schema.db import unit_of_work
from voltpay.settings import get_settings

FIELDS = CURRENT, NEW, CONFIRM = "kiosk_pin_current", "kiosk_pin_new", "kiosk_pin_confirm"
OUTCOME = "kiosk_pin_outcome"

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "kiosk.pin.title" not in STRINGS["en"]:
    register({
        "en": {
            "kiosk.pin.title": "Change PIN",
            "kiosk.pin.current": "Current PIN",
            "kiosk.pin.new": "New PIN (6 digits)",
            "kiosk.pin.confirm": "New PIN again",
            "kiosk.pin.submit": "Change PIN",
            "kiosk.pin.rules": "A PIN is 6 digits.",
            "kiosk.pin.mismatch": "The two new PINs differ.",
            "kiosk.pin.same": "The new PIN must differ from the current one.",
            "kiosk.pin.wrong": "The current PIN is wrong.",
            "kiosk.pin.changed": "Your PIN is changed. Use the new one next time.",
        },
        "zh": {
            "kiosk.pin.title": "修改密码",
            "kiosk.pin.current": "当前密码",
            "kiosk.pin.new": "新密码（6 位数字）",
            "kiosk.pin.confirm": "再次输入新密码",
            "kiosk.pin.submit": "确认修改",
            "kiosk.pin.rules": "密码为 6 位数字。",
            "kiosk.pin.mismatch": "两次输入的新密码不一致。",
            "kiosk.pin.same": "新密码不能与当前密码相同。",
            "kiosk.pin.wrong": "当前密码错误。",
            "kiosk.pin.changed": "密码已修改，下次请使用新密码。",
        },
    })


def _problem(current: str, new: str, confirm: str) -> str | None:
    if not tenants.valid_pin(new):
        return "kiosk.pin.rules"
    if new != confirm:
        return "kiosk.pin.mismatch"
    if new == current:
        return "kiosk.pin.same"
    return None


def _submit() -> None:
    """Runs before the page does, so the PIN fields are emptied whatever the outcome."""
    current, new, confirm = (st.session_state.get(key, "") for key in FIELDS)
    for key in FIELDS:
        st.session_state[key] = ""
    problem = _problem(current, new, confirm)
    if problem is not None:
        st.session_state[OUTCOME] = ("error", problem)
        return
    tenant = kiosk.signed_in()
    settings = get_settings()
    try:
        with unit_of_work(settings.database_url) as session:
            changed = tenants.change_pin(
                session, tenant=tenant, current_pin=current, new_pin=new, now=kiosk.utcnow(),
                lock_after=settings.login_lock_attempts,
                lock_for=timedelta(minutes=settings.login_lock_minutes),
            )
    except SignedOut:
        changed = None
    if changed is None or changed.outcome == "locked":
        st.session_state[kiosk.SIGN_OUT_REASON] = "locked" if changed else "ended"
        kiosk.forget()
        return
    if changed.outcome == "wrong" or changed.tenant is None:
        st.session_state[OUTCOME] = ("error", "kiosk.pin.wrong")
        return
    kiosk.replace(changed.tenant)
    st.session_state[OUTCOME] = ("success", "kiosk.pin.changed")


def render() -> None:
    st.title(t("kiosk.pin.title"))
    with st.form("kiosk_change_pin", border=False):
        for key, label in zip(FIELDS, ("kiosk.pin.current", "kiosk.pin.new",
                                       "kiosk.pin.confirm"), strict=True):
            st.text_input(t(label), type="password", max_chars=tenants.PIN_LENGTH, key=key)
        st.form_submit_button(t("kiosk.pin.submit"), type="primary", on_click=_submit,
                              key="kiosk_pin_submit", use_container_width=True)
    outcome = st.session_state.pop(OUTCOME, None)
    if outcome is not None:
        level, key = outcome
        (st.success if level == "success" else st.error)(t(key))


if __name__ == "__main__":
    render()
