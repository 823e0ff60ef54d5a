"""Entry script of the tenants' kiosk and phone pages: `streamlit run app/kiosk/main.py`, which
`voltpay run` serves on KIOSK_PORT. Signed out, every address shows the sign-in page (so a
bookmarked page opens after signing in); signed in, the tenant's home and change-PIN pages. No
operator page is reachable from here: this router knows none.
"""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from app.i18n import STRINGS, language_switch, register, t
from app.kiosk import session as kiosk
from schema.db import unit_of_work
from voltpay.settings import get_settings

# Large touch targets and figures a phone or a kiosk at arm's length reads.
STYLE = """<style>
.stButton button, .stFormSubmitButton button, [data-testid="stPageLink"] a {
  min-height: 3.5rem; font-size: 1.2rem; }
.stTextInput input { min-height: 3rem; font-size: 1.4rem; }
[data-testid="stMetricValue"] { font-size: 2.2rem; }
</style>"""
IDLE_CHECK_EVERY = timedelta(seconds=5)

# Streamlit executes this file afresh on every run: register the strings once.
if "kiosk.nav.sign_in" not in STRINGS["en"]:
    register({
        "en": {
            "kiosk.nav.sign_in": "Sign in",
            "kiosk.nav.home": "My account",
            "kiosk.nav.pin": "Change PIN",
            "kiosk.sign_out": "Sign out",
        },
        "zh": {
            "kiosk.nav.sign_in": "登录",
            "kiosk.nav.home": "我的账户",
            "kiosk.nav.pin": "修改密码",
            "kiosk.sign_out": "退出",
        },
    })


@st.fragment(run_every=IDLE_CHECK_EVERY)
def idle_timer() -> None:
    """Returns an untouched screen to the sign-in page: its own runs are not activity, and once
    the idle time is up it reruns the whole script, whose check-in signs the tenant out."""
    if kiosk.idle_too_long(kiosk.utcnow()):
        st.rerun(scope="app")


def main() -> None:
    settings = get_settings()
    st.set_page_config(page_title=settings.site_name, layout="centered",
                       initial_sidebar_state="collapsed")
    kiosk.remember_mode()
    st.html(STYLE)
    name, languages = st.columns([3, 2], vertical_alignment="center")
    name.markdown(f"**{settings.site_name}**")
    language_switch(where=languages)
    with unit_of_work(kiosk.database_url()) as session:
        tenant = kiosk.check_in(session, now=kiosk.utcnow())
    if tenant is None:
        # Every address shows the sign-in page until a tenant signs in.
        pages = [st.Page("sign_in.py", title=t("kiosk.nav.sign_in"), url_path=path,
                         default=path == "sign-in") for path in ("sign-in", "home", "pin")]
        st.navigation(pages, position="hidden").run()
        return
    home_page = st.Page("home.py", title=t("kiosk.nav.home"), icon=":material/home:",
                        url_path="home", default=True)
    pin_page = st.Page("change_pin.py", title=t("kiosk.nav.pin"), icon=":material/password:",
                       url_path="pin")
    page = st.navigation([home_page, pin_page], position="hidden")
    to_home, to_pin, out = st.columns(3)
    to_home.page_link(home_page, use_container_width=True)
    to_pin.page_link(pin_page, use_container_width=True)
    out.button(t("kiosk.sign_out"), key="kiosk_sign_out", on_click=kiosk.sign_out,
               icon=":material/logout:", use_container_width=True)
    if kiosk.kiosk_mode():
        idle_timer()
    page.run()


main()
