"""The outbox as the dashboard reads it: messages by site-local day, state and kind, and the
tries of one message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from billing.monitoring import local_day_bounds
from schema.models import Account, OutboxMessage

STATES = ("queued", "sending", "sent", "failed", "cancelled")
# A busy site queues thousands of messages a day; past this the table asks for narrower days.
ROW_LIMIT = 2000


@dataclass(frozen=True)
class MessageRow:
    message_id: int
    created_at: datetime
    recipient: str
    account: str | None
    tenant: str | None
    kind: str
    language: str
    state: str  # one of STATES
    attempts: int
    next_attempt_at: datetime | None  # only while queued: when the sender tries it next
    sent_at: datetime | None
    last_error: str
    text: str


@dataclass(frozen=True)
class MessagePage:
    rows: list[MessageRow]  # newest first, at most the limit
    total: int  # how many match, shown or not


def _conditions(
    start_on: date, end_on: date, tz: ZoneInfo, kinds: Sequence[str]
) -> list[ColumnElement[bool]]:
    start, end = local_day_bounds(start_on, end_on, tz)
    conditions = [OutboxMessage.created_at >= start, OutboxMessage.created_at < end]
    if kinds:
        conditions.append(OutboxMessage.kind.in_(list(kinds)))
    return conditions


def messages(
    session: Session,
    start_on: date,
    end_on: date,
    tz: ZoneInfo,
    *,
    states: Sequence[str] = (),
    kinds: Sequence[str] = (),
    limit: int = ROW_LIMIT,
) -> MessagePage:
    """Messages queued on the site-local days from `start_on` to `end_on`, newest first; only
    `states` and `kinds` when given."""
    conditions = _conditions(start_on, end_on, tz, kinds)
    if states:
        conditions.append(OutboxMessage.state.in_(list(states)))
    total = session.scalar(select(func.count(OutboxMessage.id)).where(*conditions)) or 0
    found = session.execute(
        select(OutboxMessage, Account.number, Account.tenant_name)
        .outerjoin(Account, Account.id == OutboxMessage.account_id)
        .where(*conditions)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
    ).all()
    rows = [
        MessageRow(
            message_id=message.id, created_at=message.created_at, recipient=message.recipient,
            account=number, tenant=tenant, kind=message.kind, language=message.language,
            state=message.state, attempts=message.attempts,
            next_attempt_at=message.next_attempt_at if message.state == "queued" else None,
            sent_at=message.sent_at, last_error=message.last_error, text=message.text,
        )
        for message, number, tenant in found
    ]
    return MessagePage(rows, total)


def failed_count(
    session: Session, start_on: date, end_on: date, tz: ZoneInfo, kinds: Sequence[str] = ()
) -> int:
    """How many messages queued on these days finally failed (whatever the state filter: an
    operator looking at sent messages is still told of those that did not go)."""
    conditions = _conditions(start_on, end_on, tz, kinds)
    return session.scalar(
        select(func.count(OutboxMessage.id)).where(*conditions, OutboxMessage.state == "failed")
    ) or 0
