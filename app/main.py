"""Entry script and router: `streamlit run app/main.py`. The pages offered follow the role.

Streamlit sees the `pages/` folder next to this script and may run a run in its legacy multipage
mode, where a page whose URL path equals its file name runs without this router. Every page here
therefore has a URL path that differs from its file name, so all runs pass through the router.
"""

from __future__ import annotations

import streamlit as st

from app import auth
from app.i18n import language_switch, role_name, t
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings


def no_access() -> None:
    st.warning(t("no_access"))


def main() -> None:
    st.set_page_config(page_title="Voltpay", layout="wide")
    st.sidebar.markdown(f"**{get_settings().site_name}**")
    language_switch()

    with unit_of_work(auth.database_url()) as session:
        operator = auth.current_operator(session)
    if operator is None or not operator.is_active:
        auth.log_out()
        pages = [st.Page("pages/login.py", title=t("nav.login"), icon=":material/login:",
                         url_path="sign-in")]
    else:
        pages = []
        if can(operator, "view"):
            pages.append(
                st.Page("pages/overview.py", title=t("nav.overview"), icon=":material/bolt:",
                        url_path="meters")
            )
        if can(operator, "sell"):
            pages.append(
                st.Page("pages/sale.py", title=t("nav.sale"), icon=":material/point_of_sale:",
                        url_path="sell")
            )
        if not pages:
            pages.append(st.Page(no_access, title=t("nav.no_access"), url_path="no-access"))
        st.sidebar.markdown(
            t("signed_in", name=operator.display_name or operator.username,
              role=role_name(operator.role))
        )
        st.sidebar.button(t("logout"), key="logout", on_click=auth.log_out,
                          icon=":material/logout:")
    st.navigation(pages).run()


main()
