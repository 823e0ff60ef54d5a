"""Monitoring read side and alarm handling: the batch-operations grid, lost contact, alarms and
the progress of commands just sent.

The grid is read in a fixed number of set-based queries whatever the number of meters (a site
has up to ~10,000): one for meters with their place, account and contact, one for the last
7 days' charges of every open account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, aliased

from billing import audit, operators
from billing.alarms import CLEARED_BY_ACKNOWLEDGING
from billing.errors import BillingError, NotFound
from billing.views import COST_WINDOW
from schema.models import (
    Account,
    AccountMeter,
    Alarm,
    Building,
    Command,
    Floor,
    Gateway,
    LedgerEntry,
    Meter,
    Operator,
    Unit,
)

# A meter's state on the grid, most urgent first: a meter that does not answer is lost whatever
# its balance; a meter without an account is not opened; otherwise its account's alarm level.
STATES = ("lost", "arrears", "alarm2", "alarm1", "opened", "not_opened")
_LEVEL_STATE = {"normal": "opened", "alarm1": "alarm1", "alarm2": "alarm2", "arrears": "arrears"}
ACK_NOTE_MAX = 500


@dataclass(frozen=True)
class GridRow:
    meter_id: int
    meter: str
    unit: str | None
    building_id: int | None
    building: str | None
    floor_id: int | None
    floor: str | None
    gateway: str
    account_id: int | None
    account: str | None
    tenant: str | None
    balance: Decimal | None
    days_left: Decimal | None  # at the last 7 days' average daily cost; 0 in arrears
    runs_out_on: date | None  # site-local date the balance is expected to reach 0
    relay: str
    power_protect: bool
    alarm_level: str | None  # the account's; None when the meter has no account
    last_reading_at: datetime | None
    lost_since: datetime | None  # the meter's, or its gateway's if that was lost first
    state: str  # one of STATES


def grid_state(*, lost: bool, alarm_level: str | None) -> str:
    if lost:
        return "lost"
    if alarm_level is None:
        return "not_opened"
    return _LEVEL_STATE.get(alarm_level, "opened")


def days_left(
    balance: Decimal, spent: Decimal | None, since: datetime, now: datetime, tz: ZoneInfo
) -> tuple[Decimal | None, date | None]:
    """Days the balance lasts at the average daily cost since `since` (spent: the charges, as
    the ledger holds them, negative), and the local date it runs out; as billing.views does."""
    if balance <= 0:
        return Decimal(0), now.astimezone(tz).date()
    days = Decimal((now - since).total_seconds()) / Decimal(86400)
    if spent is None or days <= 0:
        return None, None
    average = (-spent / max(days, Decimal(1))).quantize(Decimal("0.01"))
    if average <= 0:
        return None, None
    left = (balance / average).quantize(Decimal("0.1"))
    return left, (now + timedelta(days=float(left))).astimezone(tz).date()


# Per open account: its charges in the 7-day window (negative; None without any), window start.
Spend = Mapping[int, tuple[Decimal | None, datetime]]


def recent_spend(session: Session, now: datetime) -> dict[int, tuple[Decimal | None, datetime]]:
    """The charges of the last 7 days of every open account (negative, as the ledger holds
    them; None without any) with the window's start, later for an account opened since, in
    one query.

    The sum is correlated per account on purpose: each is a range scan of the ledger's
    (account, kind, effective_at) index, never a scan of the year-long ledger.
    """
    window_start = now - COST_WINDOW
    spent = (
        select(func.sum(LedgerEntry.amount))
        .where(
            LedgerEntry.account_id == Account.id,
            LedgerEntry.kind == "charge",
            LedgerEntry.effective_at > window_start,
            LedgerEntry.effective_at <= now,
        )
        .correlate(Account)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Account.id, Account.opened_at, spent).where(Account.status == "open")
    ).all()
    return {
        account_id: (total, max(window_start, opened_at))
        for account_id, opened_at, total in rows
    }


def meter_grid(
    session: Session, now: datetime, tz: ZoneInfo, *, spend: Spend | None = None
) -> list[GridRow]:
    """Every meter with its place, account, balance, days left, relay, alarm level and contact,
    in building / floor / unit order. `spend` is recent_spend's answer when the caller keeps
    it for a while (a 7-day average hardly moves in minutes; the balance is always read)."""
    active = aliased(AccountMeter)
    rows = session.execute(
        select(
            Meter.id, Meter.serial, Meter.relay, Meter.power_protect, Meter.last_reading_at,
            Meter.lost_since, Gateway.name, Gateway.lost_since, Unit.number, Floor.id,
            Floor.name, Building.id, Building.name, Account.id, Account.number,
            Account.tenant_name, Account.balance, Account.alarm_level,
        )
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .outerjoin(Building, Building.id == Floor.building_id)
        .outerjoin(active, (active.meter_id == Meter.id) & active.detached_at.is_(None))
        .outerjoin(Account, (Account.id == active.account_id) & (Account.status == "open"))
        .order_by(Building.code.nulls_last(), Floor.level.nulls_last(),
                  Unit.number.nulls_last(), Meter.serial)
    ).all()
    if spend is None:
        spend = recent_spend(session, now)
    grid = []
    for (
        meter_id, serial, relay, protect, last_reading_at, meter_lost, gateway, gateway_lost,
        unit, floor_id, floor, building_id, building, account_id, number, tenant, balance,
        level,
    ) in rows:
        lost = [at for at in (meter_lost, gateway_lost) if at is not None]
        left = runs_out = None
        if account_id is not None:
            spent, since = spend.get(account_id, (None, now))
            left, runs_out = days_left(balance, spent, since, now, tz)
        grid.append(
            GridRow(
                meter_id=meter_id, meter=serial, unit=unit, building_id=building_id,
                building=building, floor_id=floor_id, floor=floor, gateway=gateway,
                account_id=account_id, account=number, tenant=tenant,
                balance=balance.quantize(Decimal("0.01")) if balance is not None else None,
                days_left=left, runs_out_on=runs_out, relay=relay, power_protect=protect,
                alarm_level=level, last_reading_at=last_reading_at,
                lost_since=min(lost, default=None), state=grid_state(lost=bool(lost),
                                                                     alarm_level=level),
            )
        )
    return grid


@dataclass(frozen=True)
class LostMeter:
    meter_id: int
    meter: str
    unit: str | None
    building: str | None
    floor: str | None
    gateway: str
    account: str | None
    tenant: str | None
    last_reading_at: datetime | None
    lost_since: datetime
    lost_for: timedelta


@dataclass(frozen=True)
class LostGateway:
    gateway_id: int
    gateway: str
    address: str  # host:port, or the serial device
    meters: int
    last_contact_at: datetime | None
    lost_since: datetime
    lost_for: timedelta


def lost_meters(session: Session, now: datetime) -> list[LostMeter]:
    """Meters the collector marked lost (失联), longest lost first."""
    active = aliased(AccountMeter)
    rows = session.execute(
        select(
            Meter.id, Meter.serial, Unit.number, Building.name, Floor.name, Gateway.name,
            Account.number, Account.tenant_name, Meter.last_reading_at, Meter.lost_since,
        )
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .outerjoin(Building, Building.id == Floor.building_id)
        .outerjoin(active, (active.meter_id == Meter.id) & active.detached_at.is_(None))
        .outerjoin(Account, (Account.id == active.account_id) & (Account.status == "open"))
        .where(Meter.lost_since.is_not(None))
        .order_by(Meter.lost_since, Meter.serial)
    ).all()
    found = []
    for (meter_id, serial, unit, building, floor, gateway, account, tenant, last_reading_at,
         since) in rows:
        assert since is not None  # selected for it
        found.append(
            LostMeter(
                meter_id=meter_id, meter=serial, unit=unit, building=building, floor=floor,
                gateway=gateway, account=account, tenant=tenant, last_reading_at=last_reading_at,
                lost_since=since, lost_for=max(now - since, timedelta(0)),
            )
        )
    return found


def lost_gateways(session: Session, now: datetime) -> list[LostGateway]:
    """Gateways (通讯管理机) the collector marked lost, longest lost first, with their meters."""
    meters = (
        select(func.count(Meter.id))
        .where(Meter.gateway_id == Gateway.id)
        .correlate(Gateway)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Gateway, meters)
        .where(Gateway.lost_since.is_not(None))
        .order_by(Gateway.lost_since, Gateway.name)
    ).all()
    found = []
    for gateway, count in rows:
        assert gateway.lost_since is not None
        address = gateway.host if gateway.transport == "serial" else (
            f"{gateway.host}:{gateway.port}"
        )
        found.append(
            LostGateway(
                gateway_id=gateway.id, gateway=gateway.name, address=address, meters=count,
                last_contact_at=gateway.last_contact_at, lost_since=gateway.lost_since,
                lost_for=max(now - gateway.lost_since, timedelta(0)),
            )
        )
    return found


@dataclass(frozen=True)
class AlarmRow:
    alarm_id: int
    kind: str
    meter: str | None
    gateway: str | None
    unit: str | None
    account: str | None
    tenant: str | None
    raised_at: datetime
    value: str
    detail: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str
    cleared_at: datetime | None


def _alarm_rows(session: Session, *conditions: ColumnElement[bool]) -> list[AlarmRow]:
    acknowledger = aliased(Operator)
    rows = session.execute(
        select(
            Alarm, Meter.serial, Gateway.name, Unit.number, Account.number, Account.tenant_name,
            acknowledger.username,
        )
        .outerjoin(Meter, Meter.id == Alarm.meter_id)
        .outerjoin(Gateway, Gateway.id == Alarm.gateway_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Account, Account.id == Alarm.account_id)
        .outerjoin(acknowledger, acknowledger.id == Alarm.acknowledged_by)
        .where(*conditions)
        .order_by(Alarm.raised_at.desc(), Alarm.id.desc())
    ).all()
    return [
        AlarmRow(
            alarm_id=alarm.id, kind=alarm.kind, meter=meter, gateway=gateway, unit=unit,
            account=account,
            tenant=tenant, raised_at=alarm.raised_at, value=alarm.value, detail=alarm.detail,
            acknowledged_at=alarm.acknowledged_at, acknowledged_by=username,
            ack_note=alarm.ack_note, cleared_at=alarm.cleared_at,
        )
        for alarm, meter, gateway, unit, account, tenant, username in rows
    ]


def open_alarms(session: Session) -> list[AlarmRow]:
    """Real-time alarms: those not cleared yet, newest first."""
    return _alarm_rows(session, Alarm.cleared_at.is_(None))


def local_day_bounds(start_on: date, end_on: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants from the start of `start_on` to the end of `end_on`, site-local days."""
    if start_on > end_on:
        raise BillingError("The start date must be on or before the end date")
    return (
        datetime.combine(start_on, time(), tz),
        datetime.combine(end_on + timedelta(days=1), time(), tz),
    )


def alarm_history(
    session: Session,
    start_on: date,
    end_on: date,
    tz: ZoneInfo,
    kinds: Sequence[str] = (),
) -> list[AlarmRow]:
    """Every alarm raised on the site-local days from `start_on` to `end_on`, cleared or not,
    newest first; only `kinds` when given."""
    start, end = local_day_bounds(start_on, end_on, tz)
    conditions: list[ColumnElement[bool]] = [Alarm.raised_at >= start, Alarm.raised_at < end]
    if kinds:
        conditions.append(Alarm.kind.in_(list(kinds)))
    return _alarm_rows(session, *conditions)


def alarm_kinds(session: Session) -> list[str]:
    """The kinds of alarm the site has ever raised."""
    return list(session.scalars(select(Alarm.kind).distinct().order_by(Alarm.kind)))


def acknowledge_alarms(
    session: Session,
    alarm_ids: Iterable[int],
    *,
    operator: Operator | None,
    note: str,
    now: datetime,
) -> list[Alarm]:
    """Acknowledge alarms: the operator has seen them (they clear when their cause goes away).
    All or none: an alarm already acknowledged refuses the whole batch."""
    operators.require(operator, "control")
    assert operator is not None
    ids = sorted(set(alarm_ids))
    if not ids:
        raise BillingError("Choose at least one alarm to acknowledge")
    note = note.strip()
    if len(note) > ACK_NOTE_MAX:
        raise BillingError(f"The note can have at most {ACK_NOTE_MAX} characters")
    alarms = session.scalars(
        select(Alarm).where(Alarm.id.in_(ids)).order_by(Alarm.id).with_for_update()
    ).all()
    missing = set(ids) - {alarm.id for alarm in alarms}
    if missing:
        raise NotFound(f"No such alarm: {', '.join(f'#{i}' for i in sorted(missing))}")
    done = [alarm.id for alarm in alarms if alarm.acknowledged_at is not None]
    if done:
        raise BillingError(
            f"Already acknowledged: {', '.join(f'#{i}' for i in done)}. "
            "Refresh the page and choose again."
        )
    for alarm in alarms:
        alarm.acknowledged_at = now
        alarm.acknowledged_by = operator.id
        alarm.ack_note = note
        if alarm.kind in CLEARED_BY_ACKNOWLEDGING and alarm.cleared_at is None:
            alarm.cleared_at = now
        audit.record(
            session, at=now, operator=operator, action="alarm.acknowledge",
            target=f"alarm {alarm.id}", kind=alarm.kind, meter_id=alarm.meter_id, note=note,
        )
    session.flush()
    return list(alarms)


@dataclass(frozen=True)
class CommandRow:
    command_id: int
    meter: str
    unit: str | None
    kind: str
    state: str  # queued → sent → confirmed | failed | expired
    attempts: int
    created_at: datetime
    completed_at: datetime | None
    result: str


def command_progress(session: Session, command_ids: Iterable[int]) -> list[CommandRow]:
    """Where each of these commands stands now, newest first."""
    ids = sorted(set(command_ids))
    if not ids:
        return []
    rows = session.execute(
        select(
            Command.id, Meter.serial, Unit.number, Command.kind, Command.state,
            Command.attempts, Command.created_at, Command.completed_at, Command.result,
        )
        .join(Meter, Meter.id == Command.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(Command.id.in_(ids))
        .order_by(Command.id.desc())
    ).all()
    return [CommandRow(*row) for row in rows]
