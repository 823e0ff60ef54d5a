"""The audit log: one row per state change, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from schema.models import AuditEntry, Operator

SYSTEM = "system"


def record(
    session: Session,
    *,
    at: datetime,
    operator: Operator | None,
    action: str,
    target: str = "",
    **detail: object,
) -> None:
    _add(session, at, operator, operator.username if operator else SYSTEM, action, target, detail)


def record_by(
    session: Session, *, at: datetime, actor: str, action: str, target: str = "",
    **detail: object,
) -> None:
    """A change made by someone who is not an operator (a tenant at the kiosk)."""
    _add(session, at, None, actor, action, target, detail)


def _add(
    session: Session, at: datetime, operator: Operator | None, actor: str, action: str,
    target: str, detail: dict[str, object],
) -> None:
    session.add(
        AuditEntry(
            at=at,
            operator_id=operator.id if operator else None,
            actor=actor,
            action=action,
            target=target,
            detail={k: str(v) for k, v in detail.items()},
        )
    )
