"""The operation log (操作日志): who did what and when, read from the audit log with filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, operators
from billing.errors import BillingError
from schema.models import AuditEntry, Operator

# A screen (and its export) shows at most this many entries, the newest first.
MAX_ROWS = 2000


@dataclass(frozen=True)
class LogRow:
    id: int
    at: datetime  # UTC
    actor: str
    action: str
    target: str
    detail: str  # "key=value; key=value"


@dataclass(frozen=True)
class LogPage:
    rows: list[LogRow]
    more: bool  # more entries match than `rows` holds: narrow the filters


def _utc_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def search(
    session: Session,
    *,
    operator: Operator | None,
    tz: ZoneInfo,
    start_on: date | None = None,
    end_on: date | None = None,
    actor: str | None = None,
    action_prefix: str = "",
    target_text: str = "",
    limit: int = MAX_ROWS,
) -> LogPage:
    """Entries from the start of `start_on` to the end of `end_on` (site-local days), newest first.

    `actor` is an operator's user name (or "system"); `action_prefix` matches the start of the
    action ("operator." finds every change to operators); `target_text` any part of the target,
    ignoring case.
    """
    operators.require(operator, operators.MANAGE)
    if start_on and end_on and start_on > end_on:
        raise BillingError("The start date is after the end date")
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if start_on:
        query = query.where(AuditEntry.at >= _utc_midnight(start_on, tz))
    if end_on:
        query = query.where(AuditEntry.at < _utc_midnight(end_on + timedelta(days=1), tz))
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action_prefix.strip():
        query = query.where(AuditEntry.action.startswith(action_prefix.strip(), autoescape=True))
    if target_text.strip():
        query = query.where(AuditEntry.target.icontains(target_text.strip(), autoescape=True))
    entries = session.scalars(query.limit(limit + 1)).all()
    rows = [
        LogRow(id=e.id, at=e.at, actor=e.actor, action=e.action, target=e.target,
               detail="; ".join(f"{key}={value}" for key, value in (e.detail or {}).items()))
        for e in entries[:limit]
    ]
    return LogPage(rows=rows, more=len(entries) > limit)


def actors(session: Session, *, operator: Operator | None) -> list[str]:
    """Who can appear in the log: every operator's user name, then "system"."""
    operators.require(operator, operators.MANAGE)
    names = session.scalars(select(Operator.username).order_by(Operator.username)).all()
    return [*names, audit.SYSTEM]
