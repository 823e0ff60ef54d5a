"""The outbox: messages queued inside the caller's transaction, delivered later by the sender.

Billing queues a message in the same transaction as the money or alarm it tells about, so
either both are committed or neither is:

    outbox.enqueue(session, recipient=account.phone, kind="alarm1", text=..., language=...,
                   dedupe_key=outbox.level_key(account.id, "alarm1"), urgent=False, now=now,
                   account_id=account.id)

The database refuses a second message with a key that is still open for the same recipient
(`INSERT … ON CONFLICT DO NOTHING`, so the caller's transaction stays usable on SQLite and
PostgreSQL alike): `enqueue` then returns None. A condition that ends frees its key with
`clear` (or `clear_levels_above` for balance levels), so the next time it happens is told again.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from notify.messages import LANGUAGES
from schema.models import OutboxMessage

log = logging.getLogger(__name__)

KINDS = ("alarm1", "alarm2", "arrears", "trip", "recharge", "gateway_lost", "command_failed")
CHANNELS = ("any", "modem", "http_sms", "email")
# Balance levels from least to most severe; a trip belongs with arrears.
LEVELS = ("alarm1", "alarm2", "arrears")
# Past this a message is no longer worth sending (a day-old "balance low" misleads).
DEFAULT_EXPIRY = timedelta(hours=24)

_PHONE = re.compile(r"\+?\d{3,20}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")


def level_key(account_id: int, level: str) -> str:
    """An account's balance level (alarm1, alarm2, arrears): told once until it clears."""
    return f"account:{account_id}:{level}"


def trip_key(account_id: int) -> str:
    """An account's meters switched off for arrears: told once until they close again."""
    return f"account:{account_id}:trip"


def recharge_key(ledger_entry_id: int) -> str:
    """A sale's confirmation: told once, ever."""
    return f"sale:{ledger_entry_id}"


def gateway_lost_key(gateway_id: int) -> str:
    return f"gateway:{gateway_id}:lost"


def command_failed_key(command_id: int) -> str:
    return f"command:{command_id}:failed"


def normalise_recipient(recipient: str) -> str | None:
    """A phone number without spaces or dashes, or an email address; None when it is neither."""
    recipient = recipient.strip()
    if "@" in recipient:
        return recipient if _EMAIL.fullmatch(recipient) else None
    phone = _PHONE_PUNCTUATION.sub("", recipient)
    return phone if _PHONE.fullmatch(phone) else None


def is_email(recipient: str) -> bool:
    return "@" in recipient


def enqueue(
    session: Session,
    *,
    recipient: str,
    kind: str,
    text: str,
    language: str,
    dedupe_key: str,
    urgent: bool,
    now: datetime,
    account_id: int | None = None,
    channel: str = "any",
    expires_after: timedelta = DEFAULT_EXPIRY,
) -> OutboxMessage | None:
    """Queue one message in the caller's transaction; None when there is nothing to send.

    Nothing is queued for an empty recipient (an account without a phone) or when a message
    with the same key is still open for this recipient. A recipient that is neither a phone
    number nor an email address is recorded as failed at once, so operators see it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if not recipient.strip():
        return None
    address = normalise_recipient(recipient)
    values = {
        "recipient": address or recipient.strip()[:254],
        "channel": channel,
        "language": language,
        "kind": kind,
        "text": text,
        "urgent": urgent,
        "dedupe_key": dedupe_key,
        "account_id": account_id,
        "state": "queued" if address else "failed",
        "attempts": 0,
        "next_attempt_at": now,
        "expires_at": now + expires_after,
        "last_error": "" if address else "not a phone number or an email address",
        "reference": "",
        "created_at": now,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(OutboxMessage).values(**values).on_conflict_do_nothing()
        .returning(OutboxMessage.id)
    )
    message_id = session.execute(statement).scalar_one_or_none()
    if message_id is None:
        return None
    if address is None:
        log.error("message %d (%s) not sent: %r is not a phone number or an email address",
                  message_id, kind, recipient)
    return session.get_one(OutboxMessage, message_id)


def clear(session: Session, *, dedupe_keys: list[str], now: datetime) -> int:
    """The conditions behind these keys ended: free the keys, so the next time is told again.

    A message still waiting in the queue (say, for quiet hours to end) is cancelled: it would
    only tell of something that is over. Returns how many messages were cleared.
    """
    still_open = (OutboxMessage.dedupe_key.in_(dedupe_keys), OutboxMessage.cleared_at.is_(None))
    cancelled = session.execute(
        update(OutboxMessage)
        .where(*still_open, OutboxMessage.state == "queued")
        .values(state="cancelled", cleared_at=now)
    )
    others = session.execute(update(OutboxMessage).where(*still_open).values(cleared_at=now))
    return cast(CursorResult[Any], cancelled).rowcount + cast(CursorResult[Any], others).rowcount


def clear_levels_above(session: Session, *, account_id: int, level: str, now: datetime) -> int:
    """An account's balance is now at `level` (normal, alarm1, alarm2, arrears): every more
    severe level has cleared, and with arrears the trip notice."""
    return clear(session, dedupe_keys=level_keys_above(account_id, level), now=now)


def level_keys_above(account_id: int, level: str) -> list[str]:
    """The keys of the balance levels more severe than `level`, and with arrears the trip
    notice: what an account that rose to `level` has cleared."""
    if level != "normal" and level not in LEVELS:
        raise ValueError(f"unknown balance level {level!r}")
    above = LEVELS[LEVELS.index(level) + 1:] if level in LEVELS else LEVELS
    keys = [level_key(account_id, name) for name in above]
    if "arrears" in above:
        keys.append(trip_key(account_id))
    return keys


def failed_messages(
    session: Session, *, since: datetime | None = None, limit: int = 200
) -> list[OutboxMessage]:
    """Messages that finally failed, newest first (for the dashboard)."""
    query = select(OutboxMessage).where(OutboxMessage.state == "failed")
    if since is not None:
        query = query.where(OutboxMessage.created_at >= since)
    return list(session.scalars(query.order_by(OutboxMessage.id.desc()).limit(limit)))
