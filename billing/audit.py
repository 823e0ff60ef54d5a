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
    session.add(
        AuditEntry(
            at=at,
            operator_id=operator.id if operator else None,
            actor=operator.username if operator else SYSTEM,
            action=action,
            target=target,
            detail={k: str(v) for k, v in detail.items()},
        )
    )
