"""Login: the only page offered until someone is logged in."""

from __future__ import annotations

import streamlit as st

from app import auth
from app.i18n import t
from billing.operators import authenticate
from schema.db import unit_of_work


def render() -> None:
    st.title(t("login.title"))
    with st.form("login"):
        username = st.text_input(t("login.username"), key="login_username")
        password = st.text_input(t("login.password"), type="password", key="login_password")
        submitted = st.form_submit_button(t("login.submit"), type="primary", key="login_submit")
    if not submitted:
        return
    # authenticate records a failed attempt: the unit of work commits either way.
    with unit_of_work(auth.database_url()) as session:
        operator = authenticate(session, username, password, now=auth.utcnow())
    if operator is None:
        st.error(t("login.failed"))
        return
    auth.log_in(operator)
    st.rerun()


if __name__ == "__main__":
    render()
