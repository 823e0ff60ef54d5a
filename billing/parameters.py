"""Default parameters the operators maintain (系统设置 · 默认参数), kept in `site_parameters`.

A parameter nobody has saved yet has the value the server settings give (voltpay/settings.py,
from the environment); saving one here overrides it from then on. Values are stored as text and
typed here. `effective_policy` is the billing policy with the saved parameters applied: services
that sell, bill or dispatch settings take it instead of the bare settings policy.

The default tariff is the tariff billing falls back to (`tariffs.is_default`, see
billing/pricing.py); saving it here moves that flag, so the two never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import audit, operators
from billing.errors import BillingError
from billing.policy import BillingPolicy
from billing.site import (
    FieldSpec,
    InvalidInput,
    Problem,
    amount,
    is_blank,
    parse_fields,
    shown,
    whole,
)
from schema.models import Operator, SiteParameter, Tariff

PERMISSION = "configure"
_PHONE = re.compile(r"^\+?[0-9]{5,20}$")


def phone_number(value: object) -> str:
    number = re.sub(r"[\s\-()]", "", shown(value))
    if not _PHONE.match(number):
        raise ValueError(
            f"must be a phone number of 5 to 20 digits (a leading + is fine), not '{shown(value)}'"
        )
    return number


def tariff_id(value: object) -> int:
    return int(whole(1, 2**31 - 1)(value))


@dataclass(frozen=True)
class SiteParameters:
    overload_kw: Decimal  # the default power threshold (kW) dispatched to meters
    collect_interval_s: int  # how often the collector reads every meter
    alarm1_amount: Decimal
    alarm2_amount: Decimal
    default_tariff_id: int | None  # None: meters without a price or tariff use the flat price
    hoarding_limit: Decimal  # 囤积金额上限: the most an account may hold
    max_sale_amount: Decimal
    alarm_sms_number: str  # who gets the site's alarm SMS ("" for nobody)


SPECS: dict[str, FieldSpec] = {
    "overload_kw": FieldSpec("Overload threshold (kW)", amount(3, high=Decimal(100000)),
                             required=True),
    "collect_interval_s": FieldSpec("Collection interval (s)", whole(10, 86400), required=True),
    "alarm1_amount": FieldSpec("Alarm 1 amount", amount(2, high=Decimal(1000000)),
                               required=True),
    "alarm2_amount": FieldSpec("Alarm 2 amount", amount(2, high=Decimal(1000000)),
                               required=True),
    "default_tariff_id": FieldSpec("Default tariff", tariff_id),
    "hoarding_limit": FieldSpec("Hoarding limit", amount(2, high=Decimal(100000000)),
                                required=True),
    "max_sale_amount": FieldSpec("Max sale amount", amount(2, high=Decimal(100000000)),
                                 required=True),
    "alarm_sms_number": FieldSpec("Alarm SMS number", phone_number, default=""),
}
KEYS = tuple(SPECS)


def defaults(base: BillingPolicy, *, collect_interval_s: float) -> SiteParameters:
    """What the server settings give, before anything is saved here."""
    return SiteParameters(
        overload_kw=base.overload_kw,
        collect_interval_s=round(collect_interval_s),
        alarm1_amount=base.alarm1_amount,
        alarm2_amount=base.alarm2_amount,
        default_tariff_id=None,
        hoarding_limit=base.hoarding_limit,
        max_sale_amount=base.max_sale_amount,
        alarm_sms_number="",
    )


def _typed(key: str, stored: str) -> Any:
    spec = SPECS[key]
    return spec.default if is_blank(stored) else spec.parse(stored)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def stored(session: Session) -> dict[str, Any]:
    """The parameters saved here, typed (a key never saved is absent)."""
    return {
        row.key: _typed(row.key, row.value)
        for row in session.scalars(select(SiteParameter).where(SiteParameter.key.in_(KEYS)))
    }


def get(session: Session, key: str) -> Any:
    """One saved parameter, typed; None when it was never saved."""
    if key not in SPECS:
        raise BillingError(f"Unknown parameter {key!r}")
    row = session.get(SiteParameter, key)
    return None if row is None else _typed(key, row.value)


def _default_tariff(session: Session) -> int | None:
    return session.scalar(select(Tariff.id).where(Tariff.is_default.is_(True)).order_by(Tariff.id))


def current(session: Session, base: SiteParameters) -> SiteParameters:
    """The parameters in force: the saved ones over `base` (see `defaults`)."""
    saved = stored(session)
    saved["default_tariff_id"] = _default_tariff(session)
    return replace(base, **saved)


def effective_policy(session: Session, base: BillingPolicy) -> BillingPolicy:
    """`base` (from the settings) with the saved overload threshold, alarm amounts, hoarding
    limit and sale maximum applied; a saved alarm SMS number takes the place of the phone
    from the settings among the operator alert recipients."""
    saved = stored(session)
    policy = replace(base, **{
        key: saved[key]
        for key in ("overload_kw", "alarm1_amount", "alarm2_amount", "hoarding_limit",
                    "max_sale_amount")
        if key in saved
    })
    if saved.get("alarm_sms_number"):
        emails = tuple(r for r in base.alert_recipients if "@" in r)
        policy = replace(policy, alert_recipients=(str(saved["alarm_sms_number"]), *emails))
    return policy


def save(
    session: Session,
    values: Mapping[str, object],
    *,
    base: SiteParameters,
    operator: Operator | None,
    now: datetime,
) -> SiteParameters:
    """Validate every value given (text as typed, or typed values), then save the ones that
    changed, each with an audit row. Nothing is saved when any value is wrong."""
    operators.require(operator, PERMISSION)
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise BillingError(f"Unknown parameter(s): {', '.join(unknown)}")
    specs = {key: SPECS[key] for key in values}
    parsed, problems = parse_fields(specs, values)
    before = current(session, base)
    after = replace(before, **parsed)
    if after.default_tariff_id is not None and "default_tariff_id" not in {
        p.field for p in problems
    } and session.get(Tariff, after.default_tariff_id) is None:
        problems.append(Problem("default_tariff_id",
                                f"Tariff {after.default_tariff_id} does not exist"))
    if not problems and after.alarm2_amount >= after.alarm1_amount:
        problems.append(Problem(
            "alarm2_amount",
            f"Alarm 2 amount ({after.alarm2_amount}) must be lower than alarm 1 amount "
            f"({after.alarm1_amount}): alarm 2 is the last warning before arrears",
        ))
    if problems:
        raise InvalidInput(problems)
    for key in parsed:
        old, new = getattr(before, key), getattr(after, key)
        if old == new:
            continue
        row = session.get(SiteParameter, key)
        if row is None:
            session.add(SiteParameter(key=key, value=_text(new), updated_at=now,
                                      updated_by=operator.id if operator else None))
        else:
            row.value, row.updated_at = _text(new), now
            row.updated_by = operator.id if operator else None
        if key == "default_tariff_id":
            _move_default_flag(session, new)
        audit.record(session, at=now, operator=operator, action="parameter.set", target=key,
                     before=_text(old), after=_text(new))
    session.flush()
    return after


def _move_default_flag(session: Session, tariff: int | None) -> None:
    for row in session.scalars(select(Tariff).where(Tariff.is_default.is_(True))):
        row.is_default = False
    if tariff is not None:
        session.get_one(Tariff, tariff).is_default = True
    session.flush()


def set_parameter(
    session: Session,
    key: str,
    value: object,
    *,
    base: SiteParameters,
    operator: Operator | None,
    now: datetime,
) -> SiteParameters:
    """Save one parameter (see `save`)."""
    return save(session, {key: value}, base=base, operator=operator, now=now)
