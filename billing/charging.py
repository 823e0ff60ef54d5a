"""Interval charges: the energy since the last billed reading, priced by the meter's tariff.

For each meter, billing keeps where it stands (`meter_billing`): the last billed reading and,
for the current tier period (a local month or year), the energy so far, the exact unrounded
cost so far and what was charged so far. A charge is round(cost so far, 4) − charged so far, so
the charges of a period add up to the tariff applied to the period's energy — rounding never
drifts. The same reading twice charges once: a reading at or before the last billed one is
skipped, and the ledger's idempotency key (meter + reading time) backs that up in the database.
A reading that goes backwards (meter replaced or reset) charges nothing, raises an anomaly and
re-bases.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import control, ledger
from billing.money import to_charge
from billing.policy import BillingPolicy
from billing.pricing import Schedules
from billing.tariffs import BANDS, Segment, TariffError, TariffSchedule
from schema.models import Account, AccountMeter, Alarm, Command, LedgerEntry, Meter, MeterBilling
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


@dataclass
class ChargeResult:
    entries: list[LedgerEntry] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    skipped: int = 0


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
    with _cyclic_gc_paused():
        result = _charge_readings(session, readings, policy=policy, now=now)
        session.flush()
    return result


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one batch.

    A 10,000-meter batch makes a few hundred thousand ORM objects that all live until it ends;
    the collector, set off every 700 allocations, walks them over and over — a fifth of the
    batch's time. Nothing in a batch needs collecting before its end. Only re-enabled if it was
    enabled: a batch running at the same time in another thread merely loses the saving.
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
            AccountMeter.meter_id.in_(by_meter), AccountMeter.detached_at.is_(None)
        )
    ).all()
    account_of = {meter_id: account_id for meter_id, account_id in attachments}
    accounts = ledger.lock_accounts(session, account_of.values())
    balances_before = {account.id: account.balance for account in accounts.values()}
    meters = session.scalars(
        select(Meter).where(Meter.id.in_(by_meter)).order_by(Meter.id).with_for_update()
    ).all()
    states = {
        state.meter_id: state
        for state in session.scalars(
            select(MeterBilling).where(MeterBilling.meter_id.in_(by_meter)).with_for_update()
        )
    }
    # The alarm amounts on every meter of these accounts (the thresholds need all of them, not
    # only the batch's), read once now: attachments do not change while the batch is charged.
    alarm_amounts = control.alarm_amounts_of_accounts(session, accounts)
    schedules = Schedules(session, policy)

    for meter in meters:
        account = accounts.get(account_of.get(meter.id, -1))
        live = account if account is not None and account.status == "open" else None
        schedule = schedules.for_meter(meter)
        for reading in sorted(by_meter[meter.id], key=lambda r: r.at):
            state = states.get(meter.id)
            if state is None:
                states[meter.id] = _first_reading(session, meter, reading, schedule)
                result.skipped += 1
                continue
            entry = _charge_one(session, meter, state, live, reading, schedule, now)
            if entry is None:
                result.skipped += 1
            else:
                result.entries.append(entry)

    ledger.assign_ids(session, result.entries)
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


def _first_reading(
    session: Session, meter: Meter, reading: Reading, schedule: TariffSchedule
) -> MeterBilling:
    bands = _bands(reading)
    state = MeterBilling(
        meter_id=meter.id,
        billed_at=reading.at,
        billed_energy_kwh=reading.energy_kwh,
        billed_band_energy={k: str(v) for k, v in bands.items()} if bands else None,
        period=_period_or_unknown(schedule, reading.at),
        period_energy_kwh=Decimal(0),
        period_cost_exact=Decimal(0),
        period_charged=Decimal(0),
    )
    session.add(state)
    return state


def _charge_one(
    session: Session,
    meter: Meter,
    state: MeterBilling,
    account: Account | None,
    reading: Reading,
    schedule: TariffSchedule,
    now: datetime,
) -> LedgerEntry | None:
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
                segments = schedule.price_interval(start, reading.at, delta,
                                                   period_energy_kwh=period_energy,
                                                   band_energy_kwh=band_delta)
            except TariffError:
                if band_delta is None:
                    raise
                # The meter's band clock puts energy in a band the tariff has no price for:
                # trust our clock instead.
                band_delta = None
                segments = schedule.price_interval(start, reading.at, delta,
                                                   period_energy_kwh=period_energy)
        except TariffError as exc:
            # Nothing moves: the billed position stays, so the interval is charged once the
            # tariff is mended.
            _raise_alarm(session, "tariff_error", meter, account, reading.at, str(exc),
                         "This meter's readings cannot be priced; they will be charged as soon "
                         "as its tariff covers them.", unless_open=True)
            return None
        meter.band_source = "registers" if band_delta is not None else "time"
    state.billed_at = reading.at
    state.billed_energy_kwh = reading.energy_kwh
    state.billed_band_energy = {k: str(v) for k, v in bands.items()} if bands else None
    if delta < 0:
        _raise_alarm(session, "energy_backwards", meter, account, reading.at,
                     f"{previous:.2f} → {reading.energy_kwh:.2f} kWh",
                     "The meter's energy went backwards (replaced or reset): nothing was "
                     "charged and billing continues from the new reading.", unless_open=False)
        return None
    if account is None:
        return None  # no open account holds the meter: nobody to charge
    charge = _apply(state, segments, in_period)
    if charge <= 0:
        return None
    single_price = {s.price_per_kwh for s in segments}
    return ledger.post(
        session,
        account,
        kind="charge",
        amount=-charge,
        idempotency_key=charge_key(meter.id, reading.at),
        effective_at=reading.at,
        recorded_at=now,
        meter_id=meter.id,
        energy_kwh=delta,
        price_per_kwh=single_price.pop() if len(single_price) == 1 else None,
    )


def _raise_alarm(
    session: Session,
    kind: str,
    meter: Meter,
    account: Account | None,
    at: datetime,
    value: str,
    detail: str,
    *,
    unless_open: bool,
) -> None:
    """An alarm for the meter; with `unless_open`, not while one of the same kind is open."""
    if unless_open and session.scalar(
        select(Alarm.id).where(
            Alarm.kind == kind, Alarm.meter_id == meter.id, Alarm.cleared_at.is_(None)
        )
    ):
        return
    session.add(
            Alarm(kind=kind, meter_id=meter.id, account_id=account.id if account else None,
                  raised_at=at, value=value[:200], detail=detail)
        )


def _apply(state: MeterBilling, segments: list[Segment], in_period: bool) -> Decimal:
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
