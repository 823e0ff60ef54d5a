"""Interval charges: the energy since the last billed reading, at the meter's price.

Each charge is computed from cumulative values — the cost of all energy since the charge base,
minus what was already charged since it — so rounding to 4 places never drifts over a month.
The same reading twice charges once: a reading at or before the meter's last billed reading is
skipped, and the ledger's idempotency key (meter + reading time) backs that up in the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import control, ledger
from billing.money import ZERO, to_charge
from schema.models import Account, AccountMeter, Command, LedgerEntry, Meter


class Reading(Protocol):
    @property
    def meter_id(self) -> int: ...
    @property
    def at(self) -> datetime: ...
    @property
    def energy_kwh(self) -> Decimal: ...


@dataclass
class ChargeResult:
    entries: list[LedgerEntry] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    skipped: int = 0


def charge_key(meter_id: int, at: datetime) -> str:
    return f"charge:{meter_id}:{at.isoformat()}"


def _rebase(meter: Meter, energy_kwh: Decimal, price: Decimal) -> None:
    meter.charge_base_energy_kwh = energy_kwh
    meter.charge_base_price_per_kwh = price
    meter.charged_since_base = ZERO


def charge_readings(
    session: Session,
    readings: Iterable[Reading],
    *,
    default_price_per_kwh: Decimal,
    now: datetime,
    command_ttl: timedelta = control.DEFAULT_TTL,
) -> ChargeResult:
    """Bill a batch of readings inside the caller's transaction."""
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
    meters = session.scalars(
        select(Meter).where(Meter.id.in_(by_meter)).order_by(Meter.id).with_for_update()
    ).all()

    for meter in meters:
        account = accounts.get(account_of.get(meter.id, -1))
        live = account if account is not None and account.status == "open" else None
        price = meter.price_per_kwh if meter.price_per_kwh is not None else default_price_per_kwh
        for reading in sorted(by_meter[meter.id], key=lambda r: r.at):
            entry = _charge_one(session, meter, live, reading, price, now)
            if entry is None:
                result.skipped += 1
            else:
                result.entries.append(entry)

    for account in accounts.values():
        if account.status == "open":
            result.commands += control.trip_for_arrears(session, account, now=now, ttl=command_ttl)
    return result


def _charge_one(
    session: Session,
    meter: Meter,
    account: Account | None,
    reading: Reading,
    price: Decimal,
    now: datetime,
) -> LedgerEntry | None:
    if meter.billed_at is not None and reading.at <= meter.billed_at:
        return None  # already billed: a repeated or late reading
    previous = meter.billed_energy_kwh
    meter.billed_at = reading.at
    meter.billed_energy_kwh = reading.energy_kwh
    if previous is None or meter.charge_base_energy_kwh is None or reading.energy_kwh < previous:
        # First reading, or the register went backwards (meter replaced or reset): re-base,
        # charge nothing.
        _rebase(meter, reading.energy_kwh, price)
        return None
    if price != meter.charge_base_price_per_kwh:
        # A new price applies from the previous reading on; what came before was charged already.
        _rebase(meter, previous, price)
    if account is None:
        # No open account holds the meter: nobody to charge; keep the base moving with the meter.
        _rebase(meter, reading.energy_kwh, price)
        return None
    cost_to_date = to_charge((reading.energy_kwh - meter.charge_base_energy_kwh) * price)
    charge = cost_to_date - meter.charged_since_base
    if charge <= 0:
        return None
    meter.charged_since_base = cost_to_date
    return ledger.post(
        session,
        account,
        kind="charge",
        amount=-charge,
        idempotency_key=charge_key(meter.id, reading.at),
        effective_at=reading.at,
        recorded_at=now,
        meter_id=meter.id,
        energy_kwh=reading.energy_kwh - previous,
        price_per_kwh=price,
    )
