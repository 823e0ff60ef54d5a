"""Remote control of many meters at once (遥控): trip, close, power-protect, restore prepaid mode,
price dispatch (电价下发) and settings dispatch (设置下发), fanned out as one command per meter.

The collector writes each command to its meter and reads it back. Price and settings commands
carry what to write: the prices the meter is billed at now, per band, and its thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, control, operators
from billing.errors import BillingError
from billing.policy import BillingPolicy
from billing.pricing import Schedules
from billing.tariffs import BANDS
from schema.models import Command, Meter, Operator

BATCH_KINDS = ("trip", "close", "protect_on", "protect_off", "price", "settings")


@dataclass(frozen=True)
class BatchResult:
    commands: list[Command]
    skipped: list[str]  # why a meter got no command, one line each


def price_payload(schedules: Schedules, meter: Meter, now: datetime) -> dict[str, str]:
    """The price per band the meter is billed at now (a flat price fills every band)."""
    schedule = schedules.for_meter(meter)
    spec = schedule.version_at(now).spec
    if spec.has_bands:
        prices = {band: spec.band_price(band) for band in BANDS}
    else:
        base = spec.flat_price if spec.kind == "flat" else spec.tiers[0].per_kwh
        prices = dict.fromkeys(BANDS, base)
    return {band: str(price) for band, price in prices.items() if price is not None}


def settings_payload(
    session: Session, meter: Meter, policy: BillingPolicy
) -> dict[str, str]:
    account = control.account_of_meter(session, meter.id)
    if account is not None:
        alarm1, alarm2 = control.thresholds(session, account, policy)
    else:
        alarm1 = meter.alarm1_amount if meter.alarm1_amount is not None else policy.alarm1_amount
        alarm2 = meter.alarm2_amount if meter.alarm2_amount is not None else policy.alarm2_amount
    return {
        "alarm1_amount": str(alarm1),
        "alarm2_amount": str(alarm2),
        "overload_kw": str(policy.overload_kw),
    }


def send_batch(
    session: Session,
    meter_ids: Sequence[int],
    kind: str,
    *,
    operator: Operator | None,
    policy: BillingPolicy,
    now: datetime,
    reason: str = "",
) -> BatchResult:
    """One command per selected meter. Power-protect also sets the platform flag (the platform
    decides trips in arrears); a meter already open is not tripped again, nor a closed one
    closed."""
    operators.require(operator, "control")
    if kind not in BATCH_KINDS:
        raise BillingError(f"Unknown operation {kind!r}")
    if not meter_ids:
        raise BillingError("Select at least one meter")
    meters = session.scalars(
        select(Meter).where(Meter.id.in_(set(meter_ids))).order_by(Meter.id)
    ).all()
    missing = set(meter_ids) - {meter.id for meter in meters}
    if missing:
        raise BillingError(f"No such meter: {', '.join(map(str, sorted(missing)))}")
    schedules = Schedules(session, policy) if kind == "price" else None
    commands: list[Command] = []
    skipped: list[str] = []
    why = reason.strip() or f"batch {kind}"
    for meter in meters:
        if kind in ("protect_on", "protect_off"):
            control.set_power_protect(session, meter.id, kind == "protect_on", operator=operator,
                                      policy=policy, now=now)
        if kind in ("trip", "close") and control.pending_command(session, meter.id, kind):
            skipped.append(f"{meter.serial}: a {kind} is already waiting")
            continue
        payload = None
        if schedules is not None:
            payload = price_payload(schedules, meter, now)
        elif kind == "settings":
            payload = settings_payload(session, meter, policy)
        command = control.queue_command(session, meter, kind, now=now, operator=operator,
                                        ttl=policy.command_ttl, reason=why)
        command.payload = payload
        commands.append(command)
    audit.record(session, at=now, operator=operator, action=f"batch.{kind}",
                 target=f"{len(commands)} meters", meters=",".join(m.serial for m in meters))
    session.flush()
    return BatchResult(commands, skipped)
