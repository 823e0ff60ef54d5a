"""Accounts (开户): a tenant's account holding one or more meters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit
from billing.errors import BillingError, NotFound
from schema.models import Account, AccountMeter, Meter, Operator


def open_account(
    session: Session,
    *,
    number: str,
    tenant_name: str,
    phone: str = "",
    meter_ids: Sequence[int] = (),
    operator: Operator | None,
    now: datetime,
) -> Account:
    number, tenant_name = number.strip(), tenant_name.strip()
    if not number:
        raise BillingError("Account number is required")
    if not tenant_name:
        raise BillingError("Tenant name is required")
    if session.scalar(select(Account.id).where(Account.number == number)) is not None:
        raise BillingError(f"Account number {number} is already in use")
    account = Account(number=number, tenant_name=tenant_name, phone=phone.strip(), opened_at=now)
    session.add(account)
    session.flush()
    audit.record(session, at=now, operator=operator, action="account.open", target=number)
    for meter_id in meter_ids:
        attach_meter(session, account, meter_id, operator=operator, now=now)
    return account


def attach_meter(
    session: Session, account: Account, meter_id: int, *, operator: Operator | None, now: datetime
) -> None:
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed")
    meter = session.get(Meter, meter_id)
    if meter is None:
        raise NotFound(f"Meter {meter_id} does not exist")
    holder = session.scalar(
        select(Account.number)
        .join(AccountMeter, AccountMeter.account_id == Account.id)
        .where(AccountMeter.meter_id == meter_id, AccountMeter.detached_at.is_(None))
    )
    if holder is not None:
        raise BillingError(f"Meter {meter.serial} already belongs to account {holder}")
    session.add(AccountMeter(account_id=account.id, meter_id=meter_id, attached_at=now))
    # Charging starts from the next reading: energy used before the account held it is not billed.
    meter.charge_base_energy_kwh = None
    audit.record(
        session, at=now, operator=operator, action="account.attach_meter", target=account.number,
        meter=meter.serial,
    )
