"""Who is signed in at this kiosk or phone: a tenant, for one account, until they sign out or
stay idle too long.

In kiosk mode (KIOSK_MODE, or a page opened with ?mode=kiosk: a shared touch screen) a tenant
idle for KIOSK_IDLE_S seconds is signed out; elsewhere after the operators' SESSION_TIMEOUT_MIN.
Every run of the entry script checks in (an interaction counts as activity), and a timer on the
page reruns it once the time is up, so an untouched screen returns to the sign-in page.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st
from sqlalchemy.orm import Session

from app.i18n import apply_language
from billing import tenants
from billing.tenants import Tenant
from schema.db import unit_of_work
from voltpay.settings import get_settings

TENANT = "kiosk_tenant"
LAST_ACTIVITY = "kiosk_last_activity_at"
# Why the last session ended ("idle", "ended"), for the sign-in page to say so once.
SIGN_OUT_REASON = "kiosk_sign_out_reason"
KIOSK_MODE = "kiosk_mode"


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_url() -> str:
    return get_settings().database_url


def remember_mode() -> None:
    """A kiosk opened with ?mode=kiosk stays in kiosk mode as it moves between pages."""
    if st.query_params.get("mode") == "kiosk":
        st.session_state[KIOSK_MODE] = True


def kiosk_mode() -> bool:
    return get_settings().kiosk_mode or bool(st.session_state.get(KIOSK_MODE))


def idle_limit() -> timedelta:
    settings = get_settings()
    if kiosk_mode():
        return timedelta(seconds=settings.kiosk_idle_s)
    return timedelta(minutes=settings.session_timeout_min)


def idle_too_long(now: datetime) -> bool:
    last: datetime | None = st.session_state.get(LAST_ACTIVITY)
    return last is not None and now - last > idle_limit()


def sign_in(tenant: Tenant) -> None:
    apply_language(tenant.language)  # the account's language, until the tenant switches
    st.session_state[TENANT] = tenant
    st.session_state[LAST_ACTIVITY] = utcnow()
    st.session_state.pop(SIGN_OUT_REASON, None)


def forget() -> None:
    for key in (TENANT, LAST_ACTIVITY):
        st.session_state.pop(key, None)


def signed_in() -> Tenant | None:
    """The tenant of this session, unless idle too long (a page refreshing itself then stops
    showing the account)."""
    tenant: Tenant | None = st.session_state.get(TENANT)
    if tenant is None or idle_too_long(utcnow()):
        return None
    return tenant


def sign_out() -> None:
    """The sign-out button: recorded, then the session forgets the tenant."""
    tenant: Tenant | None = st.session_state.get(TENANT)
    if tenant is not None:
        with unit_of_work(database_url()) as session:
            tenants.record_sign_out(session, tenant, now=utcnow(), reason="sign out")
    forget()


def replace(tenant: Tenant) -> None:
    """The same tenant with a new PIN (they changed it): the session goes on."""
    st.session_state[TENANT] = tenant


def check_in(session: Session, *, now: datetime) -> Tenant | None:
    """The entry script's check on every run: the tenant, not idle too long and with the
    account open and the PIN unchanged, the run counted as activity; otherwise None, and why
    kept for the sign-in page."""
    tenant: Tenant | None = st.session_state.get(TENANT)
    if tenant is None:
        return None
    if idle_too_long(now):
        tenants.record_sign_out(session, tenant, now=now, reason="idle")
        st.session_state[SIGN_OUT_REASON] = "idle"
        forget()
        return None
    if not tenants.still_signed_in(session, tenant):
        st.session_state[SIGN_OUT_REASON] = "ended"
        forget()
        return None
    st.session_state[LAST_ACTIVITY] = now
    return tenant


def pop_sign_out_reason() -> str | None:
    reason: str | None = st.session_state.pop(SIGN_OUT_REASON, None)
    return reason
