"""What billing tells tenants and operators, queued in the outbox beside the money or the alarm
that it tells about (notify/outbox.py): the same transaction commits both or neither.

Tenants (the account's phone, in the account's language): each balance level reached — alarm 1,
alarm 2, and arrears (told as "switched off" when the meters were tripped for it) — at most once
per level until the balance rises above it again; and every recharge, with the new balance and
the days it should last. Operators (the alarm SMS number and email from settings): a gateway
lost, a command failed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from billing.policy import BillingPolicy
from billing.views import balance_info
from notify import messages, outbox
from schema.models import Account, LedgerEntry

URGENT_LEVELS = ("arrears",)  # quiet hours hold back the other levels, never arrears


RANK = {"normal": 0, **{level: rank for rank, level in enumerate(outbox.LEVELS, start=1)}}


def balance_levels(
    session: Session,
    changes: Sequence[tuple[Account, str]],
    *,
    tripped: Collection[int],
    policy: BillingPolicy,
    now: datetime,
) -> None:
    """Accounts whose alarm level just changed, with the level before (`tripped`: accounts
    whose meters were just tripped). Those that rose free the keys of the levels they left, in
    one statement for the batch; each tenant is told of the level the account is at, unless
    told already."""
    risen = [
        key
        for account, before in changes
        if RANK[account.alarm_level] < RANK[before]
        for key in outbox.level_keys_above(account.id, account.alarm_level)
    ]
    if risen:
        outbox.clear(session, dedupe_keys=risen, now=now)
    for account, _ in changes:
        _tell_level(session, account, tripped=account.id in tripped, policy=policy, now=now)


def _tell_level(
    session: Session, account: Account, *, tripped: bool, policy: BillingPolicy, now: datetime
) -> None:
    level = account.alarm_level
    if level not in outbox.LEVELS or not account.phone.strip():
        return
    if level == "arrears" and tripped:
        text = messages.arrears_trip(account.language, account=account.number,
                                     balance=account.balance, currency=policy.currency)
    else:
        days_left = None
        if level != "arrears":
            days_left = balance_info(session, account.id, now=now, tz=policy.tz).days_left
        text = messages.balance_level(level, account.language, account=account.number,
                                      balance=account.balance, days_left=days_left,
                                      currency=policy.currency)
    outbox.enqueue(
        session, recipient=account.phone, kind=level, text=text, language=account.language,
        dedupe_key=outbox.level_key(account.id, level), urgent=level in URGENT_LEVELS,
        now=now, account_id=account.id,
    )


def recharge(
    session: Session, account: Account, entry: LedgerEntry, *, policy: BillingPolicy,
    now: datetime,
) -> None:
    """Confirm a sale to the tenant, with the new balance and the days it should last. Sent
    at any hour: the tenant is waiting for it."""
    if not account.phone.strip():
        return
    info = balance_info(session, account.id, now=now, tz=policy.tz)
    text = messages.recharge(account.language, account=account.number, amount=entry.amount,
                             balance=account.balance, days_left=info.days_left,
                             currency=policy.currency)
    outbox.enqueue(
        session, recipient=account.phone, kind="recharge", text=text,
        language=account.language, dedupe_key=outbox.recharge_key(entry.id), urgent=True,
        now=now, account_id=account.id,
    )


def gateway_lost(
    session: Session, gateway_id: int, name: str, since: datetime, *, policy: BillingPolicy,
    now: datetime,
) -> None:
    text = messages.gateway_lost(policy.alert_language, gateway=name,
                                 since=since.astimezone(policy.tz))
    _alert(session, "gateway_lost", text, outbox.gateway_lost_key(gateway_id), policy, now)


def gateway_found(session: Session, gateway_id: int, *, now: datetime) -> None:
    outbox.clear(session, dedupe_keys=[outbox.gateway_lost_key(gateway_id)], now=now)


def command_failed(
    session: Session, command_id: int, meter: str, kind: str, reason: str, *,
    policy: BillingPolicy, now: datetime,
) -> None:
    text = messages.command_failed(policy.alert_language, meter=meter, command=kind,
                                   reason=reason)
    _alert(session, "command_failed", text, outbox.command_failed_key(command_id), policy, now)


def _alert(
    session: Session, kind: str, text: str, key: str, policy: BillingPolicy, now: datetime
) -> None:
    for recipient in policy.alert_recipients:
        outbox.enqueue(session, recipient=recipient, kind=kind, text=text,
                       language=policy.alert_language, dedupe_key=key, urgent=True, now=now)
