"""Operators act on the notification outbox: a message that finally failed is sent again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, operators
from billing.errors import BillingError, NotFound
from notify.outbox import DEFAULT_EXPIRY, normalise_recipient
from schema.models import Account, Operator, OutboxMessage


def send_again(
    session: Session, message_id: int, *, operator: Operator | None, now: datetime
) -> OutboxMessage:
    """Queue a failed message again, due now and good for another day.

    A tenant's message goes to the account's phone number as it is now, so correcting a wrong
    number on the account and sending again reaches the tenant. Its attempts are kept: one that
    used all its tries gets one more, so the operator sees at once whether the fix worked.
    A message about a condition that has ended since (a balance level that rose again) is not
    sent: it would tell the tenant something no longer true.
    """
    operators.require(operator, "control")
    message = session.get(OutboxMessage, message_id, with_for_update=True)
    if message is None:
        raise NotFound(f"No such message: #{message_id}")
    if message.state != "failed":
        raise BillingError(
            f"Message #{message_id} is {message.state}: only a failed message can be sent "
            "again. Refresh the page."
        )
    if message.cleared_at is not None:
        raise BillingError(
            f"Message #{message_id} tells of something that has ended since; it is not sent again"
        )
    recipient = message.recipient
    if message.account_id is not None:
        account = session.get_one(Account, message.account_id)
        if not account.phone.strip():
            raise BillingError(
                f"Account {account.number} has no phone number: add one on the account, "
                "then send again"
            )
        phone = normalise_recipient(account.phone)
        if phone is None:
            raise BillingError(
                f"The phone number of account {account.number} ({account.phone}) is not a "
                "phone number: correct it on the account, then send again"
            )
        recipient = phone
    elif normalise_recipient(recipient) is None:
        raise BillingError(
            f"{recipient} is not a phone number or an email address: correct NOTIFY_ALARM_PHONE "
            "or NOTIFY_ALARM_EMAIL; the next alert goes there"
        )
    if recipient != message.recipient:
        # The key is open once per recipient: the new number may have been told already.
        told = session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.dedupe_key == message.dedupe_key,
                OutboxMessage.recipient == recipient,
                OutboxMessage.cleared_at.is_(None),
            )
        )
        if told is not None:
            raise BillingError(
                f"{recipient} already has this message (#{told}); it is not sent twice"
            )
    audit.record(
        session, at=now, operator=operator, action="message.send_again",
        target=f"message {message.id}", kind=message.kind, recipient=recipient,
        previous_recipient=message.recipient, attempts=message.attempts,
        last_error=message.last_error,
    )
    message.recipient = recipient
    message.state = "queued"
    message.next_attempt_at = now
    message.expires_at = now + DEFAULT_EXPIRY
    session.flush()
    return message
