"""Sales (售电), refunds (退电) and reversals (冲正): money in and out over the counter.

Each operation is idempotent by a key drawn with the form: posting the same key again returns
the first result and changes nothing. Each takes a gap-free receipt number of the local day,
writes an audit row, and refreshes the account's alarm level and supply in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from billing import audit, control, ledger, notices, operators
from billing.errors import BillingError, NotFound
from billing.money import parse_amount
from billing.policy import BillingPolicy
from schema.models import Account, Command, LedgerEntry, Operator

PAYMENT_METHODS = ("cash", "card", "transfer", "online")
REFUND_METHODS = ("cash", "card", "transfer", "online")


@dataclass(frozen=True)
class PostResult:
    entry: LedgerEntry
    balance: Decimal
    commands: list[Command]
    repeated: bool  # the same idempotency key was posted before: nothing new was done


def _post_money(
    session: Session,
    account: Account,
    *,
    kind: str,
    amount: Decimal,
    key: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    audit_detail: dict[str, object],
    **fields: object,
) -> PostResult:
    session.flush()  # the caller's pending changes, so the reads below see them
    balance_before = account.balance
    try:
        # The account lock serialises posts to this account, but not a post of the same key to
        # another account: that one can commit between our _repeat check and our insert. The
        # savepoint lets the unique constraint decide and keeps the caller's transaction usable.
        with session.begin_nested():
            with session.no_autoflush:
                entry = ledger.post(
                    session,
                    account,
                    kind=kind,
                    amount=amount,
                    idempotency_key=key,
                    effective_at=now,
                    recorded_at=now,
                    receipt_no=None,
                    operator_id=operator.id if operator else None,
                    **fields,
                )
                session.expunge(entry)  # held back until it has its receipt number
                commands = control.after_balance_change(
                    session, account, balance_before, policy=policy, now=now, operator=operator
                )
            session.flush()
            # The day's receipt counter stays locked from here to the commit, and every sale
            # and refund of the site queues for it: only the entry and its audit row come after.
            entry.receipt_no = ledger.next_receipt_no(session, now, policy.tz)
            session.add(entry)
            audit.record(
                session, at=now, operator=operator, action=kind, target=account.number,
                amount=amount, balance_after=account.balance, receipt_no=entry.receipt_no,
                **audit_detail,
            )
            session.flush()
    except IntegrityError:
        if (repeated := _repeat(session, key, account)) is not None:
            return repeated
        raise
    return PostResult(entry, account.balance, commands, repeated=False)


def _repeat(session: Session, key: str, account: Account) -> PostResult | None:
    previous = ledger.find_by_key(session, key)
    if previous is None:
        return None
    if previous.account_id != account.id:
        raise BillingError("This form was already used for another account; reload the page")
    return PostResult(previous, account.balance, [], repeated=True)


def sell(
    session: Session,
    *,
    account_id: int,
    amount: object,
    payment_method: str,
    idempotency_key: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
) -> PostResult:
    """Credit an open account."""
    operators.require(operator, "sell")
    key = f"sale:{idempotency_key}"
    account = ledger.lock_account(session, account_id)
    if (repeated := _repeat(session, key, account)) is not None:
        return repeated
    value = parse_amount(amount, "Sale amount")
    if value <= 0:
        raise BillingError("Sale amount must be greater than 0")
    if value > policy.max_sale_amount:
        raise BillingError(
            f"Sale amount {value} is above the per-sale maximum of {policy.max_sale_amount}"
        )
    if payment_method not in PAYMENT_METHODS:
        raise BillingError(f"Payment method must be one of {', '.join(PAYMENT_METHODS)}")
    if account.status != "open":
        raise BillingError(f"Account {account.number} is closed; a sale needs an open account")
    if account.balance + value > policy.hoarding_limit:
        room = max(policy.hoarding_limit - account.balance, Decimal(0)).quantize(Decimal("0.01"))
        raise BillingError(
            f"This sale would take the balance over the hoarding limit of "
            f"{policy.hoarding_limit}; at most {room} can be sold now"
        )
    result = _post_money(
        session, account, kind="sale", amount=value, key=key, operator=operator, now=now,
        policy=policy, audit_detail={"payment_method": payment_method},
        payment_method=payment_method,
    )
    if not result.repeated:
        notices.recharge(session, account, result.entry, policy=policy, now=now)
    return result


def refund(
    session: Session,
    *,
    account_id: int,
    amount: object,
    reason: str,
    idempotency_key: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
    payment_method: str = "cash",
) -> PostResult:
    """Pay money back from an account, up to its available balance."""
    operators.require(operator, "refund")
    key = f"refund:{idempotency_key}"
    account = ledger.lock_account(session, account_id)
    if (repeated := _repeat(session, key, account)) is not None:
        return repeated
    value = parse_amount(amount, "Refund amount")
    if value <= 0:
        raise BillingError("Refund amount must be greater than 0")
    if not reason.strip():
        raise BillingError("A refund needs a reason")
    if payment_method not in REFUND_METHODS:
        raise BillingError(f"Refund method must be one of {', '.join(REFUND_METHODS)}")
    available = max(account.balance, Decimal(0)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    if value > available:
        raise BillingError(f"Refund amount {value} is more than the available balance {available}")
    return _post_money(
        session, account, kind="refund", amount=-value, key=key, operator=operator, now=now,
        policy=policy, audit_detail={"reason": reason.strip()},
        payment_method=payment_method, note=reason.strip(),
    )


def reverse(
    session: Session,
    *,
    entry_id: int,
    reason: str,
    idempotency_key: str,
    operator: Operator | None,
    now: datetime,
    policy: BillingPolicy,
) -> PostResult:
    """Undo one sale or refund made in error, as a new linked entry; at most once."""
    operators.require(operator, "reverse")
    original = session.get(LedgerEntry, entry_id)
    if original is None:
        raise NotFound(f"Ledger entry {entry_id} does not exist")
    key = f"reversal:{idempotency_key}"
    account = ledger.lock_account(session, original.account_id)
    if (repeated := _repeat(session, key, account)) is not None:
        return repeated
    if original.kind not in ("sale", "refund"):
        raise BillingError(f"Only a sale or a refund can be reversed, not a {original.kind}")
    if not reason.strip():
        raise BillingError("A reversal needs a reason")
    done = session.scalar(
        select(LedgerEntry.receipt_no).where(
            LedgerEntry.kind == "reversal", LedgerEntry.reference_id == original.id
        )
    )
    if done is not None:
        raise BillingError(f"Receipt {original.receipt_no} was already reversed by {done}")
    return _post_money(
        session, account, kind="reversal", amount=-original.amount, key=key, operator=operator,
        now=now, policy=policy,
        audit_detail={"reason": reason.strip(), "reverses": original.receipt_no},
        reference_id=original.id, note=f"{reason.strip()} (reverses {original.receipt_no})",
    )
