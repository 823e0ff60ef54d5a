"""The append-only ledger. Every entry updates the account's cached balance in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from billing.errors import NotFound
from schema import bulk
from schema.models import Account, LedgerEntry, ReceiptCounter


def lock_accounts(session: Session, account_ids: Iterable[int]) -> dict[int, Account]:
    """Load and row-lock accounts in id order, so two transactions never deadlock on them.

    PostgreSQL takes FOR UPDATE row locks; SQLite holds the database write lock from BEGIN.
    An account this session loaded before is refreshed from the locked row (populate_existing):
    else its balance would be the one read before the lock, and a sale committed in between
    would be overwritten.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = session.scalars(
        select(Account)
        .where(bulk.among(session, Account.id, ids))
        .order_by(Account.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {account.id: account for account in rows}


def lock_account(session: Session, account_id: int) -> Account:
    account = lock_accounts(session, [account_id]).get(account_id)
    if account is None:
        raise NotFound(f"Account {account_id} does not exist")
    return account


def find_by_key(session: Session, idempotency_key: str) -> LedgerEntry | None:
    return session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key))


def post(
    session: Session,
    account: Account,
    *,
    kind: str,
    amount: Decimal,
    idempotency_key: str,
    effective_at: datetime,
    recorded_at: datetime,
    **fields: object,
) -> LedgerEntry:
    """Append an entry to a locked account and move its cached balance with it."""
    account.balance = account.balance + amount
    entry = LedgerEntry(
        account_id=account.id,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        idempotency_key=idempotency_key,
        effective_at=effective_at,
        recorded_at=recorded_at,
        **fields,
    )
    session.add(entry)
    return entry


def ledger_sum(session: Session, account_id: int) -> Decimal:
    """Σ entries, computed in the database: what the cached balance must always equal."""
    total = session.scalar(
        select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == account_id)
    )
    return total if total is not None else Decimal("0.0000")


def entry_count(session: Session, account_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
    ) or 0


def next_receipt_no(session: Session, now: datetime, tz: ZoneInfo) -> str:
    """The next receipt number of the site-local day, e.g. 20261125-0007.

    One upsert takes the day's counter row and holds its lock to the end of the transaction:
    numbers are gap-free, because a rolled-back operation gives its number back.
    """
    day = now.astimezone(tz).date()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(ReceiptCounter)
        .values(on_date=day, last_number=1)
        .on_conflict_do_update(
            index_elements=[ReceiptCounter.on_date],
            set_={"last_number": ReceiptCounter.last_number + 1},
        )
        .returning(ReceiptCounter.last_number)
    )
    number = session.execute(statement).scalar_one()
    return f"{day:%Y%m%d}-{number:04d}"
