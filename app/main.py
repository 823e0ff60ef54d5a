"""Entry script and router: `streamlit run app/main.py`. The pages offered follow the role.

The page files live in `app/screens/`, not `app/pages/`: Streamlit treats a `pages/` folder next
to the entry script as a legacy multipage app and runs the first run after start without this
router, so a bookmarked page then showed "Page not found".
"""

from __future__ import annotations

import streamlit as st

from app import auth
from app.i18n import language_switch, role_name, t
from app.nav import screens
from app.screens import login
from billing.operators import can
from schema.db import unit_of_work
from voltpay.settings import get_settings


def no_access() -> None:
    st.warning(t("no_access"))


def main() -> None:
    st.set_page_config(page_title="Voltpay", layout="wide")
    st.sidebar.markdown(f"**{get_settings().site_name}**")
    language_switch(on_change=auth.save_language)

    with unit_of_work(auth.database_url()) as session:
        # Logs out an operator idle longer than SESSION_TIMEOUT_MIN, or disabled meanwhile.
        operator = auth.check_in(session, now=auth.utcnow())
    if operator is None:
        auth.log_out()
        # A reload or a bookmark of a page asks for it while logged out: show the login there,
        # so that after logging in the same address shows the page asked for.
        pages = [st.Page("screens/login.py", title=t("nav.login"), icon=":material/login:",
                         url_path="sign-in")]
        pages += [st.Page(login.render, title=t("nav.login"), url_path=screen.url_path)
                  for screen in screens()]
        st.navigation(pages, position="hidden").run()
        return
    sections: dict[str, list[st.Page]] = {}
    for screen in screens():
        if can(operator, screen.permission):
            sections.setdefault(t(screen.section), []).append(
                st.Page(screen.script, title=t(screen.title_key), icon=screen.icon,
                        url_path=screen.url_path)
            )
    if not sections:
        sections[t("nav.no_access")] = [
            st.Page(no_access, title=t("nav.no_access"), url_path="no-access")
        ]
    st.sidebar.markdown(
        t("signed_in", name=operator.display_name or operator.username,
          role=role_name(operator.role))
    )
    st.sidebar.button(t("logout"), key="logout", on_click=auth.sign_out,
                      icon=":material/logout:")
    st.navigation(sections).run()


main()
