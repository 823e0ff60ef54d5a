"""Change password (修改密码): every logged-in operator, for their own password only."""

from __future__ import annotations

import streamlit as st

from app import auth
from app.i18n import STRINGS, register, t
from app.nav import Screen
from billing import operators
from billing.errors import BillingError
from schema.db import unit_of_work

SCREEN = Screen(module="password", url_path="change-password", title_key="password.nav",
                permission=operators.SIGNED_IN, icon=":material/password:",
                section="section.settings", order=90)

# Streamlit executes this file afresh on every run of the page: register the strings once.
if "password.nav" not in STRINGS["en"]:
    register({
        "en": {
            "password.nav": "Change password",
            "password.title": "Change password",
            "password.rules": "At least {length} characters; not the current password and not "
            "the one before it.",
            "password.current": "Current password",
            "password.new": "New password",
            "password.repeat": "New password again",
            "password.submit": "Change password",
            "password.mismatch": "The two new passwords differ. Type the same one twice.",
            "password.changed": "Password changed. Use the new one next time you log in.",
            "password.denied": "Log in first.",
        },
        "zh": {
            "password.nav": "修改密码",
            "password.title": "修改密码",
            "password.rules": "至少 {length} 位；不能与当前密码或上一次的密码相同。",
            "password.current": "当前密码",
            "password.new": "新密码",
            "password.repeat": "再次输入新密码",
            "password.submit": "修改密码",
            "password.mismatch": "两次输入的新密码不一致，请重新输入。",
            "password.changed": "密码已修改，下次登录请使用新密码。",
            "password.denied": "请先登录。",
        },
    })


def render() -> None:
    st.title(t("password.title"))
    with unit_of_work(auth.database_url()) as session:
        allowed = operators.can(auth.current_operator(session), operators.SIGNED_IN)
    if not allowed:
        st.error(t("password.denied"))
        return
    st.caption(t("password.rules", length=operators.MIN_PASSWORD_LENGTH))
    with st.form("password_form", clear_on_submit=True):
        current = st.text_input(t("password.current"), type="password", key="password_current")
        new = st.text_input(t("password.new"), type="password", key="password_new")
        repeat = st.text_input(t("password.repeat"), type="password", key="password_repeat")
        submitted = st.form_submit_button(t("password.submit"), type="primary",
                                          key="password_submit")
    if not submitted:
        return
    if new != repeat:
        st.error(t("password.mismatch"))
        return
    try:
        with unit_of_work(auth.database_url()) as session:
            operators.change_password(
                session, operator=auth.current_operator(session), current_password=current,
                new_password=new, now=auth.utcnow(),
            )
    except BillingError as exc:
        st.error(str(exc))
        return
    st.success(t("password.changed"))


if __name__ == "__main__":
    render()
