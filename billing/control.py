"""Remote control decisions: which meters to trip or close, queued as command rows.

Commands are written in the caller's transaction, so money never moves without its consequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import alarms, audit, notices, operators
from billing.errors import BillingError, NotFound
from billing.policy import BillingPolicy
from schema import bulk
from schema.models import Account, AccountMeter, Command, Meter, Operator

COMMAND_KINDS = ("trip", "close", "protect_on", "protect_off", "price", "settings")
PENDING_STATES = ("queued", "sent")
DEFAULT_TTL = timedelta(minutes=10)


def account_meters(session: Session, account_id: int) -> list[Meter]:
    return meters_of_accounts(session, [account_id]).get(account_id, [])


def meters_of_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, list[Meter]]:
    """The meters attached to each account now, in meter id order: one query for a batch."""
    ids = sorted(set(account_ids))
    found: dict[int, list[Meter]] = {}
    if not ids:
        return found
    rows = session.execute(
        select(AccountMeter.account_id, Meter)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .where(
            bulk.among(session, AccountMeter.account_id, ids),
            AccountMeter.detached_at.is_(None),
        )
        .order_by(Meter.id)
    ).all()
    for account_id, meter in rows:
        found.setdefault(account_id, []).append(meter)
    return found


AlarmAmounts = tuple[Decimal | None, Decimal | None]  # a meter's own alarm 1 and 2 amounts


def alarm_amounts_of_accounts(
    session: Session, account_ids: Iterable[int]
) -> dict[int, list[AlarmAmounts]]:
    """The alarm amounts set on each account's attached meters: what thresholds() needs of them,
    read for a whole batch as plain values (no Meter objects)."""
    ids = sorted(set(account_ids))
    found: dict[int, list[AlarmAmounts]] = {}
    if not ids:
        return found
    rows = session.execute(
        select(AccountMeter.account_id, Meter.alarm1_amount, Meter.alarm2_amount)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .where(
            bulk.among(session, AccountMeter.account_id, ids),
            AccountMeter.detached_at.is_(None),
        )
    ).all()
    for account_id, alarm1, alarm2 in rows:
        found.setdefault(account_id, []).append((alarm1, alarm2))
    return found


def pending_kinds(session: Session, meter_ids: Iterable[int]) -> set[tuple[int, str]]:
    """(meter id, kind) of every queued or sent trip and close command of these meters."""
    ids = sorted(set(meter_ids))
    if not ids:
        return set()
    rows = session.execute(
        select(Command.meter_id, Command.kind).where(
            bulk.among(session, Command.meter_id, ids),
            Command.kind.in_(("trip", "close")),
            Command.state.in_(PENDING_STATES),
        )
    ).all()
    return {(meter_id, kind) for meter_id, kind in rows}


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
    session: Session,
    account: Account,
    *,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    meters: list[Meter] | None = None,
    pending: set[tuple[int, str]] | None = None,
) -> list[Command]:
    """At balance <= 0, trip every meter of the account that is not power-protected.

    `meters` (the account's meters) and `pending` (pending_kinds of them) may come preloaded
    for a batch of accounts; otherwise they are read here.
    """
    if account.balance > 0:
        return []
    meters = account_meters(session, account.id) if meters is None else meters
    pending = pending_kinds(session, [m.id for m in meters]) if pending is None else pending
    queued = []
    for meter in meters:
        if meter.power_protect or meter.relay == "open":
            continue
        if (meter.id, "trip") in pending:
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
    meters: list[Meter] | None = None,
    pending: set[tuple[int, str]] | None = None,
) -> list[Command]:
    """After a sale lifts the balance above 0, close every meter that is (or is being) tripped."""
    if account.balance <= 0:
        return []
    meters = account_meters(session, account.id) if meters is None else meters
    pending = pending_kinds(session, [m.id for m in meters]) if pending is None else pending
    queued = []
    for meter in meters:
        tripping = (meter.id, "trip") in pending
        if meter.relay == "closed" and not tripping:
            continue
        if (meter.id, "close") in pending and not tripping:
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
    session: Session, account: Account, policy: BillingPolicy, meters: list[Meter] | None = None
) -> tuple[Decimal, Decimal]:
    """Alarm 1 and alarm 2 amounts: the account's own, else the highest set on its meters
    (the most cautious), else the site defaults."""
    meters = account_meters(session, account.id) if meters is None else meters
    return _thresholds(account, policy, [(m.alarm1_amount, m.alarm2_amount) for m in meters])


def _thresholds(
    account: Account, policy: BillingPolicy, amounts: Iterable[AlarmAmounts]
) -> tuple[Decimal, Decimal]:
    amounts = list(amounts)
    levels = []
    for own, on_meter, default in (
        (account.alarm1_amount, [a1 for a1, _ in amounts], policy.alarm1_amount),
        (account.alarm2_amount, [a2 for _, a2 in amounts], policy.alarm2_amount),
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
    return after_balance_changes(
        session, [(account, balance_before)], policy=policy, now=now, operator=operator
    )


def after_balance_changes(
    session: Session,
    changes: Iterable[tuple[Account, Decimal]],
    *,
    policy: BillingPolicy,
    now: datetime,
    operator: Operator | None = None,
    alarm_amounts: Mapping[int, list[AlarmAmounts]] | None = None,
) -> list[Command]:
    """after_balance_change for a batch of (account, balance before), in a few queries whatever
    its size: the alarm amounts of the accounts' meters (or `alarm_amounts`, preloaded with
    alarm_amounts_of_accounts), and only when some account is in or leaving arrears, the meters
    of those accounts and their pending commands."""
    changes = list(changes)
    if alarm_amounts is None:
        alarm_amounts = alarm_amounts_of_accounts(session, [account.id for account, _ in changes])
    levels_before = [(account, account.alarm_level) for account, _ in changes]
    for account, _ in changes:
        level = alarm_level(
            account.balance, *_thresholds(account, policy, alarm_amounts.get(account.id, []))
        )
        if account.alarm_level != level:  # an unchanged object costs the next flush nothing
            account.alarm_level = level
    alarms.balance_levels(session, levels_before, at=now)
    acting = [
        account
        for account, before in changes
        if account.status == "open" and (account.balance <= 0 or before <= 0)
    ]
    commands: list[Command] = []
    tripped: set[int] = set()
    if acting:
        meters = meters_of_accounts(session, [account.id for account in acting])
        pending = pending_kinds(session, [m.id for held in meters.values() for m in held])
        for account in acting:
            own = meters.get(account.id, [])
            if account.balance <= 0:
                trips = trip_for_arrears(
                    session, account, now=now, ttl=policy.command_ttl, meters=own,
                    pending=pending,
                )
                commands += trips
                if trips:
                    tripped.add(account.id)
            else:
                commands += close_after_recharge(
                    session, account, now=now, operator=operator, ttl=policy.command_ttl,
                    meters=own, pending=pending,
                )
    notices.balance_levels(
        session,
        [(account, before) for account, before in levels_before if account.alarm_level != before],
        tripped=tripped,
        policy=policy,
        now=now,
    )
    return commands


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
