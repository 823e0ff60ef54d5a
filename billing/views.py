"""Read side for screens and scripts: plain rows straight from the database."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from schema.models import (
    Account,
    AccountMeter,
    Building,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    Unit,
)


@dataclass(frozen=True)
class MeterStatus:
    meter_id: int
    meter: str
    unit: str | None
    building: str | None
    floor: str | None
    gateway: str
    account_id: int | None
    account: str | None
    tenant: str | None
    balance: Decimal | None
    relay: str
    power_protect: bool
    power_kw: Decimal | None
    energy_kwh: Decimal | None
    last_reading_at: datetime | None
    lost_since: datetime | None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: decimals as strings, instants as ISO 8601 UTC."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, Decimal):
                out[key] = str(value)
            elif isinstance(value, datetime):
                out[key] = value.isoformat().replace("+00:00", "Z")
            else:
                out[key] = value
        return out


def meter_status(session: Session) -> list[MeterStatus]:
    # Columns, not entities: at 10,000 meters building ORM objects took most of the time.
    active = aliased(AccountMeter)
    rows = session.execute(
        select(
            Meter.id, Meter.serial, Unit.number, Building.name, Floor.name, Gateway.name,
            Account.id, Account.number, Account.tenant_name, Account.balance, Meter.relay,
            Meter.power_protect, Meter.last_power_kw, Meter.last_energy_kwh,
            Meter.last_reading_at, Meter.lost_since,
        )
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .outerjoin(Building, Building.id == Floor.building_id)
        .outerjoin(active, (active.meter_id == Meter.id) & active.detached_at.is_(None))
        .outerjoin(Account, Account.id == active.account_id)
        .order_by(Building.code, Floor.level, Unit.number, Meter.serial)
    ).all()
    cent = Decimal("0.01")
    return [
        MeterStatus(
            meter_id=meter_id,
            meter=serial,
            unit=unit,
            building=building,
            floor=floor,
            gateway=gateway,
            account_id=account_id,
            account=number,
            tenant=tenant,
            balance=balance.quantize(cent) if balance is not None else None,
            relay=relay,
            power_protect=protect,
            power_kw=power_kw,
            energy_kwh=energy_kwh,
            last_reading_at=last_reading_at,
            lost_since=lost_since,
        )
        for (
            meter_id, serial, unit, building, floor, gateway, account_id, number, tenant,
            balance, relay, protect, power_kw, energy_kwh, last_reading_at, lost_since,
        ) in rows
    ]


@dataclass(frozen=True)
class AccountChoice:
    id: int
    number: str
    tenant: str
    units: str
    balance: Decimal


def open_accounts(session: Session) -> list[AccountChoice]:
    rows = session.execute(
        select(Account, Unit.number)
        .outerjoin(
            AccountMeter,
            (AccountMeter.account_id == Account.id) & AccountMeter.detached_at.is_(None),
        )
        .outerjoin(Meter, Meter.id == AccountMeter.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(Account.status == "open")
        .order_by(Account.number)
    ).all()
    units: dict[int, list[str]] = {}
    accounts: dict[int, Account] = {}
    for account, unit in rows:
        accounts[account.id] = account
        units.setdefault(account.id, [])
        if unit:
            units[account.id].append(unit)
    return [
        AccountChoice(a.id, a.number, a.tenant_name, ", ".join(units[a.id]), a.balance)
        for a in accounts.values()
    ]


@dataclass(frozen=True)
class SiteSummary:
    meters: int
    accounts_in_arrears: int
    tripped_meters: int
    total_balance: Decimal


def summarise(rows: list[MeterStatus]) -> SiteSummary:
    """Headline figures for the overview; an account with several meters counts once."""
    balances = {
        row.account_id: row.balance
        for row in rows
        if row.account_id is not None and row.balance is not None
    }
    return SiteSummary(
        meters=len(rows),
        accounts_in_arrears=sum(1 for balance in balances.values() if balance <= 0),
        tripped_meters=sum(1 for row in rows if row.relay == "open"),
        total_balance=sum(balances.values(), Decimal("0.00")),
    )


COST_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class BalanceInfo:
    account_id: int
    balance: Decimal
    alarm_level: str
    average_daily_cost: Decimal | None  # over the last 7 days (or since opening, if sooner)
    days_left: Decimal | None
    runs_out_on: date | None  # the local date the balance is expected to reach 0


def balance_info(session: Session, account_id: int, *, now: datetime, tz: ZoneInfo) -> BalanceInfo:
    """The balance with the date it is expected to run out, from the last 7 days' charges."""
    account = session.get_one(Account, account_id)
    since = max(now - COST_WINDOW, account.opened_at)
    spent = session.scalar(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.account_id == account_id,
            LedgerEntry.kind == "charge",
            LedgerEntry.effective_at > since,
            LedgerEntry.effective_at <= now,
        )
    )
    days = Decimal((now - since).total_seconds()) / Decimal(86400)
    average = None
    if spent is not None and days > 0:
        average = (-spent / max(days, Decimal(1))).quantize(Decimal("0.01"))
    days_left = runs_out_on = None
    if average is not None and average > 0 and account.balance > 0:
        days_left = (account.balance / average).quantize(Decimal("0.1"))
        runs_out_on = (now + timedelta(days=float(days_left))).astimezone(tz).date()
    elif account.balance <= 0:
        days_left, runs_out_on = Decimal(0), now.astimezone(tz).date()
    return BalanceInfo(
        account_id=account.id,
        balance=account.balance.quantize(Decimal("0.01")),
        alarm_level=account.alarm_level,
        average_daily_cost=average,
        days_left=days_left,
        runs_out_on=runs_out_on,
    )
