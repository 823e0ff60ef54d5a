"""Remote control of many meters at once (遥控): trip, close, power-protect, restore prepaid mode,
price dispatch (电价下发) and settings dispatch (设置下发), fanned out as one command per meter.

The collector writes each command to its meter and reads it back. Price and settings commands
carry what to write: the prices the meter is billed at now, per band, and its thresholds.

Saving one meter (`update_meter`) queues the price or settings dispatch whose values the change
altered, for that meter only. A changed site default is not fanned out by itself: the operator
sends it from the batch page when ready, since it may write every meter of the site.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, control, operators, site
from billing.errors import BillingError
from billing.parameters import SiteParameters
from billing.policy import BillingPolicy
from billing.pricing import Schedules
from billing.tariffs import BANDS
from collector.profiles import load_profile
from schema.models import Command, Meter, Operator

BATCH_KINDS = ("trip", "close", "protect_on", "protect_off", "price", "settings")
# The dispatches that carry values, in the order a meter save queues them.
VALUE_KINDS = ("price", "settings")
# The site defaults a dispatch writes to meters that have no value of their own.
DISPATCHED_PARAMETERS = {
    "default_tariff_id": "price",
    "alarm1_amount": "settings",
    "alarm2_amount": "settings",
    "overload_kw": "settings",
}


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
    overload_kw = meter.overload_kw if meter.overload_kw is not None else policy.overload_kw
    return {
        "alarm1_amount": str(alarm1),
        "alarm2_amount": str(alarm2),
        "overload_kw": str(overload_kw),
    }


def parameter_dispatches(before: SiteParameters, after: SiteParameters) -> list[str]:
    """The dispatches (in VALUE_KINDS order) that would bring the meters a change of the site
    defaults. Nothing is queued: the operator sends them from the batch page when ready."""
    changed = {kind for key, kind in DISPATCHED_PARAMETERS.items()
               if getattr(before, key) != getattr(after, key)}
    return [kind for kind in VALUE_KINDS if kind in changed]


def can_receive(meter: Meter, kind: str) -> bool:
    """Whether the meter's profile has the control (metering meters take no price or settings;
    the collector would fail such a command)."""
    return kind in load_profile(meter.profile).controls


def _values(
    session: Session, meter: Meter, schedules: Schedules, policy: BillingPolicy, now: datetime
) -> dict[str, dict[str, str]]:
    """What a price and a settings dispatch would write to the meter now."""
    return {"price": price_payload(schedules, meter, now),
            "settings": settings_payload(session, meter, policy)}


@dataclass(frozen=True)
class MeterUpdate:
    meter: Meter
    queued: list[Command]  # the dispatches whose values the change altered
    cannot_receive: list[str]  # dispatches altered that the meter's profile has no control for


def update_meter(
    session: Session,
    meter_id: int,
    values: Mapping[str, object],
    *,
    operator: Operator | None,
    policy: BillingPolicy,
    now: datetime,
) -> MeterUpdate:
    """Save a meter's settings (billing.site.update_meter) and, in the same transaction, queue a
    price or settings dispatch to it when the saved change altered what that dispatch writes."""
    meter = session.get(Meter, meter_id)
    schedules = Schedules(session, policy)
    before = _values(session, meter, schedules, policy, now) if meter is not None else {}
    meter = site.update_meter(session, meter_id, values, operator=operator, now=now)
    after = _values(session, meter, schedules, policy, now)
    queued: list[Command] = []
    cannot_receive: list[str] = []
    for kind in VALUE_KINDS:
        if after[kind] == before[kind]:
            continue
        if not can_receive(meter, kind):
            cannot_receive.append(kind)
            continue
        command = control.queue_command(session, meter, kind, now=now, operator=operator,
                                        ttl=policy.command_ttl, reason=f"meter {kind} saved")
        command.payload = after[kind]
        queued.append(command)
    session.flush()
    return MeterUpdate(meter, queued, cannot_receive)


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
