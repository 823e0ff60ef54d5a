"""Read side of accounts and sales: account search and detail, and the record queries.

Plain rows for screens and exports. Times are UTC instants; the caller shows them in the site
time zone. Period filters take local dates: a day runs from local midnight to local midnight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from billing.errors import NotFound
from schema.models import (
    Account,
    AccountClosing,
    AccountMeter,
    AuditEntry,
    LedgerEntry,
    Meter,
    MeterReplacement,
    Operator,
    Unit,
)

CENT = Decimal("0.01")
ACCOUNT_STATUSES = ("open", "closed")
# What an operator posts over the counter; each has a receipt number.
COUNTER_KINDS = ("sale", "refund", "reversal")
# The kinds of entry that move money other than metered consumption.
MONEY_KINDS = ("sale", "refund", "reversal", "transfer")
SEARCH_LIMIT = 200
QUERY_LIMIT = 5000


def operator_name(operator: Operator | None) -> str:
    return (operator.display_name or operator.username) if operator else "system"


# --- accounts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRow:
    id: int
    number: str
    tenant: str
    phone: str
    id_number: str
    notes: str
    status: str  # "open" | "closed"
    units: str  # unit numbers, comma separated: held now, or at closing for a closed account
    meters: str  # meter serials, the same way
    balance: Decimal  # 2 places
    alarm_level: str
    opened_at: datetime
    closed_at: datetime | None


def search_accounts(
    session: Session, text: str = "", *, status: str | None = "open", limit: int = SEARCH_LIMIT
) -> list[AccountRow]:
    """Accounts whose number, tenant, phone, ID number, unit or meter contains `text`
    (any case), by number; `status` "open", "closed" or None for both."""
    query = select(Account)
    if status is not None:
        query = query.where(Account.status == status)
    needle = text.strip()
    if needle:
        # A unit or meter ever held counts: a closed account is found by its old shop.
        held = (
            select(AccountMeter.account_id)
            .join(Meter, Meter.id == AccountMeter.meter_id)
            .outerjoin(Unit, Unit.id == Meter.unit_id)
            .where(
                or_(
                    Unit.number.icontains(needle, autoescape=True),
                    Meter.serial.icontains(needle, autoescape=True),
                )
            )
        )
        query = query.where(
            or_(
                Account.number.icontains(needle, autoescape=True),
                Account.tenant_name.icontains(needle, autoescape=True),
                Account.phone.icontains(needle, autoescape=True),
                Account.id_number.icontains(needle, autoescape=True),
                Account.id.in_(held),
            )
        )
    accounts = session.scalars(query.order_by(Account.number).limit(limit)).all()
    return _account_rows(session, accounts)


def get_account(session: Session, account_id: int) -> AccountRow:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} does not exist")
    return _account_rows(session, [account])[0]


def _account_rows(session: Session, accounts: Sequence[Account]) -> list[AccountRow]:
    ids = [account.id for account in accounts]
    held: dict[int, list[tuple[str, str | None]]] = {}
    if ids:
        rows = session.execute(
            select(AccountMeter.account_id, Meter.serial, Unit.number)
            .join(Meter, Meter.id == AccountMeter.meter_id)
            .outerjoin(Unit, Unit.id == Meter.unit_id)
            .join(Account, Account.id == AccountMeter.account_id)
            .where(
                AccountMeter.account_id.in_(ids),
                or_(
                    AccountMeter.detached_at.is_(None),
                    AccountMeter.detached_at == Account.closed_at,
                ),
            )
            .order_by(Meter.serial)
        ).all()
        for account_id, serial, unit in rows:
            held.setdefault(account_id, []).append((serial, unit))
    return [
        AccountRow(
            id=account.id,
            number=account.number,
            tenant=account.tenant_name,
            phone=account.phone,
            id_number=account.id_number,
            notes=account.notes,
            status=account.status,
            units=", ".join(unit for _, unit in held.get(account.id, []) if unit),
            meters=", ".join(serial for serial, _ in held.get(account.id, [])),
            balance=account.balance.quantize(CENT),
            alarm_level=account.alarm_level,
            opened_at=account.opened_at,
            closed_at=account.closed_at,
        )
        for account in accounts
    ]


@dataclass(frozen=True)
class MeterRow:
    id: int
    serial: str
    unit: str | None
    relay: str  # "closed" | "open" | "unknown"
    power_protect: bool
    last_reading_at: datetime | None
    last_energy_kwh: Decimal | None
    lost_since: datetime | None
    attached_at: datetime


def account_meters(session: Session, account_id: int) -> list[MeterRow]:
    """The meters an account holds now."""
    rows = session.execute(
        select(Meter, Unit.number, AccountMeter.attached_at)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(AccountMeter.account_id == account_id, AccountMeter.detached_at.is_(None))
        .order_by(Meter.serial)
    ).all()
    return [
        MeterRow(
            id=meter.id,
            serial=meter.serial,
            unit=unit,
            relay=meter.relay,
            power_protect=meter.power_protect,
            last_reading_at=meter.last_reading_at,
            last_energy_kwh=meter.last_energy_kwh,
            lost_since=meter.lost_since,
            attached_at=attached_at,
        )
        for meter, unit, attached_at in rows
    ]


@dataclass(frozen=True)
class MeterChoice:
    id: int
    serial: str
    unit: str | None


def free_meters(session: Session) -> list[MeterChoice]:
    """Meters no account holds now: the ones an account can take."""
    held = select(AccountMeter.meter_id).where(AccountMeter.detached_at.is_(None))
    rows = session.execute(
        select(Meter.id, Meter.serial, Unit.number)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(Meter.id.not_in(held))
        .order_by(Unit.number, Meter.serial)
    ).all()
    return [MeterChoice(meter_id, serial, unit) for meter_id, serial, unit in rows]


def suggest_account_number(session: Session) -> str:
    """One more than the highest all-digit account number (10001 on an empty site)."""
    numbers = session.scalars(select(Account.number)).all()
    highest = max((int(n) for n in numbers if n.isdigit()), default=10000)
    return str(highest + 1)


@dataclass(frozen=True)
class ReplacementRow:
    at: datetime
    old_meter: str
    new_meter: str
    old_final_energy_kwh: Decimal | None
    value_transferred: Decimal
    operator: str


def replacements(session: Session, account_id: int) -> list[ReplacementRow]:
    """Old-meter transfers (老表金额转入) of an account, newest first."""
    old, new = aliased(Meter), aliased(Meter)
    rows = session.execute(
        select(MeterReplacement, old.serial, new.serial, Operator)
        .join(old, old.id == MeterReplacement.old_meter_id)
        .join(new, new.id == MeterReplacement.new_meter_id)
        .outerjoin(Operator, Operator.id == MeterReplacement.operator_id)
        .where(MeterReplacement.account_id == account_id)
        .order_by(MeterReplacement.at.desc(), MeterReplacement.id.desc())
    ).all()
    return [
        ReplacementRow(
            at=record.at,
            old_meter=old_serial,
            new_meter=new_serial,
            old_final_energy_kwh=record.old_final_energy_kwh,
            value_transferred=record.value_transferred.quantize(CENT),
            operator=operator_name(operator),
        )
        for record, old_serial, new_serial, operator in rows
    ]


# --- ledger entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryRow:
    id: int
    kind: str  # charge, sale, refund, reversal, transfer
    receipt_no: str | None
    at: datetime  # when it took effect
    account_id: int
    account: str
    tenant: str
    amount: Decimal  # as the ledger has it: money into the account is positive
    balance_after: Decimal
    payment_method: str | None
    operator: str
    note: str
    meter: str | None  # the meter a charge is for
    energy_kwh: Decimal | None
    reverses: str | None  # a reversal: the receipt number it undoes
    reversed_by: str | None  # a sale or refund: the receipt number of its reversal


EntriesQuery = Select[LedgerEntry, Account, Operator, str, str | None, str | None]


def _entries_query() -> EntriesQuery:
    original, reversal = aliased(LedgerEntry), aliased(LedgerEntry)
    return (
        select(LedgerEntry, Account, Operator, Meter.serial, original.receipt_no,
               reversal.receipt_no)
        .join(Account, Account.id == LedgerEntry.account_id)
        .outerjoin(Operator, Operator.id == LedgerEntry.operator_id)
        .outerjoin(Meter, Meter.id == LedgerEntry.meter_id)
        .outerjoin(original, original.id == LedgerEntry.reference_id)
        .outerjoin(
            reversal,
            (reversal.reference_id == LedgerEntry.id) & (reversal.kind == "reversal"),
        )
    )


def _entry_rows(session: Session, query: EntriesQuery) -> list[EntryRow]:
    return [
        EntryRow(
            id=entry.id,
            kind=entry.kind,
            receipt_no=entry.receipt_no,
            at=entry.effective_at,
            account_id=account.id,
            account=account.number,
            tenant=account.tenant_name,
            amount=entry.amount,
            balance_after=entry.balance_after,
            payment_method=entry.payment_method,
            operator=operator_name(operator),
            note=entry.note,
            meter=meter,
            energy_kwh=entry.energy_kwh,
            reverses=reverses if entry.kind == "reversal" else None,
            reversed_by=reversed_by,
        )
        for entry, account, operator, meter, reverses, reversed_by in session.execute(query)
    ]


def recent_entries(
    session: Session, account_id: int, *, limit: int = 30, money_only: bool = False
) -> list[EntryRow]:
    """An account's latest ledger entries, newest first; `money_only` leaves out charges."""
    query = _entries_query().where(LedgerEntry.account_id == account_id)
    if money_only:
        query = query.where(LedgerEntry.kind.in_(MONEY_KINDS))
    return _entry_rows(session, query.order_by(LedgerEntry.id.desc()).limit(limit))


def entry(session: Session, entry_id: int) -> EntryRow:
    rows = _entry_rows(session, _entries_query().where(LedgerEntry.id == entry_id))
    if not rows:
        raise NotFound(f"Ledger entry {entry_id} does not exist")
    return rows[0]


def find_receipt(session: Session, receipt_no: str) -> EntryRow | None:
    """The sale, refund or reversal with this receipt number, e.g. 20261125-0007."""
    rows = _entry_rows(
        session, _entries_query().where(LedgerEntry.receipt_no == receipt_no.strip())
    )
    return rows[0] if rows else None


def day_bounds(start_on: date, end_on: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants of local midnight starting `start_on` and ending `end_on`."""
    start = datetime.combine(start_on, time(), tzinfo=tz)
    end = datetime.combine(end_on + timedelta(days=1), time(), tzinfo=tz)
    return start, end


@dataclass(frozen=True)
class RecordFilter:
    """What the record queries share: local dates (both included) and optional narrowing."""

    start_on: date
    end_on: date
    tz: ZoneInfo
    account: str = ""  # part of an account number or tenant name
    operator_id: int | None = None
    payment_method: str | None = None  # sales and refunds only


def _counter_conditions(kind: str, where: RecordFilter) -> list[ColumnElement[bool]]:
    start, end = day_bounds(where.start_on, where.end_on, where.tz)
    conditions = [
        LedgerEntry.kind == kind,
        # A receipt number starts with its local day (20261125-0007): the range lets the
        # database use the receipt number index instead of scanning every charge.
        LedgerEntry.receipt_no >= f"{where.start_on:%Y%m%d}",
        LedgerEntry.receipt_no < f"{where.end_on + timedelta(days=1):%Y%m%d}",
        LedgerEntry.effective_at >= start,
        LedgerEntry.effective_at < end,
    ]
    if where.account.strip():
        needle = where.account.strip()
        conditions.append(
            or_(
                Account.number.icontains(needle, autoescape=True),
                Account.tenant_name.icontains(needle, autoescape=True),
            )
        )
    if where.operator_id is not None:
        conditions.append(LedgerEntry.operator_id == where.operator_id)
    if where.payment_method:
        conditions.append(LedgerEntry.payment_method == where.payment_method)
    return conditions


def counter_records(
    session: Session, kind: str, where: RecordFilter, *, limit: int = QUERY_LIMIT
) -> list[EntryRow]:
    """Sales, refunds or reversals (`kind`) of the period, in receipt order."""
    if kind not in COUNTER_KINDS:
        raise ValueError(f"kind must be one of {', '.join(COUNTER_KINDS)}")
    query = _entries_query().where(*_counter_conditions(kind, where))
    return _entry_rows(session, query.order_by(LedgerEntry.receipt_no).limit(limit))


@dataclass(frozen=True)
class MethodTotal:
    payment_method: str | None
    count: int
    amount: Decimal


@dataclass(frozen=True)
class RecordTotals:
    count: int
    amount: Decimal  # as the ledger has it: refunds negative
    by_method: list[MethodTotal]
    reversed_count: int  # of these, how many were reversed since
    reversed_amount: Decimal


def counter_totals(session: Session, kind: str, where: RecordFilter) -> RecordTotals:
    """Counts and sums of the whole period, however many rows a table shows."""
    reversal = aliased(LedgerEntry)
    base = (
        select(
            LedgerEntry.payment_method,
            func.count(LedgerEntry.id),
            func.sum(LedgerEntry.amount),
            func.count(reversal.id),
        )
        .join(Account, Account.id == LedgerEntry.account_id)
        .outerjoin(
            reversal,
            (reversal.reference_id == LedgerEntry.id) & (reversal.kind == "reversal"),
        )
        .where(*_counter_conditions(kind, where))
        .group_by(LedgerEntry.payment_method)
        .order_by(LedgerEntry.payment_method)
    )
    by_method = []
    reversed_count = 0
    for method, count, amount, reversed_n in session.execute(base):
        by_method.append(MethodTotal(method, count, (amount or Decimal(0)).quantize(CENT)))
        reversed_count += reversed_n
    reversed_amount = session.scalar(
        select(func.sum(LedgerEntry.amount))
        .join(Account, Account.id == LedgerEntry.account_id)
        .join(reversal, (reversal.reference_id == LedgerEntry.id) & (reversal.kind == "reversal"))
        .where(*_counter_conditions(kind, where))
    )
    return RecordTotals(
        count=sum(m.count for m in by_method),
        amount=sum((m.amount for m in by_method), Decimal("0.00")),
        by_method=by_method,
        reversed_count=reversed_count,
        reversed_amount=(reversed_amount or Decimal(0)).quantize(CENT),
    )


def reversible_entries(session: Session, *, on: date, tz: ZoneInfo) -> list[EntryRow]:
    """The sales and refunds of a local day that are not reversed yet, latest first."""
    rows = [
        row
        for kind in ("sale", "refund")
        for row in counter_records(session, kind, RecordFilter(on, on, tz))
        if row.reversed_by is None
    ]
    return sorted(rows, key=lambda row: row.receipt_no or "", reverse=True)


@dataclass(frozen=True)
class OpeningRow:
    account_id: int
    number: str
    tenant: str
    phone: str
    opened_at: datetime
    operator: str
    status: str
    units: str
    meters: str
    balance: Decimal


def openings(session: Session, where: RecordFilter) -> list[OpeningRow]:
    """Accounts opened in the period (开户), in opening order."""
    start, end = day_bounds(where.start_on, where.end_on, where.tz)
    query = select(Account).where(Account.opened_at >= start, Account.opened_at < end)
    if where.account.strip():
        needle = where.account.strip()
        query = query.where(
            or_(
                Account.number.icontains(needle, autoescape=True),
                Account.tenant_name.icontains(needle, autoescape=True),
            )
        )
    accounts = session.scalars(query.order_by(Account.opened_at, Account.number)).all()
    # Who opened it: the audit row written with the account, at the same instant.
    opened_by: dict[str, tuple[int | None, str]] = {}
    for target, operator_id, actor, who in session.execute(
        select(AuditEntry.target, AuditEntry.operator_id, AuditEntry.actor, Operator)
        .outerjoin(Operator, Operator.id == AuditEntry.operator_id)
        .where(AuditEntry.action == "account.open", AuditEntry.at >= start, AuditEntry.at < end)
    ):
        opened_by[target] = (operator_id, operator_name(who) if who else actor)
    rows = []
    for row in _account_rows(session, accounts):
        operator_id, operator = opened_by.get(row.number, (None, "system"))
        if where.operator_id is not None and operator_id != where.operator_id:
            continue
        rows.append(
            OpeningRow(
                account_id=row.id, number=row.number, tenant=row.tenant, phone=row.phone,
                opened_at=row.opened_at, operator=operator, status=row.status, units=row.units,
                meters=row.meters, balance=row.balance,
            )
        )
    return rows


@dataclass(frozen=True)
class ClosingRow:
    account_id: int
    number: str
    tenant: str
    closed_at: datetime
    final_balance: Decimal
    refunded: Decimal
    debt: Decimal
    meters: str
    receipt_no: str | None  # of the refund paid out at closing
    refund_entry_id: int | None
    operator: str
    note: str


ClosingsQuery = Select[AccountClosing, Account, Operator, int]


def _closings_query() -> ClosingsQuery:
    return (
        select(AccountClosing, Account, Operator, LedgerEntry.id)
        .join(Account, Account.id == AccountClosing.account_id)
        .outerjoin(Operator, Operator.id == AccountClosing.operator_id)
        .outerjoin(LedgerEntry, LedgerEntry.receipt_no == AccountClosing.receipt_no)
    )


def _closing_rows(session: Session, query: ClosingsQuery) -> list[ClosingRow]:
    return [
        ClosingRow(
            account_id=account.id,
            number=account.number,
            tenant=account.tenant_name,
            closed_at=closing.closed_at,
            final_balance=closing.final_balance.quantize(CENT),
            refunded=closing.refunded.quantize(CENT),
            debt=closing.debt.quantize(CENT),
            meters=", ".join(closing.meters),
            receipt_no=closing.receipt_no,
            refund_entry_id=entry_id,
            operator=operator_name(operator),
            note=closing.note,
        )
        for closing, account, operator, entry_id in session.execute(query)
    ]


def closing_of(session: Session, account_id: int) -> ClosingRow | None:
    """The closing record (销户) of a closed account."""
    rows = _closing_rows(session, _closings_query().where(AccountClosing.account_id == account_id))
    return rows[0] if rows else None


def closings(session: Session, where: RecordFilter) -> list[ClosingRow]:
    """Accounts closed in the period (销户), in closing order."""
    start, end = day_bounds(where.start_on, where.end_on, where.tz)
    query = _closings_query().where(
        AccountClosing.closed_at >= start, AccountClosing.closed_at < end
    )
    if where.account.strip():
        needle = where.account.strip()
        query = query.where(
            or_(
                Account.number.icontains(needle, autoescape=True),
                Account.tenant_name.icontains(needle, autoescape=True),
            )
        )
    if where.operator_id is not None:
        query = query.where(AccountClosing.operator_id == where.operator_id)
    return _closing_rows(session, query.order_by(AccountClosing.closed_at, Account.number))


def operator_choices(session: Session) -> list[tuple[int, str]]:
    """(id, name) of every operator, for filters."""
    return [
        (operator.id, operator_name(operator))
        for operator in session.scalars(select(Operator).order_by(Operator.username))
    ]
