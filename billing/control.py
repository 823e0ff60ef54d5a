"""Remote control decisions: which meters to trip or close, queued as command rows.

Commands are written in the caller's transaction, so money never moves without its consequence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, operators
from billing.errors import BillingError, NotFound
from billing.policy import BillingPolicy
from schema.models import Account, AccountMeter, Command, Meter, Operator

COMMAND_KINDS = ("trip", "close", "protect_on", "protect_off", "price", "settings")
PENDING_STATES = ("queued", "sent")
DEFAULT_TTL = timedelta(minutes=10)


def account_meters(session: Session, account_id: int) -> list[Meter]:
    return list(
        session.scalars(
            select(Meter)
            .join(AccountMeter, AccountMeter.meter_id == Meter.id)
            .where(AccountMeter.account_id == account_id, AccountMeter.detached_at.is_(None))
            .order_by(Meter.id)
        )
    )


def pending_command(session: Session, meter_id: int, kind: str) -> Command | None:
    return session.scalar(
        select(Command)
        .where(
            Command.meter_id == meter_id,
            Command.kind == kind,
            Command.state.in_(PENDING_STATES),
        )
        .order_by(Command.id.desc())
        .limit(1)
    )


def queue_command(
    session: Session,
    meter: Meter,
    kind: str,
    *,
    now: datetime,
    reason: str,
    operator: Operator | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> Command:
    if kind not in COMMAND_KINDS:
        raise BillingError(f"Unknown command {kind!r}")
    command = Command(
        meter_id=meter.id,
        kind=kind,
        state="queued",
        reason=reason,
        requested_by=operator.id if operator else None,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(command)
    audit.record(
        session, at=now, operator=operator, action=f"command.{kind}", target=meter.serial,
        reason=reason,
    )
    return command


def trip_for_arrears(
    session: Session, account: Account, *, now: datetime, ttl: timedelta = DEFAULT_TTL
) -> list[Command]:
    """At balance <= 0, trip every meter of the account that is not power-protected."""
    if account.balance > 0:
        return []
    queued = []
    for meter in account_meters(session, account.id):
        if meter.power_protect or meter.relay == "open":
            continue
        if pending_command(session, meter.id, "trip"):
            continue
        queued.append(
            queue_command(
                session, meter, "trip", now=now, ttl=ttl,
                reason=f"arrears: balance {account.balance}",
            )
        )
    return queued


def close_after_recharge(
    session: Session,
    account: Account,
    *,
    now: datetime,
    operator: Operator | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> list[Command]:
    """After a sale lifts the balance above 0, close every meter that is (or is being) tripped."""
    if account.balance <= 0:
        return []
    queued = []
    for meter in account_meters(session, account.id):
        tripping = pending_command(session, meter.id, "trip") is not None
        if meter.relay == "closed" and not tripping:
            continue
        if pending_command(session, meter.id, "close") and not tripping:
            continue
        queued.append(
            queue_command(
                session, meter, "close", now=now, operator=operator, ttl=ttl,
                reason=f"recharged: balance {account.balance}",
            )
        )
    return queued


ALARM_LEVELS = ("normal", "alarm1", "alarm2", "arrears")


def thresholds(
    session: Session, account: Account, policy: BillingPolicy
) -> tuple[Decimal, Decimal]:
    """Alarm 1 and alarm 2 amounts: the account's own, else the highest set on its meters
    (the most cautious), else the site defaults."""
    meters = account_meters(session, account.id)
    levels = []
    for own, on_meter, default in (
        (account.alarm1_amount, [m.alarm1_amount for m in meters], policy.alarm1_amount),
        (account.alarm2_amount, [m.alarm2_amount for m in meters], policy.alarm2_amount),
    ):
        set_on_meters = [amount for amount in on_meter if amount is not None]
        levels.append(own if own is not None else max(set_on_meters, default=default))
    return levels[0], levels[1]


def alarm_level(balance: Decimal, alarm1: Decimal, alarm2: Decimal) -> str:
    if balance <= 0:
        return "arrears"
    if balance <= alarm2:
        return "alarm2"
    if balance <= alarm1:
        return "alarm1"
    return "normal"


def after_balance_change(
    session: Session,
    account: Account,
    balance_before: Decimal,
    *,
    policy: BillingPolicy,
    now: datetime,
    operator: Operator | None = None,
) -> list[Command]:
    """Refresh the alarm level; trip on arrears, close when a balance leaves arrears."""
    account.alarm_level = alarm_level(account.balance, *thresholds(session, account, policy))
    if account.status != "open":
        return []
    if account.balance <= 0:
        return trip_for_arrears(session, account, now=now, ttl=policy.command_ttl)
    if balance_before <= 0:
        return close_after_recharge(
            session, account, now=now, operator=operator, ttl=policy.command_ttl
        )
    return []


def account_of_meter(session: Session, meter_id: int) -> Account | None:
    return session.scalar(
        select(Account)
        .join(AccountMeter, AccountMeter.account_id == Account.id)
        .where(AccountMeter.meter_id == meter_id, AccountMeter.detached_at.is_(None))
    )


def set_power_protect(
    session: Session,
    meter_id: int,
    protect: bool,
    *,
    operator: Operator | None,
    policy: BillingPolicy,
    now: datetime,
) -> list[Command]:
    """Power-protect (保电) on keeps supply on in arrears; off restores prepaid mode (恢复预付费).

    The platform holds the flag: on closes a meter tripped for arrears; off trips it again if
    its account is in arrears.
    """
    operators.require(operator, "control")
    meter = session.get(Meter, meter_id, with_for_update=True)
    if meter is None:
        raise NotFound(f"Meter {meter_id} does not exist")
    if meter.power_protect == protect:
        return []
    meter.power_protect = protect
    audit.record(
        session, at=now, operator=operator,
        action="meter.power_protect_on" if protect else "meter.restore_prepaid",
        target=meter.serial,
    )
    account = account_of_meter(session, meter.id)
    if account is None or account.status != "open" or account.balance > 0:
        return []
    if protect:
        if meter.relay == "closed" and pending_command(session, meter.id, "trip") is None:
            return []
        return [queue_command(session, meter, "close", now=now, operator=operator,
                              ttl=policy.command_ttl, reason="power-protect on")]
    return trip_for_arrears(session, account, now=now, ttl=policy.command_ttl)
