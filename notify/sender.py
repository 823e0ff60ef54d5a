"""The sender loop: claim due messages, deliver them through their channels, record every try.

A claim is its own committed transaction that marks the messages `sending` (PostgreSQL: `FOR
UPDATE SKIP LOCKED`, so several senders share the queue; SQLite: its write lock). Only then is
anything sent; the outcome is committed afterwards. A failure goes back to `queued` with an
exponential back-off, or ends `failed` after the last attempt or past the message's expiry.
A message left `sending` by a sender that died is retried once its claim lapses (see the
package docstring for why that is at-least-once). Quiet hours hold back non-urgent messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from notify.channels import Channel, ChannelError
from notify.outbox import is_email
from notify.quiet import QuietHours
from schema.db import unit_of_work
from schema.models import DeliveryAttempt, OutboxMessage

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    first_retry: timedelta = timedelta(seconds=30)
    max_retry: timedelta = timedelta(hours=1)
    # A message `sending` for this long: its sender died mid-send; it is given up as failed.
    sending_timeout: timedelta = timedelta(minutes=10)

    def delay(self, attempts: int) -> timedelta:
        return min(self.first_retry * 2 ** max(0, attempts - 1), self.max_retry)


class Router:
    """Which channels may carry a message, in the order to try them: an email address goes by
    email; a phone number by the SMS channels, the first that works."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = list(channels)

    def route(self, recipient: str, channel: str) -> list[Channel]:
        if channel != "any":
            return [c for c in self.channels if c.name == channel]
        if is_email(recipient):
            return [c for c in self.channels if c.name == "email"]
        return [c for c in self.channels if c.name != "email"]

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


@dataclass(frozen=True)
class Claimed:
    id: int
    recipient: str
    channel: str
    kind: str
    text: str
    attempts: int


@dataclass(frozen=True)
class Tried:
    channel: str
    at: datetime
    ok: bool
    reply: str


class Sender:
    def __init__(
        self,
        database_url: str,
        router: Router,
        *,
        tz: ZoneInfo,
        quiet_hours: QuietHours | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = _utcnow,
        batch: int = 20,
    ) -> None:
        self.database_url = database_url
        self.router = router
        self.tz = tz
        self.quiet_hours = quiet_hours
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.batch = batch

    async def run(self, poll_s: float = 5.0) -> None:
        """Deliver until cancelled; the database work runs in a thread."""
        try:
            while True:
                try:
                    handled = await asyncio.to_thread(self.run_once)
                except Exception:
                    log.exception("notification sender: a round failed; trying again")
                    handled = 0
                if not handled:
                    await asyncio.sleep(poll_s)
        finally:
            self.router.close()

    def run_once(self) -> int:
        """One round: take back lapsed claims, claim what is due, deliver it. Returns how many
        messages were tried."""
        self._take_back_lapsed(self.clock())
        claimed = self._claim(self.clock())
        for message in claimed:
            self._deliver(message)
        return len(claimed)

    def _take_back_lapsed(self, now: datetime) -> None:
        with unit_of_work(self.database_url) as session:
            lapsed = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.state == "sending", OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .with_for_update(skip_locked=True)
            ).all()
            for message in lapsed:
                error = ("the sender stopped while sending: the message may or may not have "
                         "gone out; check with the recipient and send it again if it did not")
                session.add(DeliveryAttempt(message_id=message.id, channel="unknown", at=now,
                                            ok=False, reply=error))
                self._fail(message, error)

    def _claim(self, now: datetime) -> list[Claimed]:
        due = (
            select(OutboxMessage)
            .where(OutboxMessage.state == "queued", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
        )
        if self.quiet_hours and self.quiet_hours.contains(now, self.tz):
            due = due.where(OutboxMessage.urgent.is_(True))
        claimed = []
        with unit_of_work(self.database_url) as session:
            for message in session.scalars(due):
                if message.expires_at <= now:
                    self._fail(message, "expired before it could be sent")
                    continue
                message.state = "sending"
                message.attempts += 1
                message.next_attempt_at = now + self.policy.sending_timeout
                claimed.append(Claimed(message.id, message.recipient, message.channel,
                                       message.kind, message.text, message.attempts))
        return claimed

    def _deliver(self, claimed: Claimed) -> None:
        tried = []
        channels = self.router.route(claimed.recipient, claimed.channel)
        for channel in channels:
            at = self.clock()
            try:
                reference = channel.send(claimed.recipient, claimed.text)
            except ChannelError as exc:
                log.warning("message %d by %s: %s", claimed.id, channel.name, exc)
                tried.append(Tried(channel.name, at, False, str(exc)))
                continue
            except Exception as exc:  # a bug in one channel must not stop the others
                log.exception("message %d by %s", claimed.id, channel.name)
                tried.append(Tried(channel.name, at, False, f"{type(exc).__name__}: {exc}"))
                continue
            tried.append(Tried(channel.name, at, True, reference))
            break
        now = self.clock()
        with unit_of_work(self.database_url) as session:
            message = session.get_one(OutboxMessage, claimed.id, with_for_update=True)
            for attempt in tried:
                session.add(DeliveryAttempt(message_id=claimed.id, channel=attempt.channel,
                                            at=attempt.at, ok=attempt.ok, reply=attempt.reply))
            if message.state != "sending" or message.attempts != claimed.attempts:
                # Our claim lapsed and another round took the message over; it decides.
                return
            if tried and tried[-1].ok:
                message.state = "sent"
                message.sent_at = tried[-1].at
                message.reference = tried[-1].reply[:200]
                message.last_error = ""
                return
            error = tried[-1].reply if tried else self._no_channel(claimed)
            self._after_failure(message, error, now)

    def _no_channel(self, claimed: Claimed) -> str:
        kind = "email" if is_email(claimed.recipient) else "SMS"
        if claimed.channel != "any":
            return f"the {claimed.channel} channel is not configured"
        return f"no {kind} channel is configured"

    def _after_failure(self, message: OutboxMessage, error: str, now: datetime) -> None:
        message.last_error = error
        if message.attempts >= self.policy.max_attempts:
            self._fail(message, f"gave up after {message.attempts} attempts: {error}")
            return
        retry_at = now + self.policy.delay(message.attempts)
        if retry_at >= message.expires_at:
            self._fail(message, f"expired after {message.attempts} attempts: {error}")
            return
        message.state = "queued"
        message.next_attempt_at = retry_at

    def _fail(self, message: OutboxMessage, reason: str) -> None:
        message.state = "failed"
        message.last_error = reason
        log.error("message %d (%s to %s) failed: %s", message.id, message.kind,
                  message.recipient, reason)


def attempts_of(session: Session, message_id: int) -> list[DeliveryAttempt]:
    """Every try to deliver one message, oldest first."""
    return list(session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.message_id == message_id)
        .order_by(DeliveryAttempt.id)
    ))
