"""Who is logged in to this browser session. Pages load the operator afresh for every check."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st
from sqlalchemy.orm import Session

from schema.models import Operator
from voltpay.settings import get_settings

OPERATOR_ID = "operator_id"
OPERATOR_USERNAME = "operator_username"


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_url() -> str:
    return get_settings().database_url


def log_in(operator: Operator) -> None:
    st.session_state[OPERATOR_ID] = operator.id
    st.session_state[OPERATOR_USERNAME] = operator.username


def log_out() -> None:
    for key in (OPERATOR_ID, OPERATOR_USERNAME):
        st.session_state.pop(key, None)


def current_operator(session: Session) -> Operator | None:
    """The logged-in operator as the database has it now (deactivated ones included)."""
    operator_id = st.session_state.get(OPERATOR_ID)
    if operator_id is None:
        return None
    return session.get(Operator, operator_id)
