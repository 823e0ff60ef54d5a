"""Remote control decisions: which meters to trip or close, queued as command rows.

Commands are written in the caller's transaction, so money never moves without its consequence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.errors import BillingError
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
