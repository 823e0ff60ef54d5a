"""Accounts (开户 / 销户): a tenant's account holding one or more meters.

Opening may include a first sale; meters are added and removed later; a replaced meter hands its
account's value to the new one (老表金额转入); closing bills the final readings, refunds what is
left (or records the debt), releases and trips every meter, and writes a closing record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, control, ledger, operators, sales, tenants
from billing.charging import FinalReading, charge_readings
from billing.errors import BillingError, NotFound
from billing.policy import BillingPolicy
from schema.models import (
    Account,
    AccountClosing,
    AccountMeter,
    AuditEntry,
    Command,
    LedgerEntry,
    Meter,
    MeterReplacement,
    Operator,
)

TENANT_LANGUAGES = ("zh", "en")  # what tenants are told in (messages, the kiosk)


@dataclass(frozen=True)
class FirstSale:
    amount: object
    payment_method: str
    idempotency_key: str


def open_account(
    session: Session,
    *,
    number: str,
    tenant_name: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    phone: str = "",
    id_number: str = "",
    notes: str = "",
    meter_ids: Sequence[int] = (),
    first_sale: FirstSale | None = None,
    form_key: str = "",
    pin: str = "",
    language: str = "zh",
) -> Account:
    """开户. `form_key` (the key of the form that asked) is kept in the audit row, so that
    open_account_once can tell the same form posted again. `pin`, when given, lets the tenant
    sign in at the kiosk. `language` is the tenant's: messages and the kiosk use it."""
    operators.require(operator, "accounts")
    if language not in TENANT_LANGUAGES:
        raise BillingError(f"The tenant's language must be one of {', '.join(TENANT_LANGUAGES)}")
    number, tenant_name = number.strip(), tenant_name.strip()
    if not number:
        raise BillingError("Account number is required")
    if not tenant_name:
        raise BillingError("Tenant name is required")
    pin_hash = tenants.hash_pin(pin) if pin else None
    if session.scalar(select(Account.id).where(Account.number == number)) is not None:
        raise BillingError(f"Account number {number} is already in use")
    account = Account(
        number=number, tenant_name=tenant_name, phone=phone.strip(), id_number=id_number.strip(),
        notes=notes.strip(), opened_at=now, balance=Decimal(0), pin_hash=pin_hash,
        language=language,
    )
    session.add(account)
    session.flush()
    audit.record(session, at=now, operator=operator, action="account.open", target=number,
                 tenant=tenant_name, pin="set" if pin else "none",
                 **({"form": form_key} if form_key else {}))
    for meter_id in meter_ids:
        attach_meter(session, account, meter_id, operator=operator, now=now)
    account.alarm_level = control.alarm_level(
        account.balance, *control.thresholds(session, account, policy)
    )
    if first_sale is not None:
        sales.sell(
            session, account_id=account.id, amount=first_sale.amount,
            payment_method=first_sale.payment_method, idempotency_key=first_sale.idempotency_key,
            operator=operator, now=now, policy=policy,
        )
    return account


@dataclass(frozen=True)
class OpeningResult:
    account: Account
    first_sale: LedgerEntry | None
    repeated: bool  # this form opened the account before: nothing new was done


def _opened_by_form(session: Session, account: Account, form_key: str) -> bool:
    details = session.scalars(
        select(AuditEntry.detail).where(
            AuditEntry.action == "account.open",
            AuditEntry.target == account.number,
            AuditEntry.at == account.opened_at,
        )
    ).all()
    return any(detail.get("form") == form_key for detail in details)


def open_account_once(
    session: Session,
    *,
    form_key: str,
    number: str,
    tenant_name: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    phone: str = "",
    id_number: str = "",
    notes: str = "",
    meter_ids: Sequence[int] = (),
    first_sale_amount: object | None = None,
    payment_method: str = "cash",
    pin: str = "",
    language: str = "zh",
) -> OpeningResult:
    """开户 from a form drawn with `form_key`, with an optional first sale: posting the same
    form again (a double click, a resent request) returns what the first post did."""
    operators.require(operator, "accounts")
    if not form_key:
        raise ValueError("form_key is required")
    first_key = f"sale:{form_key}"

    def earlier() -> OpeningResult | None:
        account = session.scalar(select(Account).where(Account.number == number.strip()))
        if account is None or not _opened_by_form(session, account, form_key):
            return None
        return OpeningResult(account, ledger.find_by_key(session, first_key), repeated=True)

    if (repeated := earlier()) is not None:
        return repeated
    first_sale = None
    if first_sale_amount is not None:
        first_sale = FirstSale(first_sale_amount, payment_method, form_key)
    try:
        # Two posts of one form at once: the second waits on the account number's unique key,
        # then finds the first one's account.
        with session.begin_nested():
            account = open_account(
                session, number=number, tenant_name=tenant_name, operator=operator, now=now,
                policy=policy, phone=phone, id_number=id_number, notes=notes,
                meter_ids=meter_ids, first_sale=first_sale, form_key=form_key, pin=pin,
                language=language,
            )
    except IntegrityError:
        if (repeated := earlier()) is not None:
            return repeated
        raise BillingError(
            "Another operator took this account number or one of these meters just now; "
            "reload the page and try again"
        ) from None
    return OpeningResult(account, ledger.find_by_key(session, first_key), repeated=False)


def _holder(session: Session, meter_id: int) -> str | None:
    return session.scalar(
        select(Account.number)
        .join(AccountMeter, AccountMeter.account_id == Account.id)
        .where(AccountMeter.meter_id == meter_id, AccountMeter.detached_at.is_(None))
    )


def attach_meter(
    session: Session, account: Account, meter_id: int, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, "accounts")
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed")
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFound(f"Meter {meter_id} does not exist")
    holder = _holder(session, meter_id)
    if holder is not None:
        raise BillingError(f"Meter {meter.serial} already belongs to account {holder}")
    session.add(AccountMeter(account_id=account.id, meter_id=meter_id, attached_at=now))
    session.flush()
    audit.record(session, at=now, operator=operator, action="account.attach_meter",
                 target=account.number, meter=meter.serial)


def detach_meter(
    session: Session, account: Account, meter_id: int, *, operator: Operator | None, now: datetime
) -> Meter:
    operators.require(operator, "accounts")
    link = session.scalar(
        select(AccountMeter).where(
            AccountMeter.account_id == account.id,
            AccountMeter.meter_id == meter_id,
            AccountMeter.detached_at.is_(None),
        )
    )
    if link is None:
        raise BillingError(f"Meter {meter_id} is not on account {account.number}")
    link.detached_at = now
    meter = session.get_one(Meter, meter_id)
    audit.record(session, at=now, operator=operator, action="account.detach_meter",
                 target=account.number, meter=meter.serial)
    session.flush()
    return meter


def add_meter(
    session: Session,
    *,
    account_id: int,
    meter_id: int,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
) -> list[Command]:
    """Attach one more meter to an open account. Its alarm amounts may move the account's
    alarm level; an account in arrears gets the new meter tripped like the others."""
    operators.require(operator, "accounts")
    account = ledger.lock_account(session, account_id)
    attach_meter(session, account, meter_id, operator=operator, now=now)
    return control.after_balance_change(
        session, account, account.balance, policy=policy, now=now, operator=operator
    )


def remove_meter(
    session: Session,
    *,
    account_id: int,
    meter_id: int,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    trip: bool = True,
) -> list[Command]:
    """Take a meter off an account. Nobody pays for what it meters from now on, so by default
    it is tripped (as closing an account trips its meters)."""
    operators.require(operator, "accounts")
    account = ledger.lock_account(session, account_id)
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed")
    meter = detach_meter(session, account, meter_id, operator=operator, now=now)
    account.alarm_level = control.alarm_level(
        account.balance, *control.thresholds(session, account, policy)
    )
    off = meter.relay == "open" and control.pending_command(session, meter.id, "close") is None
    if not trip or off:
        return []
    return [
        control.queue_command(session, meter, "trip", now=now, operator=operator,
                              ttl=policy.command_ttl,
                              reason=f"removed from account {account.number}")
    ]


def parse_reading(value: str, meter: str) -> Decimal | None:
    """A meter reading typed in by an operator, in kWh; None when left blank."""
    text = value.strip().replace(",", "")
    if not text:
        return None
    try:
        energy = Decimal(text)
    except InvalidOperation:
        energy = Decimal("NaN")
    if not energy.is_finite() or energy < 0:
        raise BillingError(
            f"The reading of meter {meter} must be a number of kWh, for example 1234.56"
        )
    if energy != energy.quantize(Decimal("0.0001")):
        raise BillingError(f"The reading of meter {meter} can have at most 4 decimal places")
    return energy


def _bill_final(
    session: Session,
    final_readings: Mapping[int, Decimal],
    *,
    now: datetime,
    policy: BillingPolicy,
) -> None:
    if final_readings:
        charge_readings(
            session,
            [FinalReading(meter_id, now, energy) for meter_id, energy in final_readings.items()],
            policy=policy,
            now=now,
        )


def replace_meter(
    session: Session,
    *,
    account_id: int,
    old_meter_id: int,
    new_meter_id: int,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    old_final_energy_kwh: Decimal | None = None,
) -> MeterReplacement:
    """老表金额转入: bill the old meter's final reading, move the account's value to the new one.

    The balance belongs to the account, so it carries over whole; the replacement record says
    how much went with it, from which meter to which.
    """
    operators.require(operator, "accounts")
    account = ledger.lock_account(session, account_id)
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed")
    if old_meter_id == new_meter_id:
        raise BillingError("The new meter must be a different meter")
    if old_final_energy_kwh is not None:
        _bill_final(session, {old_meter_id: old_final_energy_kwh}, now=now, policy=policy)
    old = detach_meter(session, account, old_meter_id, operator=operator, now=now)
    attach_meter(session, account, new_meter_id, operator=operator, now=now)
    new = session.get_one(Meter, new_meter_id)
    record = MeterReplacement(
        account_id=account.id, old_meter_id=old_meter_id, new_meter_id=new_meter_id,
        old_final_energy_kwh=old_final_energy_kwh, value_transferred=account.balance, at=now,
        operator_id=operator.id if operator else None,
    )
    session.add(record)
    audit.record(session, at=now, operator=operator, action="account.replace_meter",
                 target=account.number, old_meter=old.serial, new_meter=new.serial,
                 value=account.balance)
    session.flush()
    return record


@dataclass(frozen=True)
class ClosingResult:
    closing: AccountClosing
    refund: sales.PostResult | None
    commands: list[Command]


def close_account(
    session: Session,
    *,
    account_id: int,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    idempotency_key: str,
    final_readings: Mapping[int, Decimal] | None = None,
    refund_method: str = "cash",
    note: str = "",
) -> ClosingResult:
    """销户: bill final readings, refund the rest (or record the debt), release and trip every
    meter, and write the closing record. The account and its history stay."""
    operators.require(operator, "accounts")
    account = ledger.lock_account(session, account_id)
    if account.status != "open":
        raise BillingError(f"Account {account.number} is already closed")
    _bill_final(session, final_readings or {}, now=now, policy=policy)
    session.flush()
    final_balance = account.balance
    refund = None
    refundable = final_balance.quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    if refundable > 0:
        refund = sales.refund(
            session, account_id=account.id, amount=refundable, reason="account closed",
            idempotency_key=f"closing:{idempotency_key}", operator=operator, now=now,
            policy=policy, payment_method=refund_method,
        )
    meters = control.account_meters(session, account.id)
    commands = []
    for meter in meters:
        detach_meter(session, account, meter.id, operator=operator, now=now)
        if meter.relay != "open" or control.pending_command(session, meter.id, "close"):
            commands.append(
                control.queue_command(session, meter, "trip", now=now, operator=operator,
                                      ttl=policy.command_ttl, reason="account closed")
            )
    account.status = "closed"
    account.closed_at = now
    closing = AccountClosing(
        account_id=account.id, closed_at=now, operator_id=operator.id if operator else None,
        final_balance=final_balance, refunded=refundable if refund else Decimal(0),
        debt=-final_balance if final_balance < 0 else Decimal(0),
        meters=[meter.serial for meter in meters],
        receipt_no=refund.entry.receipt_no if refund else None, note=note.strip(),
    )
    session.add(closing)
    audit.record(session, at=now, operator=operator, action="account.close",
                 target=account.number, final_balance=final_balance,
                 refunded=closing.refunded, debt=closing.debt)
    session.flush()
    return ClosingResult(closing, refund, commands)
