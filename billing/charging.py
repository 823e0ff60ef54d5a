"""Interval charges: the energy since the last billed reading, priced by the meter's tariff.

For each meter, billing keeps where it stands (`meter_billing`): the last billed reading and,
for the current tier period (a local month or year), the energy so far, the exact unrounded
cost so far and what was charged so far. A charge is round(cost so far, 4) − charged so far, so
the charges of a period add up to the tariff applied to the period's energy — rounding never
drifts. The same reading twice charges once: a reading at or before the last billed one is
skipped, and the ledger's idempotency key (meter + reading time) backs that up in the database.
A reading that goes backwards (meter replaced or reset) charges nothing, raises an anomaly and
re-bases. Each charge's energy and cost also go to `charge_daily`, per local day and tariff band.

A collection cycle bills every meter of the site in one batch, so the batch's hot rows (billing
positions, ledger entries, balances, daily totals) are computed as plain values and written with
one set-based statement per table (schema/bulk.py), not through the ORM's unit of work.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from billing import alarms, control, ledger
from billing.money import to_charge
from billing.policy import BillingPolicy
from billing.pricing import Schedules
from billing.tariffs import BANDS, Segment, TariffError, TariffSchedule
from schema import bulk
from schema.models import (
    Account,
    AccountMeter,
    Alarm,
    ChargeDaily,
    Command,
    LedgerEntry,
    Meter,
    MeterBilling,
)
from schema.types import ScaledDecimal

EXACT = Decimal(1).scaleb(-ScaledDecimal(10).places)  # what meter_billing keeps of exact sums
BAND_TOLERANCE_KWH = Decimal("0.0001")


class Reading(Protocol):
    @property
    def meter_id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def energy_kwh(self) -> Decimal: ...


@dataclass(frozen=True)
class FinalReading:
    """A reading typed in by an operator (a final reading when closing or replacing)."""

    meter_id: int
    at: datetime
    energy_kwh: Decimal
    band_energy_kwh: Mapping[str, Decimal] | None = None


@dataclass(frozen=True)
class Charge:
    """One interval charge, as its ledger entry records it."""

    account_id: int
    meter_id: int
    at: datetime
    energy_kwh: Decimal
    amount: Decimal  # negative: money taken from the account
    balance_after: Decimal


@dataclass
class ChargeResult:
    charges: list[Charge] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    skipped: int = 0


@dataclass
class _Meter:
    """What a batch needs of a meter row."""

    id: int
    price_per_kwh: Decimal | None
    tariff_id: int | None
    band_source: str | None


@dataclass
class _Position:
    """A meter_billing row, held as plain values while its batch is charged."""

    meter_id: int
    billed_at: datetime
    billed_energy_kwh: Decimal
    billed_band_energy: dict[str, str] | None
    period: str
    period_energy_kwh: Decimal
    period_cost_exact: Decimal
    period_charged: Decimal


@dataclass
class _Batch:
    """What a batch writes, gathered as plain rows and written once at its end."""

    tz: ZoneInfo
    recorded_at: datetime
    balances: dict[int, Decimal]  # account id → balance as charged so far
    new_positions: list[_Position] = field(default_factory=list)
    moved_positions: dict[int, _Position] = field(default_factory=dict)
    entries: list[dict[str, object]] = field(default_factory=list)
    daily: dict[tuple[int, date, str], list[Decimal]] = field(default_factory=dict)
    band_sources: dict[int, str] = field(default_factory=dict)  # meter id → how it is now billed
    tariff_alarms: set[int] = field(default_factory=set)  # meters with an open tariff_error

    def add_daily(self, meter_id: int, segments: list[Segment]) -> None:
        for segment in segments:
            key = (meter_id, segment.start.astimezone(self.tz).date(), segment.band or "")
            total = self.daily.setdefault(key, [Decimal(0), Decimal(0)])
            total[0] = _exact(total[0] + segment.energy_kwh)
            total[1] = _exact(total[1] + segment.cost)


def charge_key(meter_id: int, at: datetime) -> str:
    return f"charge:{meter_id}:{at.isoformat()}"


def _exact(value: Decimal) -> Decimal:
    return value.quantize(EXACT)


def _bands(reading: Reading) -> dict[str, Decimal] | None:
    bands = getattr(reading, "band_energy_kwh", None)
    return dict(bands) if bands else None


def _band_delta(
    previous: Mapping[str, str] | None, current: Mapping[str, Decimal] | None, delta: Decimal
) -> dict[str, Decimal] | None:
    """Energy per band from the meter's band registers, when both readings have them and they
    agree with the total; None means: split in proportion to time."""
    if not previous or not current or set(previous) != set(current):
        return None
    bands = {band: current[band] - Decimal(previous[band]) for band in current}
    if any(v < 0 for v in bands.values()) or abs(sum(bands.values()) - delta) > BAND_TOLERANCE_KWH:
        return None
    # Registers are 0.01 kWh; let the last band absorb the rounding so the total is exact.
    last = sorted(bands, key=BANDS.index)[-1]
    bands[last] += delta - sum(bands.values())
    return bands


def charge_readings(
    session: Session,
    readings: Iterable[Reading],
    *,
    policy: BillingPolicy,
    now: datetime,
) -> ChargeResult:
    """Bill a batch of readings inside the caller's transaction (flushed, not committed)."""
    session.flush()  # the caller's pending changes: the batch reads and writes rows directly
    with _cyclic_gc_paused():
        result = _charge_readings(session, readings, policy=policy, now=now)
        session.flush()
    return result


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch.

    A 10,000-meter batch makes some hundred thousand objects that all live until it ends; the
    collector, set off every 700 allocations, walks them over and over. Nothing in a batch
    needs collecting before its end. Only re-enabled if it was enabled: a batch running at the
    same time in another thread merely loses the saving.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _charge_readings(
    session: Session,
    readings: Iterable[Reading],
    *,
    policy: BillingPolicy,
    now: datetime,
) -> ChargeResult:
    by_meter: dict[int, list[Reading]] = defaultdict(list)
    for reading in readings:
        by_meter[reading.meter_id].append(reading)
    result = ChargeResult()
    if not by_meter:
        return result

    attachments = session.execute(
        select(AccountMeter.meter_id, AccountMeter.account_id).where(
            bulk.among(session, AccountMeter.meter_id, by_meter),
            AccountMeter.detached_at.is_(None),
        )
    ).all()
    account_of = {meter_id: account_id for meter_id, account_id in attachments}
    accounts = ledger.lock_accounts(session, account_of.values())
    balances_before = {account.id: account.balance for account in accounts.values()}
    meters = [
        _Meter(*row)
        for row in session.execute(
            select(Meter.id, Meter.price_per_kwh, Meter.tariff_id, Meter.band_source)
            .where(bulk.among(session, Meter.id, by_meter))
            .order_by(Meter.id)
            .with_for_update()
        )
    ]
    positions = {
        row.meter_id: _Position(**row._mapping)
        for row in session.execute(
            select(*MeterBilling.__table__.c)
            .where(bulk.among(session, MeterBilling.meter_id, by_meter))
            .with_for_update()
        )
    }
    batch = _Batch(policy.tz, now, dict(balances_before))
    batch.tariff_alarms.update(
        session.scalars(
            select(Alarm.meter_id).where(Alarm.kind == "tariff_error", Alarm.cleared_at.is_(None))
        )
    )
    # The alarm amounts on every meter of these accounts (the thresholds need all of them, not
    # only the batch's), read once now: attachments do not change while the batch is charged.
    alarm_amounts = control.alarm_amounts_of_accounts(session, accounts)
    schedules = Schedules(session, policy)

    for meter in meters:
        account = accounts.get(account_of.get(meter.id, -1))
        live = account if account is not None and account.status == "open" else None
        schedule = schedules.for_meter(meter)
        for reading in sorted(by_meter[meter.id], key=lambda r: r.at):
            position = positions.get(meter.id)
            if position is None:
                positions[meter.id] = _first_reading(batch, meter, reading, schedule)
                result.skipped += 1
                continue
            charge = _charge_one(session, batch, meter, position, live, reading, schedule)
            if charge is None:
                result.skipped += 1
            else:
                result.charges.append(charge)

    _write(session, batch, accounts)
    result.commands += control.after_balance_changes(
        session,
        [(account, balances_before[account.id]) for account in accounts.values()],
        policy=policy,
        now=now,
        alarm_amounts=alarm_amounts,
    )
    return result


def _period_or_unknown(schedule: TariffSchedule, at: datetime) -> str:
    try:
        return schedule.period_key(at)
    except TariffError:
        return ""  # before the tariff's first version: the period starts with the next reading


def _write(session: Session, batch: _Batch, accounts: Mapping[int, Account]) -> None:
    """Write the batch's rows, one statement per table, and bring the session's objects of those
    rows up to date (balances as if loaded; billing positions reloaded when next used)."""
    bulk.insert_rows(session, MeterBilling, [vars(p) for p in batch.new_positions])
    bulk.update_rows(
        session,
        MeterBilling,
        [vars(p) for p in batch.moved_positions.values()],
        key="meter_id",
    )
    bulk.update_rows(
        session,
        Meter,
        [
            {"id": meter_id, "band_source": source}
            for meter_id, source in batch.band_sources.items()
        ],
        key="id",
    )
    for model, ids in ((MeterBilling, batch.moved_positions), (Meter, batch.band_sources)):
        for row_id in ids:
            if (loaded := session.identity_map.get(identity_key(model, row_id))) is not None:
                session.expire(loaded)
    bulk.insert_rows(session, LedgerEntry, batch.entries)
    moved = {
        account_id: balance
        for account_id, balance in batch.balances.items()
        if balance != accounts[account_id].balance
    }
    bulk.update_rows(
        session,
        Account,
        [{"id": account_id, "balance": balance} for account_id, balance in moved.items()],
        key="id",
    )
    for account_id, balance in moved.items():
        set_committed_value(accounts[account_id], "balance", balance)
    bulk.add_rows(
        session,
        ChargeDaily,
        [
            {
                "meter_id": meter_id,
                "on_date": on_date,
                "band": band,
                "energy_kwh": energy,
                "cost": cost,
            }
            for (meter_id, on_date, band), (energy, cost) in batch.daily.items()
        ],
        keys=("meter_id", "on_date", "band"),
    )


def _first_reading(
    batch: _Batch, meter: _Meter, reading: Reading, schedule: TariffSchedule
) -> _Position:
    bands = _bands(reading)
    position = _Position(
        meter_id=meter.id,
        billed_at=reading.at,
        billed_energy_kwh=reading.energy_kwh,
        billed_band_energy={k: str(v) for k, v in bands.items()} if bands else None,
        period=_period_or_unknown(schedule, reading.at),
        period_energy_kwh=Decimal(0),
        period_cost_exact=Decimal(0),
        period_charged=Decimal(0),
    )
    batch.new_positions.append(position)
    return position


def _charge_one(
    session: Session,
    batch: _Batch,
    meter: _Meter,
    state: _Position,
    account: Account | None,
    reading: Reading,
    schedule: TariffSchedule,
) -> Charge | None:
    if reading.at <= state.billed_at:
        return None  # already billed: a repeated or late reading
    start, previous = state.billed_at, state.billed_energy_kwh
    bands = _bands(reading)
    delta = reading.energy_kwh - previous
    segments: list[Segment] = []
    in_period = False
    if delta >= 0 and account is not None:
        band_delta = _band_delta(state.billed_band_energy, bands, delta)
        try:
            in_period = state.period == schedule.period_key(start)
            period_energy = state.period_energy_kwh if in_period else Decimal(0)
            try:
                segments = schedule.price_interval(
                    start,
                    reading.at,
                    delta,
                    period_energy_kwh=period_energy,
                    band_energy_kwh=band_delta,
                )
            except TariffError:
                if band_delta is None:
                    raise
                # The meter's band clock puts energy in a band the tariff has no price for:
                # trust our clock instead.
                band_delta = None
                segments = schedule.price_interval(
                    start, reading.at, delta, period_energy_kwh=period_energy
                )
        except TariffError as exc:
            # Nothing moves: the billed position stays, so the interval is charged once the
            # tariff is mended.
            if meter.id not in batch.tariff_alarms:
                batch.tariff_alarms.add(meter.id)
                _raise_alarm(
                    session,
                    "tariff_error",
                    meter,
                    account,
                    reading.at,
                    str(exc),
                    "This meter's readings cannot be priced; they will be charged as soon "
                    "as its tariff covers them.",
                )
            return None
        if meter.id in batch.tariff_alarms:  # priced again: the tariff was mended
            batch.tariff_alarms.discard(meter.id)
            alarms.clear(
                session, "tariff_error", subject="meter_id", subject_id=meter.id, at=reading.at
            )
        band_source = "registers" if band_delta is not None else "time"
        if meter.band_source != band_source:
            meter.band_source = batch.band_sources[meter.id] = band_source
    if state not in batch.new_positions:
        batch.moved_positions[state.meter_id] = state
    state.billed_at = reading.at
    state.billed_energy_kwh = reading.energy_kwh
    state.billed_band_energy = {k: str(v) for k, v in bands.items()} if bands else None
    if delta < 0:
        _raise_alarm(
            session,
            "energy_backwards",
            meter,
            account,
            reading.at,
            f"{previous:.2f} → {reading.energy_kwh:.2f} kWh",
            "The meter's energy went backwards (replaced or reset): nothing was "
            "charged and billing continues from the new reading.",
        )
        return None
    if account is None:
        return None  # no open account holds the meter: nobody to charge
    charge = _apply(state, segments, in_period)
    batch.add_daily(meter.id, segments)
    if charge <= 0:
        return None
    balance = batch.balances[account.id] = batch.balances[account.id] - charge
    single_price = {s.price_per_kwh for s in segments}
    batch.entries.append(
        {
            "account_id": account.id,
            "kind": "charge",
            "amount": -charge,
            "balance_after": balance,
            "idempotency_key": charge_key(meter.id, reading.at),
            "meter_id": meter.id,
            "energy_kwh": delta,
            "price_per_kwh": single_price.pop() if len(single_price) == 1 else None,
            "note": "",
            "effective_at": reading.at,
            "recorded_at": batch.recorded_at,
        }
    )
    return Charge(account.id, meter.id, reading.at, delta, -charge, balance)


def _raise_alarm(
    session: Session,
    kind: str,
    meter: _Meter,
    account: Account | None,
    at: datetime,
    value: str,
    detail: str,
) -> None:
    session.add(
        Alarm(
            kind=kind,
            meter_id=meter.id,
            account_id=account.id if account else None,
            raised_at=at,
            value=value[:200],
            detail=detail,
        )
    )


def _apply(state: _Position, segments: list[Segment], in_period: bool) -> Decimal:
    """Add the segments to the tier-period running totals; return the charge they make."""
    charge = Decimal(0)
    if not in_period:
        state.period = ""
    for segment in segments:
        if segment.period != state.period:
            state.period = segment.period
            state.period_energy_kwh = Decimal(0)
            state.period_cost_exact = Decimal(0)
            state.period_charged = Decimal(0)
        state.period_energy_kwh = _exact(state.period_energy_kwh + segment.energy_kwh)
        state.period_cost_exact = _exact(state.period_cost_exact + segment.cost)
        due = to_charge(state.period_cost_exact) - state.period_charged
        state.period_charged += due
        charge += due
    return charge
