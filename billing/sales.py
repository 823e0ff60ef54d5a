"""Sales (售电): money in, idempotent by a key drawn with the form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from billing import audit, control, ledger, operators
from billing.errors import BillingError
from billing.money import parse_amount
from schema.models import Command, LedgerEntry, Operator

PAYMENT_METHODS = ("cash", "card", "transfer", "online")


@dataclass(frozen=True)
class SaleResult:
    entry: LedgerEntry
    balance: Decimal
    commands: list[Command]
    repeated: bool  # the same idempotency key was posted before: nothing new was done


def sell(
    session: Session,
    *,
    account_id: int,
    amount: object,
    payment_method: str,
    idempotency_key: str,
    operator: Operator | None,
    now: datetime,
    max_amount: Decimal,
    command_ttl: timedelta = control.DEFAULT_TTL,
) -> SaleResult:
    """Credit an open account. Posting the same key again returns the first sale unchanged."""
    operators.require(operator, "sell")
    key = f"sale:{idempotency_key}"
    account = ledger.lock_account(session, account_id)
    previous = ledger.find_by_key(session, key)
    if previous is not None:
        return SaleResult(previous, account.balance, [], repeated=True)
    value = parse_amount(amount, "Sale amount")
    if value <= 0:
        raise BillingError("Sale amount must be greater than 0")
    if value > max_amount:
        raise BillingError(f"Sale amount {value} is above the per-sale maximum of {max_amount}")
    if payment_method not in PAYMENT_METHODS:
        raise BillingError(f"Payment method must be one of {', '.join(PAYMENT_METHODS)}")
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed; a sale needs an open account")
    balance_before = account.balance
    entry = ledger.post(
        session,
        account,
        kind="sale",
        amount=value,
        idempotency_key=key,
        effective_at=now,
        recorded_at=now,
        payment_method=payment_method,
        operator_id=operator.id if operator else None,
    )
    audit.record(
        session, at=now, operator=operator, action="sale", target=account.number,
        amount=value, payment_method=payment_method, balance_after=account.balance,
    )
    commands = []
    if balance_before <= 0 < account.balance:
        commands = control.close_after_recharge(
            session, account, now=now, operator=operator, ttl=command_ttl
        )
    return SaleResult(entry, account.balance, commands, repeated=False)
