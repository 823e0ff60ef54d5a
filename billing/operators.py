"""Operators, their roles and permissions, and login. Services call `require` before acting.

Whoever manages operators and roles needs the "operators" permission. At least one active
operator always keeps it, and the administrator role always has it, so nobody can lock every
administrator out of the system by a change made here.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing import audit
from billing.errors import BillingError, NotFound, PermissionDenied
from schema.models import Operator, Role

ADMIN_USERNAME = "admin"
ADMIN_ROLE = "administrator"
MANAGE = "operators"
# Every permission a role can grant, in the order screens list them.
PERMISSIONS = ("view", "sell", "refund", "reverse", "accounts", "control", "configure", MANAGE)
# Not a permission a role grants: what a screen every logged-in operator may open asks for.
SIGNED_IN = "signed_in"
# The built-in roles as migration 0005 creates them; operators edit them in the roles table.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    ADMIN_ROLE: frozenset(PERMISSIONS),
    "cashier": frozenset({"view", "sell", "refund", "accounts"}),
    "engineer": frozenset({"view", "control", "configure"}),
    "viewer": frozenset({"view"}),
}
# The dashboard's languages; an operator's own is applied when they log in.
LANGUAGES = ("en", "zh")
MIN_PASSWORD_LENGTH = 8
# argon2 hashes anything, but an unbounded password is an easy way to burn server time.
MAX_PASSWORD_LENGTH = 128
LOCK_AFTER_ATTEMPTS = 5
LOCK_FOR = timedelta(minutes=15)
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
_AUDIT_TARGET_CHARS = 64  # audit_log.target is VARCHAR(64)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def can(operator: Operator | None, permission: str) -> bool:
    """Whether the operator's role (as the roles table has it now) grants the permission."""
    if operator is None or not operator.is_active:
        return False
    return permission == SIGNED_IN or permission in operator.role_info.permissions


def require(operator: Operator | None, permission: str) -> None:
    if not can(operator, permission):
        who = operator.username if operator else "nobody"
        raise PermissionDenied(f"{who} is not allowed to do this ({permission})")


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BillingError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BillingError(f"A password can have at most {MAX_PASSWORD_LENGTH} characters")


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
    """Create an operator without a permission check (first run, seeding); see `add_operator`."""
    if session.get(Role, role) is None:
        raise BillingError(f"Unknown role {role!r}")
    check_password_rules(password)
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
    audit.record(session, at=now, operator=created_by, action="operator.create", target=username,
                 role=role)
    return operator


def ensure_admin(session: Session, *, password: str, now: datetime) -> str | None:
    """Create the administrator on first run. Returns the password when one was generated.

    With `password` given (VOLTPAY_ADMIN_PASSWORD), it is set whether or not the admin exists,
    and a locked administrator is unlocked: that is the way back in when every login is locked.
    """
    admin = session.scalar(select(Operator).where(Operator.username == ADMIN_USERNAME))
    if admin is None:
        generated = password or secrets.token_urlsafe(12)
        create_operator(
            session, username=ADMIN_USERNAME, password=generated, role=ADMIN_ROLE, now=now,
            display_name="Administrator",
        )
        return None if password else generated
    if password and not verify_password(admin.password_hash, password):
        admin.password_hash = hash_password(password)
        audit.record(session, at=now, operator=None, action="operator.reset_password",
                     target=ADMIN_USERNAME, source="VOLTPAY_ADMIN_PASSWORD")
    if password and admin.locked_until is not None:
        _unlock(session, admin, now=now, by=None, reason="VOLTPAY_ADMIN_PASSWORD")
    return None


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether the password (or a tenant's PIN) matches the argon2 hash; never for no hash."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- login ---------------------------------------------------------------------------------

LoginOutcome = Literal["ok", "wrong", "locked", "disabled"]


@dataclass(frozen=True)
class LoginAttempt:
    """What a login attempt came to; the attempt itself is recorded either way (commit it)."""

    outcome: LoginOutcome
    operator: Operator | None = None  # set when the outcome is "ok"
    locked_until: datetime | None = None  # set when the outcome is "locked"


def attempt_login(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    lock_after: int = LOCK_AFTER_ATTEMPTS,
    lock_for: timedelta = LOCK_FOR,
) -> LoginAttempt:
    """Check a login. `lock_after` wrong passwords in a row lock the operator for `lock_for`;
    while locked even the right password is refused. An unknown name and a wrong password get
    the same answer, and a disabled operator is only told so after giving the right password."""
    name = username.strip()
    operator = session.scalar(select(Operator).where(Operator.username == name))
    if operator is None:
        _failed(session, name, now=now, reason="unknown user")
        return LoginAttempt("wrong")
    if operator.locked_until is not None:
        if operator.locked_until > now:
            _failed(session, name, now=now, reason="locked")
            return LoginAttempt("locked", locked_until=operator.locked_until)
        _unlock(session, operator, now=now, by=None, reason="lock expired")
    if not verify_password(operator.password_hash, password):
        operator.failed_attempts += 1
        _failed(session, name, now=now, reason="wrong password", attempt=operator.failed_attempts)
        if operator.failed_attempts >= lock_after:
            operator.locked_until = now + lock_for
            audit.record(session, at=now, operator=None, action="operator.lock", target=name,
                         until=operator.locked_until.isoformat(),
                         failed_attempts=operator.failed_attempts)
            return LoginAttempt("locked", locked_until=operator.locked_until)
        return LoginAttempt("wrong")
    if not operator.is_active:
        _failed(session, name, now=now, reason="disabled")
        return LoginAttempt("disabled")
    operator.failed_attempts = 0
    operator.last_seen_at = now
    audit.record(session, at=now, operator=operator, action="login", target=name)
    return LoginAttempt("ok", operator=operator)


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    lock_after: int = LOCK_AFTER_ATTEMPTS,
    lock_for: timedelta = LOCK_FOR,
) -> Operator | None:
    """The operator, or None when refused (the failure is recorded: commit it)."""
    return attempt_login(
        session, username, password, now=now, lock_after=lock_after, lock_for=lock_for
    ).operator


def _failed(session: Session, username: str, *, now: datetime, **detail: object) -> None:
    audit.record(session, at=now, operator=None, action="login.failed",
                 target=username[:_AUDIT_TARGET_CHARS], **detail)


def _unlock(
    session: Session, operator: Operator, *, now: datetime, by: Operator | None, reason: str
) -> None:
    operator.failed_attempts = 0
    operator.locked_until = None
    audit.record(session, at=now, operator=by, action="operator.unlock", target=operator.username,
                 reason=reason)


def record_logout(
    session: Session, operator: Operator | None, *, now: datetime, reason: str = "logout"
) -> None:
    if operator is None:
        return
    audit.record(session, at=now, operator=operator, action="logout", target=operator.username,
                 reason=reason)


def is_locked(operator: Operator, now: datetime) -> bool:
    return operator.locked_until is not None and operator.locked_until > now


# --- own password ----------------------------------------------------------------------------


def change_password(
    session: Session,
    *,
    operator: Operator | None,
    current_password: str,
    new_password: str,
    now: datetime,
) -> None:
    """An operator changes their own password: the current one proves it is them."""
    require(operator, SIGNED_IN)
    assert operator is not None
    if not verify_password(operator.password_hash, current_password):
        raise BillingError("The current password is wrong")
    check_password_rules(new_password)
    if new_password == current_password:
        raise BillingError("The new password must differ from the current one")
    if verify_password(operator.previous_password_hash, new_password):
        raise BillingError("The new password must differ from the previous one")
    operator.previous_password_hash = operator.password_hash
    operator.password_hash = hash_password(new_password)
    operator.password_changed_at = now
    audit.record(session, at=now, operator=operator, action="operator.change_password",
                 target=operator.username)


# --- language --------------------------------------------------------------------------------


def set_language(
    session: Session, *, operator: Operator | None, operator_id: int, language: str,
    now: datetime,
) -> Operator:
    """The language the dashboard opens in for an operator: anyone may choose their own, an
    administrator (permission "operators") anyone's."""
    require(operator, SIGNED_IN)
    assert operator is not None
    if operator_id != operator.id:
        require(operator, MANAGE)
    if language not in LANGUAGES:
        raise BillingError(f"Unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
    target = _target(session, operator_id)
    if target.language == language:
        return target
    before = target.language
    target.language = language
    audit.record(session, at=now, operator=operator, action="operator.language",
                 target=target.username, before=before, after=language)
    return target


# --- operator management (permission "operators") --------------------------------------------


@dataclass(frozen=True)
class OperatorRow:
    id: int
    username: str
    display_name: str
    role: str
    language: str
    is_active: bool
    locked_until: datetime | None  # only while the lock lasts
    failed_attempts: int
    last_seen_at: datetime | None
    # None: the password is one an administrator set (at creation or a reset).
    password_changed_at: datetime | None
    created_at: datetime


def list_operators(
    session: Session, *, operator: Operator | None, now: datetime
) -> list[OperatorRow]:
    require(operator, MANAGE)
    return [
        OperatorRow(
            id=o.id, username=o.username, display_name=o.display_name, role=o.role,
            language=o.language, is_active=o.is_active,
            locked_until=o.locked_until if is_locked(o, now) else None,
            failed_attempts=o.failed_attempts, last_seen_at=o.last_seen_at,
            password_changed_at=o.password_changed_at, created_at=o.created_at,
        )
        for o in session.scalars(select(Operator).order_by(Operator.username))
    ]


def add_operator(
    session: Session,
    *,
    operator: Operator | None,
    username: str,
    display_name: str,
    role: str,
    password: str,
    now: datetime,
) -> Operator:
    """An administrator creates an operator with an initial password to hand over."""
    require(operator, MANAGE)
    name = username.strip()
    if not name:
        raise BillingError("Enter a user name")
    if not _USERNAME.fullmatch(name):
        raise BillingError(
            "A user name is at most 64 letters, digits or . _ @ - (no spaces), for example li.na"
        )
    clash = session.scalar(
        select(Operator.username).where(func.lower(Operator.username) == name.lower())
    )
    if clash is not None:
        raise BillingError(f"Operator {clash} already exists")
    display = display_name.strip()
    if len(display) > 100:
        raise BillingError("A display name can have at most 100 characters")
    if session.get(Role, role) is None:
        raise BillingError(f"Unknown role {role!r}")
    _assignable(role)
    return create_operator(session, username=name, password=password, role=role, now=now,
                           display_name=display, created_by=operator)


# Built-in operators that are channels, not people (the online payment channel sells as
# `online`): nobody manages them as a person, and their roles are given to nobody else.
SYSTEM_OPERATORS = ("online",)


def _target(session: Session, operator_id: int) -> Operator:
    target = session.get(Operator, operator_id)
    if target is None:
        raise NotFound("No such operator")
    if target.username in SYSTEM_OPERATORS:
        raise BillingError(
            f"{target.username} is a built-in channel, not a person: it cannot be managed here "
            "(change its role's permissions on the roles page)"
        )
    return target


def _assignable(role: str) -> None:
    if role in SYSTEM_OPERATORS:
        raise BillingError(f"The {role} role belongs to the built-in {role} channel")


def set_active(
    session: Session, *, operator: Operator | None, operator_id: int, active: bool, now: datetime
) -> Operator:
    """Disable an operator (they cannot log in; a session they have open ends) or enable one."""
    require(operator, MANAGE)
    assert operator is not None
    target = _target(session, operator_id)
    if target.is_active == active:
        return target
    if not active:
        if target.id == operator.id:
            raise BillingError("You cannot disable your own account")
        _check_someone_manages(session, operators={target.id: None})
    target.is_active = active
    audit.record(session, at=now, operator=operator,
                 action="operator.enable" if active else "operator.disable",
                 target=target.username)
    return target


def reset_password(
    session: Session, *, operator: Operator | None, operator_id: int, password: str, now: datetime
) -> Operator:
    """An administrator sets a temporary password (and lifts a lock) for someone who forgot."""
    require(operator, MANAGE)
    assert operator is not None
    target = _target(session, operator_id)
    if target.id == operator.id:
        raise BillingError("Change your own password on the Change password page")
    check_password_rules(password)
    target.previous_password_hash = target.password_hash
    target.password_hash = hash_password(password)
    target.password_changed_at = None
    audit.record(session, at=now, operator=operator, action="operator.reset_password",
                 target=target.username)
    if target.locked_until is not None or target.failed_attempts:
        _unlock(session, target, now=now, by=operator, reason="password reset")
    return target


def unlock(
    session: Session, *, operator: Operator | None, operator_id: int, now: datetime
) -> Operator:
    """Lift a lock from failed logins before it runs out."""
    require(operator, MANAGE)
    target = _target(session, operator_id)
    if target.locked_until is None and not target.failed_attempts:
        raise BillingError(f"{target.username} is not locked")
    _unlock(session, target, now=now, by=operator, reason="by an administrator")
    return target


def change_role(
    session: Session, *, operator: Operator | None, operator_id: int, role: str, now: datetime
) -> Operator:
    require(operator, MANAGE)
    target = _target(session, operator_id)
    new_role = session.get(Role, role)
    if new_role is None:
        raise BillingError(f"Unknown role {role!r}")
    _assignable(role)
    if target.role == role:
        return target
    _check_someone_manages(session, operators={target.id: role})
    before = target.role
    target.role = role
    target.role_info = new_role
    audit.record(session, at=now, operator=operator, action="operator.role",
                 target=target.username, before=before, after=role)
    return target


# --- roles (permission "operators") ----------------------------------------------------------


@dataclass(frozen=True)
class RoleRow:
    name: str
    permissions: tuple[str, ...]  # in PERMISSIONS order
    builtin: bool
    operators: int  # how many operators have it, disabled ones included


def list_roles(session: Session, *, operator: Operator | None) -> list[RoleRow]:
    require(operator, MANAGE)
    counts = {
        role: count
        for role, count in session.execute(
            select(Operator.role, func.count()).group_by(Operator.role)
        )
    }
    # Built-in roles first in their usual order, then the site's own by name.
    usual = list(ROLE_PERMISSIONS)
    roles = sorted(session.scalars(select(Role)), key=lambda r: (
        usual.index(r.name) if r.name in usual else len(usual), r.name
    ))
    return [
        RoleRow(name=r.name, permissions=_ordered(r.permissions), builtin=r.builtin,
                operators=counts.get(r.name, 0))
        for r in roles
    ]


def _ordered(permissions: Iterable[str]) -> tuple[str, ...]:
    wanted = set(permissions)
    return tuple(p for p in PERMISSIONS if p in wanted)


def _valid_permissions(permissions: Iterable[str]) -> tuple[str, ...]:
    chosen = list(permissions)
    unknown = sorted(set(chosen) - set(PERMISSIONS))
    if unknown:
        raise BillingError(f"Unknown permission(s): {', '.join(unknown)}")
    return _ordered(chosen)


def set_role_permissions(
    session: Session,
    *,
    operator: Operator | None,
    name: str,
    permissions: Iterable[str],
    now: datetime,
) -> Role:
    require(operator, MANAGE)
    role = session.get(Role, name)
    if role is None:
        raise NotFound(f"No such role {name!r}")
    chosen = _valid_permissions(permissions)
    if name == ADMIN_ROLE and MANAGE not in chosen:
        raise BillingError(
            "The administrator role must keep the operators permission, "
            "or nobody could manage operators and roles"
        )
    before = _ordered(role.permissions)
    if chosen == before:
        return role
    if MANAGE not in chosen:
        _check_someone_manages(session, roles={name: frozenset(chosen)})
    role.permissions = list(chosen)  # a new list: SQLAlchemy does not see changes in place
    audit.record(session, at=now, operator=operator, action="role.update", target=name,
                 added=",".join(p for p in chosen if p not in before),
                 removed=",".join(p for p in before if p not in chosen))
    return role


def create_role(
    session: Session,
    *,
    operator: Operator | None,
    name: str,
    permissions: Iterable[str],
    now: datetime,
) -> Role:
    require(operator, MANAGE)
    clean = name.strip()
    if not clean:
        raise BillingError("Enter a role name")
    if len(clean) > 32:
        raise BillingError("A role name can have at most 32 characters")
    if clean == SIGNED_IN:
        raise BillingError(f"{clean!r} cannot be used as a role name")
    clash = session.scalar(select(Role.name).where(func.lower(Role.name) == clean.lower()))
    if clash is not None:
        raise BillingError(f"Role {clash} already exists")
    chosen = _valid_permissions(permissions)
    role = Role(name=clean, permissions=list(chosen), builtin=False)
    session.add(role)
    session.flush()
    audit.record(session, at=now, operator=operator, action="role.create", target=clean,
                 permissions=",".join(chosen))
    return role


def delete_role(session: Session, *, operator: Operator | None, name: str, now: datetime) -> None:
    require(operator, MANAGE)
    role = session.get(Role, name)
    if role is None:
        raise NotFound(f"No such role {name!r}")
    if role.builtin:
        raise BillingError(f"{name} is a built-in role; change its permissions instead")
    users = session.scalar(select(func.count()).select_from(Operator).where(Operator.role == name))
    if users:
        raise BillingError(
            f"{users} operator(s) still have the role {name}; give them another role first"
        )
    session.delete(role)
    session.flush()
    audit.record(session, at=now, operator=operator, action="role.delete", target=name)


def _check_someone_manages(
    session: Session,
    *,
    operators: dict[int, str | None] | None = None,
    roles: dict[str, frozenset[str]] | None = None,
) -> None:
    """Refuse a change after which no active operator could manage operators.

    `operators` maps an operator id to the role it is about to have (None: about to be disabled),
    `roles` a role name to the permissions it is about to have. The rows are locked (PostgreSQL)
    so that two administrators disabling each other at once cannot both pass this check.
    """
    granted = {
        name: frozenset(permissions)
        for name, permissions in session.execute(
            select(Role.name, Role.permissions).order_by(Role.name).with_for_update()
        )
    }
    granted.update(roles or {})
    changes = operators or {}
    active = session.execute(
        select(Operator.id, Operator.role)
        .where(Operator.is_active.is_(True))
        .order_by(Operator.id)
        .with_for_update()
    )
    for operator_id, role in active:
        role_after = changes.get(operator_id, role)
        if role_after is not None and MANAGE in granted.get(role_after, frozenset()):
            return
    raise BillingError(
        "Refused: afterwards no active operator could manage operators and roles. "
        "Give the operators permission to someone else first."
    )
