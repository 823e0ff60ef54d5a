"""The tenant's side of an account, for the kiosk and the phone: signing in with the account
number and a PIN, changing the PIN, what the tenant sees, and restoring a tripped meter where the
operators allow it.

Every service takes the `Tenant` that signed in and refuses any other account than its own: a
page cannot show a tenant someone else's account by passing another id. A PIN changed or reset
since the tenant signed in ends that session (the identity carries the PIN's hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, control, ledger, operators
from billing.errors import BillingError, NotFound, PermissionDenied
from billing.policy import BillingPolicy
from billing.views import BalanceInfo, balance_info
from schema.models import (
    Account,
    AccountMeter,
    ChargeDaily,
    Command,
    LedgerEntry,
    Meter,
    Operator,
    Unit,
)

PIN_LENGTH = 6
LOCK_AFTER_ATTEMPTS = operators.LOCK_AFTER_ATTEMPTS
LOCK_FOR = operators.LOCK_FOR
DAYS_SHOWN = 30
RECHARGES_SHOWN = 10
RECHARGE_KINDS = ("sale", "refund", "reversal", "transfer")
_AUDIT_TARGET_CHARS = 64  # audit_log.target is VARCHAR(64)
CENT = Decimal("0.01")


class SignedOut(BillingError):
    """The tenant's session no longer holds: the account closed or its PIN changed."""


RestoreRefusal = Literal["not_allowed", "no_credit", "on", "pending", "by_operator", "unknown"]


class RestoreRefused(BillingError):
    def __init__(self, reason: RestoreRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_REFUSALS: dict[RestoreRefusal, str] = {
    "not_allowed": "The management office has not enabled remote restore for this account",
    "no_credit": "The balance must be above 0 before power can be restored: recharge first",
    "on": "This meter is already on",
    "pending": "Power is already being restored to this meter",
    "by_operator": "This meter was switched off by the management office: ask them",
    "unknown": "This meter's state is not known yet: try again after its next reading",
}


def actor(number: str) -> str:
    """How the audit log names a tenant who acted."""
    return f"tenant:{number}"


def valid_pin(pin: str) -> bool:
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


def check_pin_rules(pin: str) -> None:
    if not valid_pin(pin):
        raise BillingError(f"A PIN is {PIN_LENGTH} digits")


def hash_pin(pin: str) -> str:
    check_pin_rules(pin)
    return operators.hash_password(pin)


@dataclass(frozen=True)
class Tenant:
    """Who signed in at the kiosk: one account, as long as its PIN stays the one used."""

    account_id: int
    number: str
    name: str
    pin_hash: str
    language: str = "zh"  # the account's: the kiosk opens in it


def _tenant(account: Account) -> Tenant:
    assert account.pin_hash is not None
    return Tenant(account.id, account.number, account.tenant_name, account.pin_hash,
                  account.language)


# --- signing in -------------------------------------------------------------------------------

SignInOutcome = Literal["ok", "wrong", "locked", "closed"]


@dataclass(frozen=True)
class SignIn:
    """What a sign-in came to; a refused one is recorded (commit it)."""

    outcome: SignInOutcome
    tenant: Tenant | None = None  # set when the outcome is "ok"
    locked_until: datetime | None = None  # set when the outcome is "locked"


def _locked_account(session: Session, number: str) -> Account | None:
    return session.scalar(
        select(Account).where(Account.number == number).with_for_update()
        .execution_options(populate_existing=True)
    )


def _check_pin(
    session: Session, account: Account, pin: str, *, now: datetime, lock_after: int,
    lock_for: timedelta, reason: str,
) -> Literal["ok", "wrong", "locked"]:
    """The PIN against the account's, counting wrong ones: `lock_after` in a row lock the
    account's PIN for `lock_for`, during which even the right PIN is refused."""
    if account.pin_locked_until is not None:
        if account.pin_locked_until > now:
            _failed(session, account.number, now=now, reason="locked")
            return "locked"
        account.pin_locked_until = None
        account.pin_failed_attempts = 0
    if operators.verify_password(account.pin_hash, pin):
        account.pin_failed_attempts = 0
        return "ok"
    account.pin_failed_attempts += 1
    _failed(session, account.number, now=now, reason=reason,
            attempt=account.pin_failed_attempts)
    if account.pin_failed_attempts >= lock_after:
        account.pin_locked_until = now + lock_for
        audit.record(session, at=now, operator=None, action="tenant.pin_lock",
                     target=account.number, until=account.pin_locked_until.isoformat(),
                     failed_attempts=account.pin_failed_attempts)
        return "locked"
    return "wrong"


def sign_in(
    session: Session,
    number: str,
    pin: str,
    *,
    now: datetime,
    lock_after: int = LOCK_AFTER_ATTEMPTS,
    lock_for: timedelta = LOCK_FOR,
) -> SignIn:
    """A tenant signs in with the account number and PIN. An unknown number, an account without
    a PIN and a wrong PIN get the same answer; a closed account is told so only after the right
    PIN."""
    number = number.strip()
    account = _locked_account(session, number) if number else None
    if account is None or account.pin_hash is None:
        _failed(session, number, now=now,
                reason="unknown account" if account is None else "no PIN set")
        return SignIn("wrong")
    checked = _check_pin(session, account, pin, now=now, lock_after=lock_after,
                         lock_for=lock_for, reason="wrong PIN")
    if checked == "locked":
        return SignIn("locked", locked_until=account.pin_locked_until)
    if checked == "wrong":
        return SignIn("wrong")
    if account.status != "open":
        _failed(session, number, now=now, reason="account closed")
        return SignIn("closed")
    audit.record_by(session, at=now, actor=actor(number), action="tenant.sign_in",
                    target=number)
    return SignIn("ok", tenant=_tenant(account))


def _failed(session: Session, number: str, *, now: datetime, **detail: object) -> None:
    audit.record(session, at=now, operator=None, action="tenant.sign_in_failed",
                 target=number[:_AUDIT_TARGET_CHARS], **detail)


def record_sign_out(session: Session, tenant: Tenant, *, now: datetime, reason: str) -> None:
    audit.record_by(session, at=now, actor=actor(tenant.number),
                    action="tenant.sign_out", target=tenant.number, reason=reason)


def own_account(session: Session, tenant: Tenant | None, account_id: int) -> Account:
    """The account, if it is the signed-in tenant's own and the session still holds."""
    if tenant is None or tenant.account_id != account_id:
        raise PermissionDenied("You can only see and act on your own account")
    account = session.get(Account, account_id)
    if account is None or account.status != "open" or account.pin_hash != tenant.pin_hash:
        raise SignedOut("Your session has ended: sign in again")
    return account


def still_signed_in(session: Session, tenant: Tenant) -> bool:
    """Whether the session holds: the account is open and its PIN the one signed in with."""
    try:
        own_account(session, tenant, tenant.account_id)
    except SignedOut:
        return False
    return True


# --- the PIN ----------------------------------------------------------------------------------

PinChangeOutcome = Literal["ok", "wrong", "locked"]


@dataclass(frozen=True)
class PinChange:
    outcome: PinChangeOutcome
    tenant: Tenant | None = None  # with the new PIN, when the outcome is "ok"
    locked_until: datetime | None = None


def change_pin(
    session: Session,
    *,
    tenant: Tenant | None,
    current_pin: str,
    new_pin: str,
    now: datetime,
    lock_after: int = LOCK_AFTER_ATTEMPTS,
    lock_for: timedelta = LOCK_FOR,
) -> PinChange:
    """The tenant changes the PIN, proving it with the current one. A wrong current PIN counts
    toward the lock like a wrong sign-in (commit it), so the form cannot be used to guess."""
    if tenant is None:
        raise PermissionDenied("Sign in first")
    check_pin_rules(new_pin)
    if new_pin == current_pin:
        raise BillingError("The new PIN must differ from the current one")
    own_account(session, tenant, tenant.account_id)
    account = _locked_account(session, tenant.number)
    assert account is not None
    checked = _check_pin(session, account, current_pin, now=now, lock_after=lock_after,
                         lock_for=lock_for, reason="wrong current PIN")
    if checked == "locked":
        return PinChange("locked", locked_until=account.pin_locked_until)
    if checked == "wrong":
        return PinChange("wrong")
    account.pin_hash = hash_pin(new_pin)
    audit.record_by(session, at=now, actor=actor(tenant.number),
                    action="tenant.change_pin", target=tenant.number)
    return PinChange("ok", tenant=_tenant(account))


def set_pin(
    session: Session, *, operator: Operator | None, account_id: int, pin: str, now: datetime
) -> Account:
    """An operator sets the PIN (the tenant forgot it, or the account had none) and lifts a
    lock; sessions signed in with the old PIN end."""
    operators.require(operator, "accounts")
    account = ledger.lock_account(session, account_id)
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed")
    account.pin_hash = hash_pin(pin)
    account.pin_failed_attempts = 0
    account.pin_locked_until = None
    audit.record(session, at=now, operator=operator, action="account.set_pin",
                 target=account.number)
    return account


def set_tenant_control(
    session: Session, *, operator: Operator | None, account_id: int, allowed: bool,
    now: datetime,
) -> Account:
    """Let the tenant restore a tripped meter from the kiosk (or stop letting them): a remote
    control decision, so it takes the control permission."""
    operators.require(operator, "control")
    account = ledger.lock_account(session, account_id)
    if account.tenant_control != allowed:
        account.tenant_control = allowed
        audit.record(session, at=now, operator=operator,
                     action="account.tenant_control_on" if allowed
                     else "account.tenant_control_off",
                     target=account.number)
    return account


@dataclass(frozen=True)
class PinStatus:
    has_pin: bool
    locked_until: datetime | None  # only while the lock lasts
    failed_attempts: int
    tenant_control: bool


def pin_status(session: Session, account_id: int, *, now: datetime) -> PinStatus:
    """For the operators' accounts screen."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} does not exist")
    locked = account.pin_locked_until
    return PinStatus(
        has_pin=account.pin_hash is not None,
        locked_until=locked if locked is not None and locked > now else None,
        failed_attempts=account.pin_failed_attempts,
        tenant_control=account.tenant_control,
    )


# --- what the tenant sees ---------------------------------------------------------------------


@dataclass(frozen=True)
class TenantMeter:
    id: int
    serial: str
    unit: str | None
    relay: str  # "closed" | "open" | "unknown"
    last_reading_at: datetime | None
    lost_since: datetime | None
    restoring: bool  # a close command is on its way
    refusal: RestoreRefusal | None  # why the tenant may not restore it; None: they may


@dataclass(frozen=True)
class Usage:
    energy_kwh: Decimal  # 2 places
    cost: Decimal  # 2 places


@dataclass(frozen=True)
class DayUsage:
    on_date: date  # site-local
    energy_kwh: Decimal
    cost: Decimal


@dataclass(frozen=True)
class Recharge:
    at: datetime
    kind: str  # sale, refund, reversal, transfer
    amount: Decimal  # into the account is positive
    balance_after: Decimal
    payment_method: str | None
    receipt_no: str | None


@dataclass(frozen=True)
class TenantView:
    account_id: int
    number: str
    tenant: str
    units: tuple[str, ...]
    balance: BalanceInfo
    tenant_control: bool
    meters: tuple[TenantMeter, ...]
    today: Usage
    month: Usage
    days: tuple[DayUsage, ...]  # the last DAYS_SHOWN local days, oldest first, today last
    recharges: tuple[Recharge, ...]  # newest first


def _refusal(account: Account, meter: Meter, pending: set[str],
             last_trip: Command | None) -> RestoreRefusal | None:
    if not account.tenant_control:
        return "not_allowed"
    if "close" in pending:
        return "pending"
    if meter.relay == "closed" and "trip" not in pending:
        return "on"
    if meter.relay == "unknown":
        return "unknown"
    if account.balance <= 0:
        return "no_credit"
    # A meter an operator switched off (maintenance, safety) stays off until they decide.
    if last_trip is not None and last_trip.requested_by is not None:
        return "by_operator"
    return None


def _last_trip(session: Session, meter_id: int) -> Command | None:
    return session.scalar(
        select(Command).where(Command.meter_id == meter_id, Command.kind == "trip")
        .order_by(Command.id.desc()).limit(1)
    )


def _meters(session: Session, account: Account) -> list[TenantMeter]:
    meters = control.account_meters(session, account.id)
    pending = control.pending_kinds(session, [m.id for m in meters])
    units = dict(session.execute(
        select(Unit.id, Unit.number).where(Unit.id.in_([m.unit_id for m in meters if m.unit_id]))
    ).all())
    rows = []
    for meter in meters:
        kinds = {kind for meter_id, kind in pending if meter_id == meter.id}
        rows.append(TenantMeter(
            id=meter.id, serial=meter.serial,
            unit=units.get(meter.unit_id) if meter.unit_id else None,
            relay=meter.relay, last_reading_at=meter.last_reading_at,
            lost_since=meter.lost_since, restoring="close" in kinds,
            refusal=_refusal(account, meter, kinds, _last_trip(session, meter.id)),
        ))
    return rows


def _daily(
    session: Session, account_id: int, first: date, last: date, tz: ZoneInfo
) -> dict[date, tuple[Decimal, Decimal]]:
    """Energy and unrounded cost per local day from charge_daily, counting each meter only on
    the days it belonged to this account (a day it changed hands counts for both tenants)."""
    held = session.execute(
        select(AccountMeter.meter_id, AccountMeter.attached_at, AccountMeter.detached_at)
        .where(AccountMeter.account_id == account_id)
    ).all()
    totals: dict[date, tuple[Decimal, Decimal]] = {}
    for meter_id, attached_at, detached_at in held:
        start = max(first, attached_at.astimezone(tz).date())
        end = min(last, detached_at.astimezone(tz).date()) if detached_at else last
        if start > end:
            continue
        rows = session.execute(
            select(ChargeDaily.on_date, ChargeDaily.energy_kwh, ChargeDaily.cost).where(
                ChargeDaily.meter_id == meter_id,
                ChargeDaily.on_date >= start,
                ChargeDaily.on_date <= end,
            )
        ).all()
        for on_date, energy, cost in rows:
            energy_before, cost_before = totals.get(on_date, (Decimal(0), Decimal(0)))
            totals[on_date] = (energy_before + energy, cost_before + cost)
    return totals


def _usage(energy: Decimal, cost: Decimal) -> Usage:
    return Usage(energy.quantize(CENT), cost.quantize(CENT))


def _day(on_date: date, energy: Decimal, cost: Decimal) -> DayUsage:
    return DayUsage(on_date, energy.quantize(CENT), cost.quantize(CENT))


def account_view(
    session: Session, *, tenant: Tenant | None, account_id: int, now: datetime, tz: ZoneInfo
) -> TenantView:
    """Everything the tenant's home page shows, for their own account only."""
    account = own_account(session, tenant, account_id)
    today = now.astimezone(tz).date()
    first_shown = today - timedelta(days=DAYS_SHOWN - 1)
    month_start = today.replace(day=1)
    daily = _daily(session, account.id, min(first_shown, month_start), today, tz)
    zero = (Decimal(0), Decimal(0))
    month = [v for on_date, v in daily.items() if on_date >= month_start]
    month_energy = sum((energy for energy, _ in month), Decimal(0))
    month_cost = sum((cost for _, cost in month), Decimal(0))
    shown = [first_shown + timedelta(days=i) for i in range(DAYS_SHOWN)]
    meters = _meters(session, account)
    recharges = session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account.id, LedgerEntry.kind.in_(RECHARGE_KINDS))
        .order_by(LedgerEntry.id.desc())
        .limit(RECHARGES_SHOWN)
    )
    return TenantView(
        account_id=account.id,
        number=account.number,
        tenant=account.tenant_name,
        units=tuple(sorted({m.unit for m in meters if m.unit})),
        balance=balance_info(session, account.id, now=now, tz=tz),
        tenant_control=account.tenant_control,
        meters=tuple(meters),
        today=_usage(*daily.get(today, zero)),
        month=_usage(month_energy, month_cost),
        days=tuple(_day(day, *daily.get(day, zero)) for day in shown),
        recharges=tuple(
            Recharge(e.effective_at, e.kind, e.amount.quantize(CENT),
                     e.balance_after.quantize(CENT), e.payment_method, e.receipt_no)
            for e in recharges
        ),
    )


# --- restoring power --------------------------------------------------------------------------


def restore_power(
    session: Session,
    *,
    tenant: Tenant | None,
    account_id: int,
    meter_id: int,
    now: datetime,
    policy: BillingPolicy,
) -> Command:
    """The tenant closes a tripped meter of their own, where the operators allow it and the
    balance is above 0: a close command, audited in the tenant's name."""
    own_account(session, tenant, account_id)
    assert tenant is not None
    account = ledger.lock_account(session, account_id)  # the balance as it stands now
    meter = next((m for m in control.account_meters(session, account.id) if m.id == meter_id),
                 None)
    if meter is None:
        raise PermissionDenied("This meter is not on your account")
    kinds = {kind for _, kind in control.pending_kinds(session, [meter.id])}
    refusal = _refusal(account, meter, kinds, _last_trip(session, meter.id))
    if refusal is not None:
        raise RestoreRefused(refusal, _REFUSALS[refusal])
    command = control.queue_command(
        session, meter, "close", now=now, ttl=policy.command_ttl,
        reason=f"restored by tenant {tenant.number}",
    )
    audit.record_by(session, at=now, actor=actor(tenant.number),
                    action="tenant.restore_power", target=meter.serial, account=tenant.number,
                    balance=account.balance)
    return command
