"""Who is logged in to this browser session. Pages load the operator afresh for every check.

A session ends after `SESSION_TIMEOUT_MIN` minutes without an interaction: the router logs the
operator out on the next one (`check_in`), and until then `current_operator` answers None, so a
page that refreshes by itself stops showing data to an unattended screen.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st
from sqlalchemy.orm import Session

from app.i18n import LANG_KEY, apply_language
from billing.operators import SIGNED_IN, can, record_logout, set_language
from billing.parameters import effective_policy
from billing.policy import BillingPolicy
from schema.db import unit_of_work
from schema.models import Operator
from voltpay.settings import get_settings

OPERATOR_ID = "operator_id"
OPERATOR_USERNAME = "operator_username"
LAST_ACTIVITY = "last_activity_at"
# Why the last session ended ("idle", "disabled"), for the login page to say so once.
LOGOUT_REASON = "logout_reason"
# operators.last_seen_at is written at most this often, not on every click.
SEEN_EVERY = timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_url() -> str:
    return get_settings().database_url


def session_timeout() -> timedelta:
    return timedelta(minutes=get_settings().session_timeout_min)


def log_in(operator: Operator) -> None:
    st.session_state[OPERATOR_ID] = operator.id
    st.session_state[OPERATOR_USERNAME] = operator.username
    st.session_state[LAST_ACTIVITY] = utcnow()
    st.session_state.pop(LOGOUT_REASON, None)
    apply_language(operator.language)


def save_language() -> None:
    """The sidebar switch changed: a logged-in operator keeps the choice for the next login."""
    with unit_of_work(database_url()) as session:
        operator = current_operator(session)
        if can(operator, SIGNED_IN):
            assert operator is not None
            set_language(session, operator=operator, operator_id=operator.id,
                         language=st.session_state[LANG_KEY], now=utcnow())


def log_out() -> None:
    for key in (OPERATOR_ID, OPERATOR_USERNAME, LAST_ACTIVITY):
        st.session_state.pop(key, None)


def sign_out() -> None:
    """The logout button: recorded in the operation log, then the session forgets the operator."""
    with unit_of_work(database_url()) as session:
        record_logout(session, current_operator(session), now=utcnow())
    log_out()


def idle_too_long(now: datetime) -> bool:
    last: datetime | None = st.session_state.get(LAST_ACTIVITY)
    return last is not None and now - last > session_timeout()


def current_operator(session: Session) -> Operator | None:
    """The logged-in operator as the database has it now (deactivated ones included)."""
    operator_id = st.session_state.get(OPERATOR_ID)
    if operator_id is None or idle_too_long(utcnow()):
        return None
    return session.get(Operator, operator_id)


def check_in(session: Session, *, now: datetime) -> Operator | None:
    """The router's check on every interaction: the operator, still active and not idle too
    long, with the interaction counted as activity; otherwise None, and the reason kept."""
    operator_id = st.session_state.get(OPERATOR_ID)
    if operator_id is None:
        return None
    operator = session.get(Operator, operator_id)
    if idle_too_long(now):
        record_logout(session, operator, now=now, reason="idle")
        st.session_state[LOGOUT_REASON] = "idle"
        log_out()
        return None
    if operator is None or not operator.is_active:
        st.session_state[LOGOUT_REASON] = "disabled"
        log_out()
        return None
    st.session_state[LAST_ACTIVITY] = now
    if operator.last_seen_at is None or now - operator.last_seen_at >= SEEN_EVERY:
        operator.last_seen_at = now
    return operator


def pop_logout_reason() -> str | None:
    reason: str | None = st.session_state.pop(LOGOUT_REASON, None)
    return reason


def policy(session: Session) -> BillingPolicy:
    """The money rules in force: the settings with the operators' saved parameters on top."""
    return effective_policy(session, get_settings().billing_policy())
