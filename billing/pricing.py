"""Which tariff prices a meter: its own price (一表一价), its tariff, the site's default tariff,
or the default flat price from settings — loaded once per billing batch."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from billing import audit, operators
from billing.errors import BillingError, NotFound
from billing.policy import BillingPolicy
from billing.tariffs import TariffSchedule, TariffVersion, parse_spec, spec_to_data
from schema.models import Holiday, Operator, Tariff, TariffVersionRow

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def flat_schedule(price_per_kwh: Decimal, policy: BillingPolicy) -> TariffSchedule:
    spec = parse_spec({"kind": "flat", "flat_price": str(price_per_kwh)})
    return TariffSchedule([TariffVersion(EPOCH, spec)], (), policy.tz)


class PricedMeter(Protocol):
    """What pricing needs of a meter (a Meter, or a batch's plain row of one)."""

    @property
    def price_per_kwh(self) -> Decimal | None: ...
    @property
    def tariff_id(self) -> int | None: ...


class Schedules:
    """Tariff schedules for one billing batch: each tariff and the holidays read once."""

    def __init__(self, session: Session, policy: BillingPolicy) -> None:
        self.session = session
        self.policy = policy
        self._holidays = set(session.scalars(select(Holiday.on_date)))
        self._tariffs: dict[int, TariffSchedule] = {}
        self._flat: dict[Decimal, TariffSchedule] = {}
        self._default_id = session.scalar(select(Tariff.id).where(Tariff.is_default.is_(True)))

    def _flat_at(self, price: Decimal) -> TariffSchedule:
        if price not in self._flat:
            self._flat[price] = flat_schedule(price, self.policy)
        return self._flat[price]

    def _tariff(self, tariff_id: int) -> TariffSchedule:
        if tariff_id not in self._tariffs:
            rows = self.session.scalars(
                select(TariffVersionRow).where(TariffVersionRow.tariff_id == tariff_id)
            ).all()
            versions = [TariffVersion(r.effective_from, parse_spec(r.spec)) for r in rows]
            self._tariffs[tariff_id] = TariffSchedule(versions, self._holidays, self.policy.tz)
        return self._tariffs[tariff_id]

    def for_meter(self, meter: PricedMeter) -> TariffSchedule:
        if meter.price_per_kwh is not None:
            return self._flat_at(meter.price_per_kwh)
        tariff_id = meter.tariff_id if meter.tariff_id is not None else self._default_id
        if tariff_id is not None:
            return self._tariff(tariff_id)
        return self._flat_at(self.policy.default_price_per_kwh)


def create_tariff(
    session: Session,
    *,
    name: str,
    spec: dict[str, object],
    effective_from: datetime,
    operator: Operator | None,
    now: datetime,
    is_default: bool = False,
) -> Tariff:
    operators.require(operator, "configure")
    parsed = parse_spec(spec)
    name = name.strip()
    if not name:
        raise BillingError("A tariff needs a name")
    if session.scalar(select(Tariff.id).where(Tariff.name == name)) is not None:
        raise BillingError(f"A tariff named {name} already exists")
    if is_default:
        for other in session.scalars(select(Tariff).where(Tariff.is_default.is_(True))):
            other.is_default = False
    kind = spec_to_data(parsed)["kind"]
    tariff = Tariff(name=name, kind=str(kind), is_default=is_default, created_at=now)
    session.add(tariff)
    session.flush()
    add_version(session, tariff.id, spec=spec, effective_from=effective_from, operator=operator,
                now=now)
    return tariff


def add_version(
    session: Session,
    tariff_id: int,
    *,
    spec: dict[str, object],
    effective_from: datetime,
    operator: Operator | None,
    now: datetime,
) -> TariffVersionRow:
    """A new version in force from `effective_from` (now or later: the past is already billed)."""
    operators.require(operator, "configure")
    tariff = session.scalar(
        select(Tariff).where(Tariff.id == tariff_id).options(selectinload(Tariff.versions))
    )
    if tariff is None:
        raise NotFound(f"Tariff {tariff_id} does not exist")
    if tariff.versions and effective_from < now:
        raise BillingError("A tariff change can start now or later, not in the past")
    if any(v.effective_from == effective_from for v in tariff.versions):
        raise BillingError(f"{tariff.name} already has a version starting then")
    data = spec_to_data(parse_spec(spec))
    if data["kind"] != tariff.kind:
        raise BillingError(f"{tariff.name} is a {tariff.kind} tariff, not {data['kind']}")
    row = TariffVersionRow(tariff_id=tariff.id, effective_from=effective_from, spec=data,
                           created_by=operator.id if operator else None, created_at=now)
    session.add(row)
    audit.record(session, at=now, operator=operator, action="tariff.version", target=tariff.name,
                 effective_from=effective_from.isoformat())
    session.flush()
    return row


def set_holiday(
    session: Session,
    on_date: date,
    *,
    name: str,
    operator: Operator | None,
    now: datetime,
) -> Holiday:
    """Add (or rename) a date in the holiday calendar: time-of-use tariffs with a holiday plan
    use it for that local date."""
    operators.require(operator, "configure")
    if not name.strip():
        raise BillingError("A holiday needs a name")
    holiday = session.get(Holiday, on_date)
    if holiday is None:
        holiday = Holiday(on_date=on_date, name=name.strip())
        session.add(holiday)
    else:
        holiday.name = name.strip()
    audit.record(session, at=now, operator=operator, action="holiday.set",
                 target=on_date.isoformat(), name=name.strip())
    session.flush()
    return holiday


def remove_holiday(
    session: Session, on_date: date, *, operator: Operator | None, now: datetime
) -> None:
    operators.require(operator, "configure")
    holiday = session.get(Holiday, on_date)
    if holiday is None:
        raise NotFound(f"{on_date.isoformat()} is not in the holiday calendar")
    session.delete(holiday)
    audit.record(session, at=now, operator=operator, action="holiday.remove",
                 target=on_date.isoformat())
