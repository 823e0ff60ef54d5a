"""Operators, their roles and permissions, and login. Services call `require` before acting."""

from __future__ import annotations

import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.errors import BillingError, PermissionDenied
from schema.models import Operator, Role

ADMIN_USERNAME = "admin"
# The built-in roles as migration 0005 creates them; operators edit them in the roles table.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "administrator": frozenset(
        {"view", "sell", "refund", "reverse", "accounts", "control", "configure", "operators"}
    ),
    "cashier": frozenset({"view", "sell", "refund", "accounts"}),
    "engineer": frozenset({"view", "control", "configure"}),
    "viewer": frozenset({"view"}),
}
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def can(operator: Operator | None, permission: str) -> bool:
    """Whether the operator's role (as the roles table has it now) grants the permission."""
    if operator is None or not operator.is_active:
        return False
    return permission in operator.role_info.permissions


def require(operator: Operator | None, permission: str) -> None:
    if not can(operator, permission):
        who = operator.username if operator else "nobody"
        raise PermissionDenied(f"{who} is not allowed to do this ({permission})")


def create_operator(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    now: datetime,
    display_name: str = "",
    created_by: Operator | None = None,
) -> Operator:
    if session.get(Role, role) is None:
        raise BillingError(f"Unknown role {role!r}")
    if len(password) < 8:
        raise BillingError("A password needs at least 8 characters")
    if session.scalar(select(Operator.id).where(Operator.username == username)) is not None:
        raise BillingError(f"Operator {username} already exists")
    operator = Operator(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        role_info=session.get_one(Role, role),
        created_at=now,
    )
    session.add(operator)
    session.flush()
    audit.record(session, at=now, operator=created_by, action="operator.create", target=username)
    return operator


def ensure_admin(session: Session, *, password: str, now: datetime) -> str | None:
    """Create the administrator on first run. Returns the password when one was generated.

    With `password` given (VOLTPAY_ADMIN_PASSWORD), it is set whether or not the admin exists.
    """
    admin = session.scalar(select(Operator).where(Operator.username == ADMIN_USERNAME))
    if admin is None:
        generated = password or secrets.token_urlsafe(12)
        create_operator(
            session, username=ADMIN_USERNAME, password=generated, role="administrator", now=now,
            display_name="Administrator",
        )
        return None if password else generated
    if password and not _matches(admin.password_hash, password):
        admin.password_hash = hash_password(password)
        audit.record(session, at=now, operator=None, action="operator.reset_password",
                     target=ADMIN_USERNAME, source="VOLTPAY_ADMIN_PASSWORD")
    return None


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(
    session: Session, username: str, password: str, *, now: datetime
) -> Operator | None:
    """The operator, or None for a wrong name or password (the failure is recorded: commit it)."""
    operator = session.scalar(select(Operator).where(Operator.username == username.strip()))
    if operator is None or not operator.is_active or not _matches(operator.password_hash, password):
        if operator is not None:
            operator.failed_attempts += 1
            audit.record(session, at=now, operator=None, action="login.failed", target=username)
        return None
    operator.failed_attempts = 0
    audit.record(session, at=now, operator=operator, action="login", target=username)
    return operator
